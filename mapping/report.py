"""Readable summaries of a compiled model: the compile table and `cimflow inspect`.

Kept apart from the compiler so the same text describes a fresh compile and an image read
back from disk (both are a :class:`CompiledModel`).
"""

from __future__ import annotations

import numpy as np

from .compiler import CompiledModel

__all__ = ["totals", "layer_table", "core_table", "summary", "latency", "latency_table",
           "NEURRAM_TIMING"]


def totals(cm: CompiledModel) -> dict:
    segs = cm.placement.segments
    originals = [s for s in segs if s.copy == 0]
    cells = sum(s.cells for s in segs)
    capacity = len(cm.targets) * cm.config.rows * cm.config.cols
    return {
        "layers": len(cm.graph.analog),
        "matrices": len(cm.layers),
        "row_segments": len({(s.layer, s.pairs) for s in originals}),
        "segments": len(segs),
        "cores_used": len(cm.targets),
        "cores": cm.placement.n_cores,
        "matrix_cells": sum(m.cells for m in cm.layers),
        "cells": cells,
        "utilisation": cells / capacity if capacity else 0.0,
        "chip_utilisation": cells / (cm.placement.n_cores * cm.config.rows * cm.config.cols),
    }


def _access(cm: CompiledModel, core: int) -> str:
    segs = [s for s in cm.placement.segments if s.core == core]
    rows = np.concatenate([s.phys_rows for s in segs])
    return "parallel" if np.unique(rows).size == rows.size else "time-mux"


def layer_table(cm: CompiledModel) -> str:
    lines = [f"{'matrix':24s} {'op':6s} {'rows x cols':>12s} {'B':>3s} {'w_max':>9s} "
             f"{'bits in/out':>11s} {'MVMs':>6s} {'segs':>4s} {'copies':>6s}"]
    for m in cm.layers:
        segs = [s for s in cm.placement.segments if s.layer == m.name]
        copies = len({s.copy for s in segs})
        bits = ",".join(f"{p['in_bits']}/{p['out_bits']}" for p in m.precision.values())
        lines.append(f"{m.name[:24]:24s} {m.op:6s} {f'{m.rows} x {m.cols}':>12s} "
                     f"{m.bias_rows:3d} {m.w_max:9.4g} {bits:>11s} {m.mvms:6d} "
                     f"{len(segs) // copies:4d} {copies:6d}")
    return "\n".join(lines)


def core_table(cm: CompiledModel) -> str:
    cap = cm.config.rows * cm.config.cols
    lines = [f"{'core':>4s} {'segs':>4s} {'cells':>7s} {'util':>6s} {'access':8s} layers"]
    for c in sorted(cm.targets):
        segs = [s for s in cm.placement.segments if s.core == c]
        cells = sum(s.cells for s in segs)
        names = ", ".join(dict.fromkeys(s.layer + (f"#{s.copy}" if s.copy else "")
                                        for s in segs))
        lines.append(f"{c:4d} {len(segs):4d} {cells:7d} {100 * cells / cap:5.1f}% "
                     f"{_access(cm, c):8s} {names[:60]}")
    return "\n".join(lines)


def summary(cm: CompiledModel) -> str:
    t = totals(cm)
    cfg = cm.config
    lines = [
        f"{t['layers']} analog layers -> {t['matrices']} conductance matrices, "
        f"{t['row_segments']} row segments of <= {cm.placement.seg_rows} rows "
        f"({t['segments']} segments with copies)",
        f"{t['cores_used']} of {t['cores']} cores of {cfg.rows} x {cfg.cols}; cells "
        f"{t['cells']:,} (matrices {t['matrix_cells']:,}); utilisation {100 * t['utilisation']:.1f}"
        f"% of the used cores, {100 * t['chip_utilisation']:.1f}% of the chip",
    ]
    if cm.placement.excluded:
        lines.append(f"cores left out for defects: {cm.placement.excluded}")
    lines += [f"note: {n}" for n in cm.placement.notes]
    return "\n".join(lines)


NEURRAM_TIMING = {"clock_hz": 100e6, "t_wl": 1, "t_sample": 1, "t_integ": 24}
"""The paper's MVM timing (Methods; docs/model.md): a 100 MHz clock (10 ns), 10 ns WL and
sample pulses, 240 ns integration pulses, as the pulse generator's strobe widths."""


def _serial(cm: CompiledModel, name: str, copy: int) -> int:
    """MVM slots one input vector of a matrix takes: its segments on different cores or
    on disjoint rows of one core run in parallel; segments sharing rows take turns."""
    worst = 1
    for c in {s.core for s in cm.placement.segments if s.layer == name and s.copy == copy}:
        segs = [s for s in cm.placement.segments if s.core == c and s.layer == name
                and s.copy == copy]
        rows = np.concatenate([s.phys_rows for s in segs])
        worst = max(worst, 1 if np.unique(rows).size == rows.size else len(segs))
    return worst


def latency(cm: CompiledModel, timing: dict | None = None) -> list[dict]:
    """Per matrix: cycles of one MVM (golden.cycle.cycle_count at the matrix's precision
    and ``timing``'s strobe widths), MVMs per inference, copies, serial slots, cycles per
    inference. Layers run one after another; copies share a layer's MVMs."""
    from cimflow.golden.cycle import cycle_count
    from cimflow.golden.mvm import MvmSettings

    t = {**NEURRAM_TIMING, **(timing or {})}
    out = []
    for m in cm.layers:
        p = m.precision["forward"]
        st = MvmSettings.from_config(cm.config, in_bits=p["in_bits"], out_bits=p["out_bits"],
                                     v_decr=p["v_decr"], t_wl=t["t_wl"],
                                     t_sample=t["t_sample"], t_integ=t["t_integ"])
        copies = len({s.copy for s in cm.placement.segments if s.layer == m.name})
        per = cycle_count(st)
        serial = _serial(cm, m.name, 0)
        rounds = -(-m.mvms // copies)
        out.append({"matrix": m.name, "cycles_per_mvm": per, "mvms": m.mvms,
                    "copies": copies, "serial": serial, "cycles": per * serial * rounds})
    return out


def latency_table(cm: CompiledModel, timing: dict | None = None) -> str:
    t = {**NEURRAM_TIMING, **(timing or {})}
    rows = latency(cm, t)
    ns = 1e9 / t["clock_hz"]
    lines = [f"{'matrix':24s} {'cyc/MVM':>7s} {'MVMs':>6s} {'copies':>6s} {'serial':>6s} "
             f"{'cycles':>9s} {'us':>9s}"]
    for r in rows:
        lines.append(f"{r['matrix'][:24]:24s} {r['cycles_per_mvm']:7d} {r['mvms']:6d} "
                     f"{r['copies']:6d} {r['serial']:6d} {r['cycles']:9d} "
                     f"{r['cycles'] * ns / 1e3:9.2f}")
    total = sum(r["cycles"] for r in rows)
    lines.append(f"estimate per inference: {total:,} cycles, {total * ns / 1e3:,.2f} us at "
                 f"{t['clock_hz'] / 1e6:g} MHz (WL {t['t_wl']}, sample {t['t_sample']}, "
                 f"integrate {t['t_integ']} clocks: the paper's 10 / 10 / 240 ns); analog "
                 f"MVMs only, layers in sequence, no host I/O or digital ops")
    if not any(m.mvms > 1 for m in cm.layers) and any(n.op == "conv2d"
                                                      for n in cm.graph.analog):
        lines.append("note: the model carries no shapes (TorchScript): one MVM per layer, "
                     "so convolutions are under-counted; compile an ExportedProgram")
    return "\n".join(lines)
