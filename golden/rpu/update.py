"""The RPU stochastic pulse update of one array (Gokmen & Vlasov 2016): counts, then closed forms.

Both translators get the gain C = sqrt(lr / (dw_min * BL)) so that E[dw_ij] = lr * x_i * d_j
(Eq. 1.3, no update management). Without half-selects only output lines that pulsed at least
once can hold a coincidence, so the device update runs on those rows of the weight alone:
with the small backward errors of hidden layers that is a small part of the array.

On the CPU (float32, no half-selects) the fused numba kernel of :mod:`.fused` does the same
update in one call, in place; ``fused=False`` keeps the torch path (the reference, and the
path on CUDA).
"""

from __future__ import annotations

import numpy as np
import torch

from . import fused as _fused
from .closed_form import apply_counts, apply_signed
from .devices import DeviceState
from .pulses import BernoulliSource, gain_for

__all__ = ["pulsed_update"]


def _state(rng, generator):
    if rng is not None:
        return rng
    seed = torch.randint(0, 2**62, (1,), generator=generator).item()
    return _fused.new_state(seed)


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    if t.dtype == dtype and not t.requires_grad:
        return t.numpy()
    return t.detach().to(dtype).numpy()


def _dev_np(st: DeviceState):
    """The packed device state as numpy, kept on the state (built once per array)."""
    arr = st.__dict__.get("_np")
    if arr is None:
        arr = st.pack().numpy()
        st.__dict__["_np"] = arr
    return arr


def pulsed_update(w: torch.Tensor, st: DeviceState, x, d, lr: float, *, bl: int, dw_min: float,
                  source, half_select: float = 0.0, generator=None, sequential: bool = False,
                  fused: bool = True, rng=None) -> torch.Tensor:
    """Apply lr * d^T x (d: (N, n_out), x: (N, n_in)) to ``w`` (n_out, n_in) in pulses.

    ``w`` is updated in place (only the rows that pulsed are written) and returned. With
    ``sequential`` each sample is one rank-1 update, in order; else the N samples' counts are
    summed per direction and applied at once. ``fused`` runs the CPU kernel where it applies;
    ``rng`` is its generator state (:func:`.fused.new_state`; default: seeded from
    ``generator``).
    """
    gain = gain_for(lr, dw_min, bl)
    if gain == 0:
        return w
    if fused and _fused.AVAILABLE and w.is_cpu and w.dtype == torch.float32 \
            and half_select == 0.0:
        if isinstance(source, BernoulliSource) and bl <= 64:
            kernel = (_fused.sequential_update if sequential or x.shape[0] == 1
                      else _fused.merged_update)
            kernel(w.numpy(), _dev_np(st), _np(x, w.dtype), _np(d, w.dtype), gain, bl, st.c2c,
                   st.soft, _state(rng, generator))
            return w
        if not isinstance(source, BernoulliSource):  # e.g. the RTL's LFSR streams
            rows = [(x[i: i + 1], d[i: i + 1]) for i in range(x.shape[0])] if sequential \
                else [(x, d)]
            state = _state(rng, generator) if st.c2c else _fused.new_state(0)
            for xi, di in rows:
                c = source.counts(xi, di, bl, gain, generator=generator)
                _fused.apply_counts_inplace(w.numpy(), st.pack().numpy(),
                                            c.n_up.to(w.dtype).numpy(),
                                            c.n_down.to(w.dtype).numpy(), st.c2c, st.soft,
                                            state)
            return w
    if sequential and x.shape[0] > 1:
        for i in range(x.shape[0]):  # samples, not cells or pulses
            pulsed_update(w, st, x[i: i + 1], d[i: i + 1], lr, bl=bl, dw_min=dw_min,
                          source=source, half_select=half_select, generator=generator,
                          fused=False)
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
