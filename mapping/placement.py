"""Placement: conductance matrices -> segments -> cores.

The rules are the NeuRRAM paper's (Wan et al., Nature 2022, Methods, "weight mapping"):

1. **Segments.** A matrix is cut into row segments of at most ``R`` rows (whole differential
   pairs, near-equal sizes; bias rows are the last logical rows, so they fall in the last
   segments) and column segments of at most ``C`` columns. ``R`` and ``C`` are the core's
   size less defects: every core in use must hold any segment, so they are the smallest
   count of intact pairs / columns over the usable cores (a core with fewer than half of
   them is left out). Row segments of one matrix add their partial sums digitally.
2. **Spare cores** (fewer segments than cores): first split "wide" segments (more than
   C/2 columns) in two, which limits the drivers' IR drop; then duplicate the layer with
   the most MVMs per inference per copy onto spare cores, while whole copies fit.
3. **Too few cores**: repeatedly merge the least loaded core with the partner that keeps
   the merged load lowest: *diagonally* (disjoint rows and columns: both run in parallel,
   load = max) when both fit, else *horizontally* (side by side on shared rows,
   time-multiplexed, load = sum) or vertically. Heavy and wide segments merge last.

An RBM's rows are interleaved (segment k takes visible units k, k + n, ...), as in the
paper, so that adjacent pixels land on different cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cimflow.config import CoreConfig

from .defects import DefectMap
from .errors import CompileError
from .matrices import LayerMatrix

__all__ = ["Segment", "Placement", "place"]


@dataclass
class Segment:
    """One tile of a matrix on one core.

    ``pairs`` = (start, stop, step): the logical input rows (differential pairs, bias pairs
    last) of the matrix it holds; ``cols`` = (start, stop): its output columns. ``copy`` > 0
    marks a duplicate. ``row0``, ``col0``: its corner in the core's *intact* rows/columns;
    ``phys_rows`` / ``phys_cols``: the array rows (G+ at even positions, G- at odd) and
    columns it occupies."""

    layer: str
    index: int
    pairs: tuple[int, int, int]
    cols: tuple[int, int]
    copy: int = 0
    core: int = -1
    row0: int = 0
    col0: int = 0
    phys_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    phys_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def pair_index(self) -> np.ndarray:
        return np.arange(*self.pairs)

    @property
    def n_rows(self) -> int:
        return 2 * len(range(*self.pairs))

    @property
    def n_cols(self) -> int:
        return self.cols[1] - self.cols[0]

    @property
    def cells(self) -> int:
        return self.n_rows * self.n_cols


@dataclass
class Placement:
    segments: list[Segment]
    n_cores: int
    excluded: list[int]
    """Cores left unused because defects took more than half of their rows or columns."""
    seg_rows: int
    seg_cols: int
    notes: list[str]


def _split(n: int, limit: int) -> list[tuple[int, int]]:
    k = math.ceil(n / limit)
    edges = [round(i * n / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _segments(m: LayerMatrix, rows: int, cols: int) -> list[Segment]:
    cap = rows // 2
    out = []
    if m.op == "rbm":
        k = math.ceil(m.pairs / cap)
        row_parts = [(i, m.pairs, k) for i in range(k)]
    else:
        row_parts = [(a, b, 1) for a, b in _split(m.pairs, cap)]
    for rp in row_parts:
        for cp in _split(m.cols, cols):
            out.append(Segment(m.name, len(out), rp, cp))
    return out


@dataclass
class _Bin:
    items: list[tuple[Segment, int, int]]  # (segment, row0, col0)
    h: int
    w: int
    load: float


def place(layers: list[LayerMatrix], config: CoreConfig, n_cores: int,
          defects: DefectMap | None = None) -> Placement:
    if not 1 <= n_cores <= 4096:
        raise CompileError(f"cores = {n_cores} is out of range [1, 4096]")
    defects = defects or DefectMap()
    good = {c: (defects.good_rows(c, config), defects.good_cols(c, config))
            for c in range(n_cores)}
    usable = [c for c in range(n_cores) if 2 * len(good[c][0]) >= config.rows
              and 2 * len(good[c][1]) >= config.cols]
    excluded = [c for c in range(n_cores) if c not in usable]
    if not usable:
        raise CompileError("every core loses more than half its rows or columns to defects")
    rows = min(len(good[c][0]) for c in usable)
    cols = min(len(good[c][1]) for c in usable)
    notes: list[str] = []
    mvms = {m.name: m.mvms for m in layers}
    order = {m.name: i for i, m in enumerate(layers)}
    segs = [s for m in layers for s in _segments(m, rows, cols)]
    n = len(usable)
    if len(segs) <= n:
        segs = _spread(segs, n, cols, mvms, order, notes)
        bins = [_Bin([(s, 0, 0)], s.n_rows, s.n_cols, mvms[s.layer]) for s in segs]
    else:
        bins = _merge(segs, n, rows, cols, mvms, notes)
    bins.sort(key=lambda b: min((order[s.layer], s.copy, s.index) for s, _, _ in b.items))
    for core, b in zip(usable, bins, strict=False):
        g_rows, g_cols = good[core]
        for s, r0, c0 in b.items:
            s.core, s.row0, s.col0 = core, r0, c0
            s.phys_rows = g_rows[r0:r0 + s.n_rows]
            s.phys_cols = g_cols[c0:c0 + s.n_cols]
    out = [s for b in bins for s, _, _ in b.items]
    out.sort(key=lambda s: (s.core, s.row0, s.col0))
    return Placement(out, n_cores, excluded, rows, cols, notes)


def _spread(segs: list[Segment], n: int, cols: int, mvms: dict, order: dict,
            notes: list) -> list[Segment]:
    """Use spare cores: split wide segments, then duplicate heavy layers."""
    spare = n - len(segs)
    for s in sorted([s for s in segs if s.n_cols > cols // 2],
                    key=lambda s: -mvms[s.layer]):
        if spare == 0:
            break
        a, b = s.cols
        mid = (a + b) // 2
        t = Segment(s.layer, -1, s.pairs, (mid, b))
        s.cols = (a, mid)
        segs.append(t)
        spare -= 1
        notes.append(f"split wide segment {s.layer}[{s.index}] at column {mid}")
    for layer in dict.fromkeys(s.layer for s in segs):  # renumber per layer
        for i, s in enumerate(x for x in segs if x.layer == layer):
            s.index = i
    by_layer: dict[str, list[Segment]] = {}
    for s in segs:
        by_layer.setdefault(s.layer, []).append(s)
    copies = {k: 1 for k in by_layer}
    while True:
        fits = [k for k in by_layer if len(by_layer[k]) <= spare and mvms[k] > 1]
        if not fits:
            break
        k = max(fits, key=lambda k: (mvms[k] / copies[k], -order[k]))
        if mvms[k] / copies[k] <= 1:
            break
        for s in by_layer[k]:
            segs.append(Segment(s.layer, s.index, s.pairs, s.cols, copies[k]))
        spare -= len(by_layer[k])
        copies[k] += 1
    for k, c in copies.items():
        if c > 1:
            notes.append(f"duplicated {k} onto {c} copies")
    return segs


def _merge(segs: list[Segment], n: int, rows: int, cols: int, mvms: dict,
           notes: list) -> list[_Bin]:
    """Merge bins until ``n`` remain: least loaded first, lowest merged load."""
    bins = [_Bin([(s, 0, 0)], s.n_rows, s.n_cols, float(mvms[s.layer])) for s in segs]
    kinds = {"diagonal": 0, "horizontal": 0, "vertical": 0}
    while len(bins) > n:
        bins.sort(key=lambda b: (b.load, b.h * b.w))
        best = None
        for i, a in enumerate(bins):
            for j in range(len(bins)):
                if j == i:
                    continue
                b = bins[j]
                for kind, h, w, load in (
                        ("diagonal", a.h + b.h, a.w + b.w, max(a.load, b.load)),
                        ("horizontal", max(a.h, b.h), a.w + b.w, a.load + b.load),
                        ("vertical", a.h + b.h, max(a.w, b.w), a.load + b.load)):
                    if h <= rows and w <= cols:
                        key = (load, h * w)
                        if best is None or key < best[0]:
                            best = (key, i, j, kind, h, w, load)
                        break
            if best is not None:
                break
        if best is None:
            raise CompileError(f"the model does not fit: {len(segs)} segments cannot be "
                               f"merged into {n} cores; use more cores")
        _, i, j, kind, h, w, load = best
        a, b = bins[i], bins[j]
        dr = a.h if kind in ("diagonal", "vertical") else 0
        dc = a.w if kind in ("diagonal", "horizontal") else 0
        a.items += [(s, r + dr, c + dc) for s, r, c in b.items]
        a.h, a.w, a.load = h, w, load
        kinds[kind] += 1
        del bins[j]
    notes.append("merged " + ", ".join(f"{v} {k}" for k, v in kinds.items() if v))
    return bins
