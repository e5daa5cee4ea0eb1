"""Functional coverage of the core regression: which modes, directions, bit widths and
activations the testbenches exercised, and the holes.

Testbenches record coverage points (dicts) in their metrics; ``coverage_table`` folds the
points of a whole regression into tables and names every bin that was never hit.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["coverage_table", "OTHER_BINS"]

DIRECTIONS = ("forward", "backward", "recurrent")
ACTIVATIONS = ("identity", "relu", "stochastic")
ADCS = ("binary", "counting")
OTHER_BINS = (
    ("rpu_update", "2 phases"), ("rpu_update", "4 phases"),
    ("program", "set"), ("program", "reset"), ("program", "read"),
    ("error", "unknown opcode"), ("error", "bad argument"), ("error", "command while busy"),
    ("error", "malformed SPI frame (short)"), ("error", "address out of range"),
    ("gating", "clock gate"), ("gating", "power gate"), ("gating", "neuron test"),
)


def _other_key(p: dict) -> tuple[str, str] | None:
    if p["mode"] == "rpu_update":
        return ("rpu_update", f"{p['phases']} phases")
    if p["mode"] == "program":
        return ("program", p["op"])
    if p["mode"] in ("error", "gating"):
        return (p["mode"], p["case"])
    return None


def coverage_table(points: list[dict], max_in: int = 8, max_out: int = 10) -> str:
    """Tables of the points and the list of holes. ``max_in`` / ``max_out`` are the widest
    input / output the configs under test reach (their ``input_bits`` / ``output_bits``):
    wider bins are not shown and are not holes."""
    mvm = [p for p in points if p["mode"] == "mvm"]
    grid = Counter((p["direction"], p["activation"], p["adc"]) for p in mvm)
    lines = [f"functional coverage: {len(mvm)} MVMs (direction x activation x ADC mode)"]
    head = f"{'direction':10s} " + " ".join(f"{a[:5]}/{c[:3]:>3s}" for a in ACTIVATIONS
                                            for c in ADCS)
    lines.append(head)
    holes = []
    for d in DIRECTIONS:
        row = []
        for a in ACTIVATIONS:
            for c in ADCS:
                n = grid[(d, a, c)]
                row.append(f"{n:9d}")
                if n == 0:
                    holes.append(f"mvm {d}/{a}/{c}")
        lines.append(f"{d:10s} " + " ".join(row))
    ins = Counter(p["in_bits"] for p in mvm)
    outs = Counter(p["out_bits"] for p in mvm)
    lines.append("input bits : " + " ".join(f"{b}:{ins[b]}" for b in range(1, max_in + 1)))
    lines.append("output bits: " + " ".join(f"{b}:{outs[b]}" for b in range(1, max_out + 1)))
    holes += [f"mvm in_bits={b}" for b in range(1, max_in + 1) if not ins[b]]
    holes += [f"mvm out_bits={b}" for b in range(1, max_out + 1) if not outs[b]]
    other = Counter(k for k in map(_other_key, points) if k)
    lines.append("other modes: " + ", ".join(f"{m} {c}: {other[(m, c)]}"
                                             for m, c in OTHER_BINS))
    holes += [f"{m} {c}" for m, c in OTHER_BINS if not other[(m, c)]]
    lines.append("holes: " + (", ".join(holes) if holes else "none"))
    return "\n".join(lines)
