"""The charge-domain neuron: sample, integrate, compare, decrement (docs/model.md#neuron-and-adc).

Charge is an integer in units of ``C_sample * V_read / 2**CHARGE_FRAC_BITS``. Every model
level adds and subtracts the same integers, so output codes are reproducible bit for bit
(no float ties at ADC thresholds). The unit is 2**-24 of one full-scale sample, far below
any physical noise, so the quantisation is not a modelling error worth speaking of.

Comparator convention (one for every comparison, sign included): ``cmp = residual > 0``.
The first magnitude step uses the latched sign comparison, later ones the previous bit, so
the converter is consistent at exactly zero charge (code 0, sign 0). Exact transfer, which
equals the closed form ``min(floor(|q| 2^(K-1)), 2^K - 1)`` off ties:

* q > 0:  |code| = min(ceil(q 2^(K-1)) - 1, 2^K - 1)
* q <= 0: |code| = min(floor(-q 2^(K-1)), 2^K - 1), sign 0

Binary search and counting share this transfer (same LSB ``C_s V_decr / 2^(K-1)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cimflow.modes import Activation, AdcMode

from .tensors import as_tensor, like_input

__all__ = [
    "C_SAMPLE", "C_INTEG", "CHARGE_FRAC_BITS", "MAX_MAG_BITS", "Activation",
    "charge_units", "integ_units", "DECR_TOLERANCE", "decr_units", "sample_units", "dac_levels",
    "adc_exact", "adc_closed_form", "adc_binary", "adc_counting", "adc_convert",
    "apply_activation", "signed_value", "NeuronBank",
]

C_SAMPLE = 17e-15
"""Sampling capacitor (F)."""
C_INTEG = 104e-15
"""Integration capacitor (F)."""
CHARGE_FRAC_BITS = 24
"""One charge unit is C_SAMPLE * V_read / 2**24."""
MAX_MAG_BITS = 9
"""Largest magnitude width K (10-bit output); V_decr is a multiple of 2**K units so that the
halved binary-search steps stay exact integers."""

NoiseFn = Callable[[tuple[int, ...]], np.ndarray]


# ---------------------------------------------------------------- charge units
def charge_units(v_line: float | np.ndarray, v_read: float):
    """Charge C_s * v_line in units (float, unrounded)."""
    return np.asarray(v_line) / v_read * (1 << CHARGE_FRAC_BITS)


def integ_units(v_integ: float, v_read: float) -> float:
    """Charge C_integ * v_integ (a voltage across C_integ) in units (float)."""
    return C_INTEG * v_integ / (C_SAMPLE * v_read) * (1 << CHARGE_FRAC_BITS)


DECR_TOLERANCE = 0.01
"""Largest relative change of V_decr that :func:`decr_units` rounds silently."""


def decr_units(v_decr: float, v_read: float) -> int:
    """C_s * V_decr in units, rounded to the nearest multiple of 2**MAX_MAG_BITS units.

    The multiple keeps the K halvings of the binary search exact integers; it makes the
    resolution of V_decr V_read / 2^15 (15 uV at V_read = 0.5 V), the step of a DAC code.
    A V_decr the rounding would move by more than 1 % (any V_decr below about 50 steps) is
    refused rather than silently replaced.
    """
    if not v_decr > 0 or not v_read > 0:
        raise ValueError(f"need v_decr > 0 and v_read > 0, got {v_decr}, {v_read}")
    step = 1 << MAX_MAG_BITS
    d = int(round(v_decr / v_read * (1 << CHARGE_FRAC_BITS) / step)) * step
    applied = d / (1 << CHARGE_FRAC_BITS) * v_read
    if abs(applied - v_decr) > DECR_TOLERANCE * v_decr:
        raise ValueError(
            f"v_decr = {v_decr} V is too fine for its resolution v_read / 2^15 = "
            f"{v_read / (1 << (CHARGE_FRAC_BITS - MAX_MAG_BITS)):.3g} V (it would round to "
            f"{applied:.3g} V); use a multiple of it"
        )
    return d


def sample_units(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Exact sampled charge floor(2**F * num / den) of a line settled to V_read * num / den.

    ``num`` and ``den`` are integer conductance sums; a line with ``den == 0`` (nothing
    driven reaches it) stays at V_ref and gives 0.
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    safe = np.where(den == 0, 1, den)
    scaled = num << CHARGE_FRAC_BITS
    # a float64 quotient (|num| <= den, so it is within one of the truth) corrected by the
    # exact integer remainder: the same floor as `scaled // safe`, several times faster
    q = np.floor(scaled / safe).astype(np.int64)
    r = scaled - q * safe
    q -= r < 0
    q += r >= safe
    return np.where(den == 0, 0, q)


def dac_levels(v_ref: float, v_decr: float, k: int) -> np.ndarray:
    """The shared DAC's 2k rail voltages V_ref -/+ V_decr / 2^m, m = 0..k-1 (sorted)."""
    m = np.arange(k)
    return np.sort(np.concatenate([v_ref - v_decr / 2.0**m, v_ref + v_decr / 2.0**m]))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_MAG_BITS:
        raise ValueError(f"magnitude bits K = {k!r} out of range [0, {MAX_MAG_BITS}]")


# ---------------------------------------------------------------- converters
def adc_exact(q, d: int, k: int, offset=0):
    """Closed form of both converters on integer charge ``q`` (units), V_decr ``d`` units.

    Returns ``(sign uint8, mag int64)``; ``offset`` is added at the comparator input. ``q``
    may be int64 or float64 holding integers (|q| < 2^52): the arithmetic is float64 and
    exact, because the residual is clipped at the top code before the one division, so the
    quotient stays below 2^K and its rounding error (< 2^-43) cannot cross an integer.
    NumPy arrays in give NumPy arrays out; tensors stay on their device.
    """
    _check_k(k)
    numpy_out = not isinstance(q, torch.Tensor)
    qe = as_tensor(q).to(torch.float64)
    if not (np.isscalar(offset) and offset == 0):
        qe = qe + as_tensor(offset, qe.device)
    sign, mag = adc_exact_t(qe, d, k)
    return like_input(sign, numpy_out), like_input(mag, numpy_out)


def adc_exact_t(qe: torch.Tensor, d: int, k: int):
    """adc_exact on float64 q + offset (a tensor this function may not modify)."""
    pos = qe > 0
    sign = pos.to(torch.uint8)
    if k == 0:
        return sign, torch.zeros(qe.shape, dtype=torch.int64, device=qe.device)
    lsb = d >> (k - 1)
    a = qe.abs()
    a -= pos.to(torch.float64)  # q > 0: |code| = ceil(q / lsb) - 1 = floor((q - 1) / lsb)
    a.clamp_(max=float(((1 << k) - 1) * lsb))
    # No division: CUDA divides by a scalar as a product with its reciprocal, whose rounding
    # puts an exact multiple of lsb just below its integer (one code low). Every device
    # runs this instead: the reciprocal product (within one of the floor), then the exact
    # remainder (integers below 2^53) corrects it, as the fused kernel does.
    m = a * (1.0 / lsb)
    m.floor_()
    r = a - m * float(lsb)
    m -= (r < 0).to(m.dtype)
    m += (r >= lsb).to(m.dtype)
    return sign, m.to(torch.int64)


def adc_closed_form(q: np.ndarray, k: int):
    """Spec closed form on real q = Q / (C_s V_decr): (sign, min(floor(|q| 2^(K-1)), 2^K-1)).

    The chip (:func:`adc_exact`, both converters, the RTL) agrees except exactly on a
    positive threshold q 2^(K-1) = c, where its comparator reads the zero residual as
    negative and gives c - 1."""
    _check_k(k)
    q = np.asarray(q, dtype=np.float64)
    mag = np.minimum(np.floor(np.abs(q) * 2.0 ** (k - 1)), 2**k - 1) if k else 0 * q
    return (q > 0).astype(np.uint8), mag.astype(np.int64)


def adc_binary(q, d: int, k: int, offset=0, noise: NoiseFn | None = None):
    """Step-by-step sign + binary search: V_decr halves per bit, the latched comparison picks
    subtract (residual > 0) or add, magnitude bits inverted when the sign is 0.

    Comparison m sees x_m = r_m + offset (+ a fresh noise draw; all k + 1 drawn at once);
    its bit is the sign bit of x_m and the next residual r_m - copysign(step, x_m), so both
    follow one bit. Without noise the arithmetic is float64 on integers, shifted by -1/2
    so that x is never 0: exact. With noise it is float32 (twice as fast): exact while
    |q + offset| < 2^24 charge units, above that the charge is rounded to 2^-24 relative,
    far below the noise; the sign of a rounded sum is that of the exact sum, so every
    decision is the one the noise draw implies; an input of exactly +0.0 reads as 1.
    """
    _check_k(k)
    numpy_out = not isinstance(q, torch.Tensor)
    r = as_tensor(q)
    r = r + as_tensor(offset, r.device)  # integers: exact
    if noise is None:
        r = r.to(torch.float64) - 0.5
        draws = None
    else:
        r = r.to(torch.float32)  # one rounding of q + offset
        draws = as_tensor(noise((k + 1,) + tuple(r.shape)), r.device)
    sign, mag = adc_binary_t(r, d, k, draws)
    return like_input(sign, numpy_out), like_input(mag, numpy_out)


def adc_binary_t(r: torch.Tensor, d: int, k: int, draws: torch.Tensor | None):
    """The search on the float residual r = q + offset (modified in place) and the k + 1
    comparator draws (or None)."""
    x = torch.empty((k + 1,) + tuple(r.shape), dtype=r.dtype, device=r.device)
    for m in range(k + 1):
        if draws is None:
            x[m] = r
        else:
            torch.add(r, draws[m], out=x[m])
        if m < k:
            step = torch.full((), float(d >> m), dtype=r.dtype, device=r.device)
            r -= torch.copysign(step, x[m])  # no host-to-device copy per step
    neg = torch.signbit(x)
    sign = ~neg[0]
    if k == 0:
        return sign.to(torch.uint8), torch.zeros(r.shape, dtype=torch.int64, device=r.device)
    bits = neg[1:] ^ sign  # bit = x > 0, inverted for a negative sign
    weights = torch.tensor([1 << (k - 1 - i) for i in range(k)], device=r.device)
    mag = (bits.to(torch.int64) * weights.view((k,) + (1,) * r.dim())).sum(dim=0)
    return sign.to(torch.uint8), mag


def adc_counting(q, d: int, k: int, offset=0, noise: NoiseFn | None = None):
    """Sign + count of equal steps of the LSB charge toward zero, at most 2^K - 1 steps;
    a neuron stops counting (and decrementing) at its first comparator flip (one noise
    draw per comparison, made step by step: up to 2^K of them)."""
    _check_k(k)
    numpy_out = not isinstance(q, torch.Tensor)
    r = as_tensor(q).to(torch.float64).clone()
    off = as_tensor(offset, r.device).to(torch.float64)

    def cmp():
        x = r + off
        if noise is not None:
            x = x + as_tensor(noise(tuple(r.shape)), r.device)
        return x > 0

    sign = cmp()
    count = torch.zeros(r.shape, dtype=torch.int64, device=r.device)
    if k > 0:
        lsb = d >> (k - 1)
        step = torch.where(sign, -float(lsb), float(lsb))
        active = torch.ones(r.shape, dtype=torch.bool, device=r.device)
        for _ in range((1 << k) - 1):
            r += torch.where(active, step, 0.0)
            same = cmp() == sign
            count += active & same
            active &= same
    return like_input(sign.to(torch.uint8), numpy_out), like_input(count, numpy_out)


def adc_convert(q, d: int, k: int, mode: AdcMode | str = AdcMode.BINARY, offset=0,
                noise: NoiseFn | None = None):
    """Convert with either mode; noise-free conversions use the exact closed form."""
    mode = AdcMode.parse(mode)
    if noise is None:
        return adc_exact(q, d, k, offset)
    return (adc_binary if mode is AdcMode.BINARY else adc_counting)(q, d, k, offset, noise)


def apply_activation(sign, mag, act: Activation):
    """ReLU reads out 0 when the sign is 0; identity and stochastic leave codes alone."""
    if act is Activation.RELU:
        mag = torch.where(sign == 1, mag, 0) if isinstance(mag, torch.Tensor) else (
            np.where(sign == 1, mag, 0))
    return sign, mag


def signed_value(sign, mag, k: int):
    """Signed output: +/-mag for K >= 1; a binary neuron (K = 0) gives +1 / -1. NumPy in,
    NumPy out; tensors give an int64 tensor on their device (a GPU's codes stay there)."""
    if isinstance(sign, torch.Tensor):
        sign = sign.to(torch.int64)
        if k == 0:
            return 2 * sign - 1
        mag = torch.as_tensor(mag, device=sign.device).to(torch.int64)
        return torch.where(sign == 1, mag, -mag)
    sign = np.asarray(sign).astype(np.int64)
    if k == 0:
        return 2 * sign - 1
    return np.where(sign == 1, mag, -np.asarray(mag, dtype=np.int64))


# ---------------------------------------------------------------- stateful neurons
class NeuronBank:
    """State of all neurons of a core for the cycle level: one method per control strobe.

    ``q_sample`` is the charge on C_sample and ``q_integ`` the charge on C_integ (units);
    ``clip`` bounds |q_integ| (integrator swing), ``offset`` is per-neuron at the comparator.
    """

    def __init__(self, n: int, clip: int | None = None, offset: np.ndarray | None = None):
        self.n, self.clip = n, clip
        self.offset = np.zeros(n, np.int64) if offset is None else np.asarray(offset, np.int64)
        self.precharge()

    def precharge(self) -> None:
        """C_sample to V_ref, C_integ discharged, comparator and converter state cleared."""
        self.q_sample = np.zeros(self.n, np.int64)
        self.q_integ = np.zeros(self.n, np.int64)
        self.cmp = np.zeros(self.n, np.uint8)
        self.sign = np.zeros(self.n, np.uint8)
        self.mag = np.zeros(self.n, np.int64)
        self.active = np.ones(self.n, bool)

    def _clip(self) -> None:
        if self.clip is not None:
            np.clip(self.q_integ, -self.clip, self.clip, out=self.q_integ)

    def sample(self, line_charge: np.ndarray) -> None:
        """C_sample takes C_s (V_line - V_ref) from the selected line."""
        self.q_sample = np.asarray(line_charge, np.int64).copy()

    def integrate(self) -> None:
        """C_sample's charge moves onto C_integ; C_sample is left at V_ref."""
        self.q_integ += self.q_sample
        self.q_sample[:] = 0
        self._clip()

    def inject(self, bits: np.ndarray, amp: int) -> None:
        """One LFSR noise pulse: +amp for bit 1, -amp for bit 0."""
        self.q_integ += np.where(np.asarray(bits) == 1, amp, -amp)
        self._clip()

    def compare_sign(self) -> np.ndarray:
        self.cmp = (self.q_integ + self.offset > 0).astype(np.uint8)
        self.sign = self.cmp.copy()
        return self.cmp

    def decrement(self, step: int, enable: np.ndarray | None = None) -> None:
        """Charge step C_s V_decr,m: subtract if the latched comparison is 1, else add."""
        delta = np.where(self.cmp == 1, -step, step)
        if enable is not None:
            delta = np.where(enable, delta, 0)
        self.q_integ += delta

    def compare(self, counting: bool) -> np.ndarray:
        """Latch a magnitude comparison: shift a bit in, or count while the sign holds."""
        self.cmp = (self.q_integ + self.offset > 0).astype(np.uint8)
        if counting:
            same = (self.cmp == self.sign) & self.active
            self.mag += same
            self.active &= same
        else:
            self.mag = (self.mag << 1) | self.cmp
        return self.cmp

    def readout(self, k: int, counting: bool, act: Activation):
        """(sign, magnitude) as written to the registers."""
        mag = self.mag if counting else np.where(self.sign == 1, self.mag,
                                                ((1 << k) - 1) - self.mag)
        return apply_activation(self.sign.copy(), mag, act)
