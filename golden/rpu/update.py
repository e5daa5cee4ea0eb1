"""The RPU stochastic pulse update of one array (Gokmen & Vlasov 2016): counts, then closed forms.

Both translators get the gain C = sqrt(lr / (dw_min * BL)) so that E[dw_ij] = lr * x_i * d_j
(Eq. 1.3, no update management). Without half-selects only output lines that pulsed at least
once can hold a coincidence, so the device update runs on those rows of the weight alone:
with the small backward errors of hidden layers that is a small part of the array.
"""

from __future__ import annotations

import torch

from .closed_form import apply_counts, apply_signed
from .devices import DeviceState
from .pulses import BernoulliSource, gain_for

__all__ = ["pulsed_update"]


def pulsed_update(w: torch.Tensor, st: DeviceState, x, d, lr: float, *, bl: int, dw_min: float,
                  source, half_select: float = 0.0, generator=None) -> torch.Tensor:
    """Apply lr * d^T x (d: (N, n_out), x: (N, n_in)) to ``w`` (n_out, n_in) in pulses.

    ``w`` is updated in place (only the rows that pulsed are written) and returned.
    """
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
        return w.copy_(_apply(w, st, counts, half_select, generator))
    if rows.numel() == 0:
        return w
    if rows.numel() == w.shape[0]:  # every output line pulsed: nothing to gather
        return w.copy_(_apply(w, st, counts, 0.0, generator))
    new = _apply(w.index_select(0, rows), st.rows(rows), counts, 0.0, generator)
    return w.index_copy_(0, rows, new)  # in place: the caller's array is updated too


def _apply(w, st: DeviceState, counts, k, generator):
    if counts.single is not None:
        return apply_signed(w, st, counts.single, generator)
    return apply_counts(w, st, counts, k, generator)
