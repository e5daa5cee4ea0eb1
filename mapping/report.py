"""Readable summaries of a compiled model: the compile table and `cimflow inspect`.

Kept apart from the compiler so the same text describes a fresh compile and an image read
back from disk (both are a :class:`CompiledModel`).
"""

from __future__ import annotations

import numpy as np

from .compiler import CompiledModel

__all__ = ["totals", "layer_table", "core_table", "summary"]


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
