"""Algorithmic level of a NeuRRAM MVM: batched, vectorised (docs/model.md#voltage-mode-mvm).

One MVM, for every input of a batch at once:

1. bit-serial input: magnitude bit m (LSB first) is one ternary pulse s_i in {-1, 0, +1};
   the output lines settle to V_ref + V_read * N_j / Den_j with N_j = sum_i s_i G_ij and
   Den_j = sum over driven input lines of G_ij (voltage-mode sensing);
2. the sampled charge C_s (V_j - V_ref) is integrated 2^(m-1) times, so
   Q = C_s V_read sum_m 2^(m-1) N_m / Den (integer charge units, see neuron.py);
3. optional LFSR noise pulses (stochastic activation), then the ADC and the activation.

Den is the "weight normalisation": :func:`recover` multiplies it back digitally using the
*target* conductances, as the chip's host does. Forward MVMs use differential input (row
pair 2r/2r+1 driven with +s/-s), backward MVMs differential output (the codes of BLs 2r and
2r+1 are subtracted after each is multiplied by its own Den).

With non-idealities off (or only static/integer ones) every number here is an exact integer
computed the way :mod:`.cycle` computes it, so both levels give identical codes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from cimflow.config import input_pulses
from cimflow.modes import AdcMode

from .array import G_FRAC_BITS, Crossbar, Direction
from .fast_random import standard_normal
from .mvm_operands import (
    MvmOperands,
    check_input_length,
    mvm_operands,
    oriented_codes,
    output_neurons,
)
from .neuron import (
    CHARGE_FRAC_BITS,
    MAX_MAG_BITS,
    Activation,
    adc_convert,
    apply_activation,
    charge_units,
    decr_units,
    signed_value,
)
from .nonideal import NonIdeal

__all__ = [
    "MvmSettings", "MvmResult", "input_schedule", "bit_planes", "quantize_inputs", "settle",
    "drive_lines", "mvm", "recover", "split_two_phase", "two_phase_mvm",
]


@dataclass(frozen=True)
class MvmSettings:
    """Operating point of one MVM. ``in_bits`` = 1 is an unsigned binary input {0, 1};
    n >= 2 is 1 sign + (n - 1) magnitude bits. ``out_bits`` = 1 sign + K magnitude bits.
    Both are run-time choices up to the core's ``input_bits``/``output_bits``, checked by
    :meth:`check_config` wherever the core is known (:func:`mvm`, the cycle level)."""

    direction: Direction = Direction.FORWARD
    in_bits: int = 4
    out_bits: int = 8
    adc_mode: AdcMode = AdcMode.BINARY
    """ADC mode; the lower-case name ("binary", "counting") is accepted too."""
    activation: Activation = Activation.IDENTITY
    v_read: float = 0.5
    """Input pulse amplitude (V)."""
    v_decr: float = 0.05
    """Charge-decrement voltage (V); the ADC's full scale is +-2 C_s V_decr. Its resolution is
    v_read / 2^15 (a DAC code); it is rounded to that grid (see :attr:`v_decr_applied`), and
    refused where the rounding would move it by more than 1 %."""
    inject_steps: int = 0
    v_inject: float = 0.0
    t_wl: int = 1
    """Clocks the WL pulse strobe is held (the pulse generator's width; 10 ns each)."""
    t_sample: int = 1
    """Clocks each SAMPLE strobe is held."""
    t_integ: int = 1
    """Clocks each INTEGRATE strobe is held (NeuRRAM: 240 ns = 24 clocks)."""

    def __post_init__(self) -> None:
        def bad(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"{name} = {v!r} is out of range [{lo}, {hi}]")

        bad("in_bits", 1, 8)
        bad("out_bits", 1, MAX_MAG_BITS + 1)
        bad("inject_steps", 0, 1 << 16)
        bad("t_wl", 1, 15)
        bad("t_sample", 1, 15)
        bad("t_integ", 1, 255)
        if not isinstance(self.direction, Direction):
            raise ValueError(f"direction must be a Direction, got {self.direction!r}")
        if not isinstance(self.activation, Activation):
            raise ValueError(f"activation must be an Activation, got {self.activation!r}")
        object.__setattr__(self, "adc_mode", AdcMode.parse(self.adc_mode))
        for name in ("v_read", "v_decr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.v_inject < 0:
            raise ValueError(f"v_inject must be >= 0, got {self.v_inject}")
        decr_units(self.v_decr, self.v_read)  # refuses a V_decr its grid would distort

    @classmethod
    def from_config(cls, config, **changes) -> MvmSettings:
        """Defaults from a CoreConfig (input_bits, output_bits, adc_mode), then ``changes``,
        checked against the config's widths."""
        base = dict(in_bits=config.input_bits, out_bits=config.output_bits,
                    adc_mode=config.adc_mode)
        st = cls(**{**base, **changes})
        st.check_config(config)
        return st

    @property
    def k(self) -> int:
        """ADC magnitude bits."""
        return self.out_bits - 1

    def check_config(self, config) -> None:
        """Refuse settings wider than the core's widths (CoreConfig input_bits, output_bits):
        the RTL sizes its line registers and counters from them."""
        for name, field_name in (("in_bits", "input_bits"), ("out_bits", "output_bits")):
            if getattr(self, name) > getattr(config, field_name):
                raise ValueError(
                    f"{name} = {getattr(self, name)} exceeds the core's {field_name} = "
                    f"{getattr(config, field_name)}"
                )

    @property
    def d_units(self) -> int:
        """C_s V_decr in charge units."""
        return decr_units(self.v_decr, self.v_read)

    @property
    def v_decr_applied(self) -> float:
        """The V_decr the neurons use: ``v_decr`` rounded to its grid of v_read / 2^15."""
        return self.d_units / (1 << CHARGE_FRAC_BITS) * self.v_read

    @property
    def lsb_units(self) -> int:
        return self.d_units >> max(self.k - 1, 0)

    @property
    def inject_units(self) -> int:
        return int(np.rint(charge_units(self.v_inject, self.v_read)))


@dataclass
class MvmResult:
    """Codes of every output line (forward: SL order; backward, recurrent: BL order).

    Sign 1 means charge > 0; the magnitude truncates toward zero, and the comparator reads a
    zero residual as negative, so a charge of exactly c LSB > 0 reads c - 1 and a zero
    charge reads sign 0, code 0 (:func:`recover` gives each code's charge bin)."""

    settings: MvmSettings
    sign: np.ndarray
    mag: np.ndarray
    charge: np.ndarray
    """Integrated charge before conversion (units), same shape as the codes."""
    extra: dict = field(default_factory=dict)

    @property
    def value(self) -> np.ndarray:
        return signed_value(self.sign, self.mag, self.settings.k)


def input_schedule(in_bits: int) -> tuple[int, int]:
    """(WL pulses, sample+integrate cycles): (n-1, 2^(n-1)-1); binary input (1, 1)."""
    if not 1 <= in_bits <= 8:
        raise ValueError(f"in_bits = {in_bits} is out of range [1, 8]")
    m = input_pulses(in_bits)
    return m, (1 << m) - 1


def quantize_inputs(x: np.ndarray, in_bits: int) -> np.ndarray:
    """Floats in [-1, 1] (or [0, 1] for 1 bit) to integer inputs, round to nearest."""
    x = np.asarray(x, dtype=np.float64)
    if in_bits == 1:
        return np.rint(np.clip(x, 0.0, 1.0)).astype(np.int64)
    top = (1 << (in_bits - 1)) - 1
    return np.rint(np.clip(x, -1.0, 1.0) * top).astype(np.int64)


def _check_inputs(x: np.ndarray, in_bits: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError(f"inputs must be integers (see quantize_inputs), got dtype {x.dtype}")
    lo, hi = (0, 1) if in_bits == 1 else (-((1 << (in_bits - 1)) - 1), (1 << (in_bits - 1)) - 1)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(
            f"inputs out of range for in_bits = {in_bits}: need {lo} <= x <= {hi}, got "
            f"[{x.min()}, {x.max()}]"
        )
    return x


_PLANE_SCALE = np.exp2(-np.arange(9)).astype(np.float32)


def bit_planes(x: np.ndarray, in_bits: int, dtype=np.int8) -> np.ndarray:
    """Ternary pulses (M, ..., n): plane m-1 = sign(x) * bit m of |x| (LSB first)."""
    planes = _planes(_check_inputs(x, in_bits), in_bits)
    return planes if np.dtype(dtype) == np.float32 else planes.astype(dtype)


def _planes(x: np.ndarray, in_bits: int) -> np.ndarray:
    """bit_planes of checked inputs, float32. With t_b = trunc(x / 2^b), plane b is
    t_b - 2 t_(b+1): four array operations for all planes, exact (|x| < 2^8)."""
    m, _ = input_schedule(in_bits)
    t = np.multiply.outer(_PLANE_SCALE[:m + 1], x.astype(np.float32))
    np.trunc(t, out=t)
    return np.subtract(t[:-1], 2 * t[1:])


def settle(v_in: np.ndarray, g: np.ndarray, driven: np.ndarray) -> np.ndarray:
    """V_j = sum_i V_i G_ij / sum_i G_ij over driven input lines i (voltage-mode sensing)."""
    w = g * np.asarray(driven, dtype=bool)[:, None]
    return (np.asarray(v_in, dtype=np.float64) @ w) / w.sum(axis=0)


def drive_lines(xbar: Crossbar, direction: Direction, planes: np.ndarray):
    """Physical input pulses and the driven-line mask.

    Returns ``(s, driven, g)``: s (..., input lines) in {-1, 0, 1}, driven (input lines,)
    bool and the int64 conductance codes oriented (input lines, output lines).
    """
    g, n = oriented_codes(xbar, direction)
    check_input_length(direction, planes.shape[-1], n)
    lines = g.shape[0]
    s = np.zeros(planes.shape[:-1] + (lines,), dtype=np.int8)
    driven = np.zeros(lines, dtype=bool)
    if direction is Direction.BACKWARD:
        s[..., :n] = planes
        driven[:n] = True
    else:
        s[..., 0:2 * n:2] = planes
        s[..., 1:2 * n:2] = -planes
        driven[:2 * n] = True
    return s, driven, g


BLOCK_OUTPUTS = 8192
"""Batch rows are processed in blocks of about this many output codes, so that every
temporary stays in cache (fresh multi-MB temporaries cost page faults: 2-3x slower)."""


def mvm(xbar: Crossbar, x: np.ndarray, settings: MvmSettings, nonideal: NonIdeal | None = None,
        rng: np.random.Generator | None = None, lfsr=None,
        offsets: np.ndarray | None = None) -> MvmResult:
    """Batched MVM of integer inputs ``x`` (..., n) on ``xbar``; see the module docstring.

    ``x`` is the input of ``direction``: forward and recurrent x (..., n_in) for x W,
    backward delta (..., n_out) for W delta (:meth:`Crossbar.vector_lengths`). ``settings``
    must fit the core's widths (:meth:`MvmSettings.check_config`).

    ``offsets``: per-neuron comparator offsets (units), drawn from ``nonideal`` if None.
    ``lfsr``: an ``LfsrChains``; needed for the stochastic activation with injection.
    """
    settings.check_config(xbar.config)
    ni = nonideal or _IDEAL
    if rng is None and ni.random:
        rng = np.random.default_rng(0)
    st = settings
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension (..., n)")
    ops = mvm_operands(xbar, st.direction, ni.ir_drop_ohm)
    check_input_length(st.direction, x.shape[-1], ops.n_input)
    if st.activation is Activation.STOCHASTIC and st.inject_steps and lfsr is None:
        raise ValueError("the stochastic activation with inject_steps > 0 needs an lfsr")
    if offsets is None:
        offsets = ni.offsets(xbar.config.rows, st.v_read, rng) if ni.adc_offset_v else None
    else:
        offsets = np.asarray(offsets)
        if offsets.shape != (xbar.config.rows,) or offsets.dtype.kind not in "iu":
            raise ValueError(
                f"offsets must be integer charge units, one per neuron, shape "
                f"({xbar.config.rows},); got {offsets.dtype} {offsets.shape}"
            )
    lead, n_out = x.shape[:-1], ops.den.size
    x = _check_inputs(x, st.in_bits).reshape(-1, ops.n_input)
    batch = x.shape[0]
    block = max(1, BLOCK_OUTPUTS // n_out)
    starts = range(0, batch, block)
    clip = ni.clip_units(st.v_read)
    sigma = float(charge_units(ni.read_noise_v, st.v_read))
    # q is the returned charge and the converter's input: one int64 array, since every
    # fresh output array costs page faults (about 1.7 us per 4 KiB on our machines)
    if batch <= block:
        q = _charge(ops, x, st.in_bits, sigma, clip, rng).astype(np.int64)
    else:  # blocks written into one array, so each block's temporaries are freed and reused
        q = np.empty((batch, n_out), np.int64)
        for lo in starts:
            q[lo:lo + block] = _charge(ops, x[lo:lo + block], st.in_bits, sigma, clip, rng)
    if st.activation is Activation.STOCHASTIC and st.inject_steps:
        bits = lfsr.bits(batch * st.inject_steps)[:, ops.neuron]
        pulses = np.where(bits == 1, st.inject_units, -st.inject_units).astype(np.int64)
        pulses = pulses.reshape(batch, st.inject_steps, n_out)
        if clip is None:
            q += pulses.sum(axis=-2)
        else:
            for t in range(st.inject_steps):
                q = np.clip(q + pulses[:, t, :], -clip, clip)

    offsets = 0 if offsets is None else offsets[ops.neuron]
    noise = ni.cmp_noise(st.v_read, rng)
    if batch <= block:
        sign, mag = adc_convert(q, st.d_units, st.k, st.adc_mode, offsets, noise)
    else:
        sign, mag = np.empty((batch, n_out), np.uint8), np.empty((batch, n_out), np.int64)
        for lo in starts:
            sign[lo:lo + block], mag[lo:lo + block] = adc_convert(
                q[lo:lo + block], st.d_units, st.k, st.adc_mode, offsets, noise)
    sign, mag = apply_activation(sign, mag, st.activation)
    if ops.order is not None:  # recurrent: neuron n senses SL order[n], writes BL n
        sign, mag, q = sign[:, ops.order], mag[:, ops.order], q[:, ops.order]
    shape = lead + (n_out,)
    return MvmResult(st, sign.reshape(shape), mag.reshape(shape), q.reshape(shape),
                     {"den": ops.den})


def _charge(ops: MvmOperands, x: np.ndarray, in_bits: int, sigma: float, clip: int | None,
            rng: np.random.Generator | None) -> np.ndarray:
    """Integrated charge (batch, output lines) of a block of inputs x (batch, n_input), float64
    holding integers (units); ``sigma``: read noise per sample (units), ``clip``: the
    integrator's swing (units) or None."""
    planes = _planes(x, in_bits)
    n_planes, batch = planes.shape[:2]
    # every bit plane in one product; floor(2^24 num / Den) is exact (see mvm_operands)
    samples = (planes.reshape(-1, ops.n_input) @ ops.matrix) / ops.den_units
    samples = np.floor(samples, out=samples).reshape(n_planes, batch, -1)
    reps = _REPS[:n_planes]  # plane b is integrated 2^b times
    if not sigma and clip is None:  # exact: integers below 2^53 in any summation order
        return (reps @ samples.reshape(n_planes, -1)).reshape(batch, -1)
    samples *= reps[:, None, None]
    if sigma:  # one read-noise draw per sample, summed over the 2^b integrations
        z = standard_normal(rng, samples.shape)
        z *= _noise_scale(sigma, n_planes)
        samples += z
        np.rint(samples, out=samples)
    q = samples.sum(axis=0)
    if clip is None:
        return q
    # sum over planes of max |sample|, an upper bound of every partial sum: if it stays
    # within the integrator's swing nothing clips (two reductions instead of the loop)
    hi, lo = samples.max(axis=(1, 2)), samples.min(axis=(1, 2))
    if np.maximum(hi, -lo).sum() <= clip:
        return q
    q = np.zeros(samples.shape[1:])
    for b in range(n_planes):
        q += samples[b]
        np.minimum(q, clip, out=q)
        np.maximum(q, -clip, out=q)
    return q


@functools.lru_cache(maxsize=64)
def _noise_scale(sigma: float, n_planes: int) -> np.ndarray:
    """Read-noise std of plane b's 2^b summed samples, sigma sqrt(2^b), shaped (planes, 1, 1)."""
    s = (sigma * np.sqrt(_REPS[:n_planes])).astype(np.float32)[:, None, None]
    s.flags.writeable = False
    return s


_REPS = np.exp2(np.arange(8))
_IDEAL = NonIdeal()


def _den_target(xbar: Crossbar, direction: Direction) -> np.ndarray:
    m = xbar.require_mapping()
    t = xbar.codes(target=True)
    if direction is Direction.BACKWARD:
        return t[:, :m.n_out].sum(axis=1)
    return t[:2 * m.n_in, :].sum(axis=0)


def recover(res: MvmResult, xbar: Crossbar, centre: bool = True) -> np.ndarray:
    """Digital recovery of x_int . W (forward, recurrent) or W . delta_int (backward) from the
    codes: multiply back the pre-computed normalisation Den of the target conductances.

    A code stands for a bin of charge one LSB wide (the converter truncates toward zero and
    its comparator reads a zero residual as negative): sign 1, code c is (c, c + 1] LSB, so a
    charge exactly on a positive threshold c LSB reads c - 1; sign 0, code c is
    (-(c + 1), -c] LSB. ``centre`` reconstructs each code at the middle of its bin,
    +-(c + 1/2) LSB, except sign 0, code 0, which reads 0: its bin (-1, 0] LSB holds the
    exact zero charge of an all-zero input, an empty column and every output a ReLU
    cleared, which must recover as 0, not -1/2 LSB. ``centre`` False gives +-c LSB (the raw
    shift-add value).
    """
    st, m = res.settings, xbar.require_mapping()
    if st.k == 0:
        raise ValueError("recover needs out_bits >= 2 (a binary neuron has no magnitude)")
    den = _den_target(xbar, st.direction).astype(np.float64) / (1 << G_FRAC_BITS)
    scale = st.lsb_units / (1 << CHARGE_FRAC_BITS) * m.w_max / m.g_max
    v = res.mag.astype(np.float64)
    if centre:
        v += np.where((res.sign == 1) | (res.mag > 0), 0.5, 0.0)
    v = np.where(res.sign == 1, v, -v)
    if st.direction is Direction.BACKWARD:
        y = v * den
        return (y[..., 0:2 * m.n_in:2] - y[..., 1:2 * m.n_in:2]) * scale
    if st.direction is Direction.RECURRENT:
        v = v[..., output_neurons(xbar.config, Direction.FORWARD)]  # BL order -> SL order
    return (v * den)[..., :m.n_out] * scale


def split_two_phase(x: np.ndarray, in_bits: int, n_lsb: int):
    """Split signed inputs into (x_msb, x_lsb, msb_bits, lsb_bits): |x| = 2^n_lsb hi + lo,
    both segments keep the sign of x."""
    x = _check_inputs(x, in_bits)
    if not 1 <= n_lsb <= in_bits - 2:
        raise ValueError(f"n_lsb = {n_lsb} must be in [1, in_bits - 2 = {in_bits - 2}]")
    a, s = np.abs(x), np.sign(x)
    return s * (a >> n_lsb), s * (a & ((1 << n_lsb) - 1)), in_bits - n_lsb, n_lsb + 1


def two_phase_mvm(xbar: Crossbar, x: np.ndarray, in_bits: int, n_lsb: int,
                  msb: MvmSettings, lsb: MvmSettings, **kw):
    """Two full MVM + ADC passes (MSB and LSB segments) and the digital shift-add.

    ``msb``/``lsb`` give each phase's operating point (their in_bits are overridden).
    Returns ``(estimate, res_msb, res_lsb)``; estimate = 2^n_lsb y_MSB + y_LSB, each y
    recovered with its own phase's LSB (equal LSBs reduce this to adding the codes).
    """
    x_msb, x_lsb, b_msb, b_lsb = split_two_phase(x, in_bits, n_lsb)
    r_msb = mvm(xbar, x_msb, replace(msb, in_bits=b_msb), **kw)
    r_lsb = mvm(xbar, x_lsb, replace(lsb, in_bits=b_lsb), **kw)
    est = (1 << n_lsb) * recover(r_msb, xbar) + recover(r_lsb, xbar)
    return est, r_msb, r_lsb

