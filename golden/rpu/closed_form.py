"""n same-sign coincidences at once: the closed forms that keep pulses out of the hot path.

Within one rank-1 update every coincidence (and, with half-select factor k > 0, every
half-selected pulse) at cell (i, j) has the same direction d = sign(x_i * delta_j)
(Gokmen & Vlasov 2016: signs by up/down phases). A cell receiving n coincidences and h
half-selects therefore needs no pulse-by-pulse loop:

* Constant step: the sum of n + h independent steps dw*s*(1 + sigma*xi) (s = 1 or k) is
  normal with mean dw*(n + k*h) and variance (dw*sigma)^2*(n + k^2*h): exact. Hard bounds
  are applied once at the end, which equals clipping after every pulse because all steps
  point the same way (a step can reverse only when 1 + sigma*xi < 0, probability
  Phi(-1/sigma) = 4e-4 at sigma = 0.3, and then only matters at a bound).
* Soft bounds: with u = 1 - w/b_d (b_d the bound the direction heads for, a = |dw_d|/|b_d|),
  one pulse maps u -> u*(1 - s*a*(1 + sigma*xi)), so u_n = u_0 * prod(factors). Without
  cycle-to-cycle noise this is exact: u_n = u_0 (1 - a)^n (1 - k a)^h. With noise the product
  is drawn log-normal with the product's exact mean and variance; its log is a sum of n + h
  near-normal terms, so the shape matches too (tested against pulse-by-pulse application).

:func:`apply_pulses` is the pulse-by-pulse reference used by the tests.
"""

from __future__ import annotations

import torch

from .devices import DeviceState

__all__ = ["apply_counts", "apply_direction", "apply_signed", "apply_pulses"]


def _randn(like: torch.Tensor, generator):
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def apply_direction(w, st: DeviceState, up: bool, n, h=None, k: float = 0.0, generator=None):
    """w after n coincidences (and h half-selects of relative strength k) all in one direction.

    ``n`` and ``h`` are non-negative count tensors broadcastable to ``w``.
    """
    dw = st.dw_up if up else st.dw_down
    sigma = st.c2c
    use_h = h is not None and k != 0.0
    if not st.soft:
        mean = n + k * h if use_h else n
        step = dw * mean
        if sigma:
            var = n + (k * k) * h if use_h else n
            step = step + dw * sigma * var.sqrt() * _randn(w, generator)
        return st.clip(w + step if up else w - step)
    bound = st.b_max if up else st.b_min
    a = dw / bound.abs()
    log_m = n * torch.log1p(-a)
    if use_h:
        log_m = log_m + h * torch.log1p(-k * a)
    if sigma:
        r = (a * sigma) ** 2
        s2 = n * torch.log1p(r / (1 - a) ** 2)
        if use_h:
            s2 = s2 + h * torch.log1p(k * k * r / (1 - k * a) ** 2)
        log_m = log_m - 0.5 * s2 + s2.sqrt() * _randn(w, generator)
    return st.clip(w - (bound - w) * torch.expm1(log_m))  # exactly w where n = h = 0


def apply_signed(w, st: DeviceState, n_signed, generator=None):
    """Each cell's coincidences all in one direction, sign(n_signed) (one sample, k = 0).

    Written with arithmetic on the sign instead of masks (``where`` and comparisons cost ten
    times an add on CPU): the step of direction s is mean + s*half of the up/down pair.
    """
    s = torch.sign(n_signed)
    n = n_signed.abs()
    mean, half = (st.dw_up + st.dw_down) * 0.5, (st.dw_up - st.dw_down) * 0.5
    if not st.soft:
        dw = mean + s * half
        step = n_signed * dw
        if st.c2c:
            step = step + (st.c2c * s) * dw * n.sqrt() * _randn(w, generator)
        return st.clip(w + step)
    s1 = s + (1 - n.clamp(max=1))  # cells without coincidences: any direction, no change
    dw = mean + s1 * half
    bound = (st.b_max + st.b_min) * 0.5 + s1 * ((st.b_max - st.b_min) * 0.5)
    a = dw / bound.abs()
    log_m = n * torch.log1p(-a)
    if st.c2c:
        s2 = n * torch.log1p((a * st.c2c) ** 2 / (1 - a) ** 2)
        log_m = log_m - 0.5 * s2 + s2.sqrt() * _randn(w, generator)
    return st.clip(w - (bound - w) * torch.expm1(log_m))  # exactly w where n = 0


def apply_counts(w, st: DeviceState, counts, k: float = 0.0, generator=None):
    """Apply a :class:`~.pulses.Counts` (up, then down) to ``w``; returns the new tensor."""
    w = apply_direction(w, st, True, counts.n_up, counts.h_up, k, generator)
    return apply_direction(w, st, False, counts.n_down, counts.h_down, k, generator)


def apply_pulses(w, st: DeviceState, up: bool, n: int, h: int = 0, k: float = 0.0,
                 generator=None):
    """Reference: n coincidences then h half-selects applied one pulse at a time."""
    dw = st.dw_up if up else st.dw_down
    bound = st.b_max if up else st.b_min
    for s in [1.0] * n + [k] * h:
        step = s * dw * (1 + st.c2c * _randn(w, generator))
        if st.soft:
            step = step * (1 - w / bound)
        w = st.clip(w + step if up else w - step)
    return w
