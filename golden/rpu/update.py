"""The RPU stochastic pulse update of one array (ALGORITHMS.md 1.2): counts, then closed forms.

Both translators get the gain C = sqrt(lr / (dw_min * BL)) so that E[dw_ij] = lr * x_i * d_j
(Eq. 1.3, no update management). Without half-selects only output lines that pulsed at least
once can hold a coincidence, so the device update runs on those rows of the weight alone:
with the small backward errors of hidden layers that is a small part of the array.
"""

from __future__ import annotations

import torch

from .closed_form import apply_counts
from .devices import DeviceState
from .pulses import BernoulliSource, gain_for

__all__ = ["pulsed_update"]


def pulsed_update(w: torch.Tensor, st: DeviceState, x, d, lr: float, *, bl: int, dw_min: float,
                  source, half_select: float = 0.0, generator=None) -> torch.Tensor:
    """Apply lr * d^T x (d: (N, n_out), x: (N, n_in)) to ``w`` (n_out, n_in) in pulses."""
    gain = gain_for(lr, dw_min, bl)
    if gain == 0:
        return w
    half = half_select != 0.0
    if isinstance(source, BernoulliSource):
        counts = source.counts(x, d, bl, gain, half=half, generator=generator, compact=True)
    else:
        counts = source.counts(x, d, bl, gain, half=half, generator=generator)
    rows = counts.rows
    if rows is None:
        return apply_counts(w, st, counts, half_select, generator)
    if rows.numel() == 0:
        return w
    new = apply_counts(w.index_select(0, rows), _rows(st, rows), counts, 0.0, generator)
    return w.index_copy(0, rows, new)


def _rows(st: DeviceState, rows) -> DeviceState:
    return DeviceState(st.dw_up.index_select(0, rows), st.dw_down.index_select(0, rows),
                       st.b_max.index_select(0, rows), st.b_min.index_select(0, rows),
                       st.c2c, st.soft)
