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
import torch

from cimflow.config import input_pulses
from cimflow.modes import AdcMode

from . import mvm_kernels
from .array import G_FRAC_BITS, Crossbar, Direction
from .mvm_kernels import BLOCK_OUTPUTS, planes_t
from .mvm_operands import (
    check_input_length,
    mvm_operands_lines,
    oriented_codes,
    output_neurons,
)
from .neuron import (
    CHARGE_FRAC_BITS,
    MAX_MAG_BITS,
    Activation,
    apply_activation,
    charge_units,
    decr_units,
    integ_units,
    signed_value,
)
from .nonideal import NonIdeal
from .tensors import from_numpy, like_input

__all__ = [
    "MvmSettings", "MvmResult", "input_schedule", "bit_planes", "quantize_inputs", "settle",
    "drive_lines", "mvm", "mvm_cores", "recover", "code_value", "code_step", "split_two_phase",
    "two_phase_mvm", "BLOCK_OUTPUTS",
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

    @functools.cached_property
    def d_units(self) -> int:
        """C_s V_decr in charge units (cached: the settings are frozen, and the MVM reads it
        per block)."""
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
    def value(self):
        """Signed codes (:func:`.neuron.signed_value`), NumPy or a tensor on the codes' device."""
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


def _check_inputs(x, in_bits: int):
    """Integer inputs within range, as int64 (a NumPy array, or a tensor on its device)."""
    is_t = isinstance(x, torch.Tensor)
    if not is_t:
        x = np.asarray(x)
    if (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool) if is_t else (
            x.dtype.kind not in "iu"):
        raise ValueError(f"inputs must be integers (see quantize_inputs), got dtype {x.dtype}")
    lo, hi = (0, 1) if in_bits == 1 else (-((1 << (in_bits - 1)) - 1), (1 << (in_bits - 1)) - 1)
    if x.numel() if is_t else x.size:
        mn, mx = (torch.aminmax(x) if is_t else (x.min(), x.max()))
        if mn < lo or mx > hi:
            raise ValueError(
                f"inputs out of range for in_bits = {in_bits}: need {lo} <= x <= {hi}, got "
                f"[{int(mn)}, {int(mx)}]"
            )
    if is_t:
        return x.to(torch.int64)
    # NumPy: any integer type holds the checked codes (|x| <= 127); a narrow one (a compiled
    # model's int8 codes) is kept, as the fused kernel reads it directly, at 1/8 the traffic
    return x if x.dtype.kind == "i" else x.astype(np.int64)


def bit_planes(x, in_bits: int, dtype=np.int8):
    """Ternary pulses (M, ..., n): plane m-1 = sign(x) * bit m of |x| (LSB first).
    NumPy in, NumPy out (``dtype``); a tensor gives float32 planes on its device."""
    if isinstance(x, torch.Tensor):
        x = _check_inputs(x, in_bits)
        return planes_t(x, input_schedule(in_bits)[0], torch.float32).movedim(-2, 0)
    t = planes_t(from_numpy(_check_inputs(x, in_bits)), input_schedule(in_bits)[0],
                  torch.float32)
    planes = t.movedim(-2, 0).numpy()
    return planes if np.dtype(dtype) == np.float32 else planes.astype(dtype)


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


def mvm(xbar: Crossbar, x, settings: MvmSettings, nonideal: NonIdeal | None = None,
        rng=None, lfsr=None, offsets: np.ndarray | None = None, lines=None) -> MvmResult:
    """Batched MVM of integer inputs ``x`` (..., n) on ``xbar``; see the module docstring.

    ``x`` is the input of ``direction``: forward and recurrent x (..., n_in) for x W,
    backward delta (..., n_out) for W delta (:meth:`Crossbar.vector_lengths`). ``settings``
    must fit the core's widths (:meth:`MvmSettings.check_config`).
    ``x`` is a NumPy array (codes come back as NumPy arrays) or a torch tensor (codes come
    back as tensors on its device, a GPU included). ``rng``: a NumPy Generator, or a torch
    Generator on the tensor's device for draws made there.
    ``offsets``: per-neuron comparator offsets (units), drawn from ``nonideal`` if None.
    ``lfsr``: an ``LfsrChains``; needed for the stochastic activation with injection.
    ``lines``: evaluate only these output lines (indices into the output order; see
    :func:`mvm_cores`); codes come back (..., len(lines)).
    """
    settings.check_config(xbar.config)
    st, ni = settings, nonideal or _IDEAL
    numpy_out = not isinstance(x, torch.Tensor)
    xt = _input_tensor(x)
    ops = mvm_operands_lines(xbar, st.direction, lines, ni.ir_drop_ohm)
    check_input_length(st.direction, xt.shape[-1], ops.n_input)
    if st.activation is Activation.STOCHASTIC and st.inject_steps and lfsr is None:
        raise ValueError("the stochastic activation with inject_steps > 0 needs an lfsr")
    if rng is None and ni.random:
        rng = np.random.default_rng(0)
    offsets = _offsets(xbar, st, ni, rng, offsets)
    lead, n_out = tuple(xt.shape[:-1]), ops.den.size
    xt = _check_inputs(xt, st.in_bits).reshape(1, -1, ops.n_input)
    inject = None
    if st.activation is Activation.STOCHASTIC and st.inject_steps:
        bits = lfsr.bits(xt.shape[1] * st.inject_steps)[:, ops.neuron]
        pulses = np.where(bits == 1, st.inject_units, -st.inject_units).astype(np.int64)
        inject = pulses.reshape(-1, st.inject_steps, n_out)
    off = None if offsets is None else offsets[ops.neuron][None]
    sign, mag, q = mvm_kernels.run((ops,), xt, st, _effects(ni, st), off, rng, inject)
    return _result(st, sign[0], mag[0], q[0], ops, lead + (n_out,), numpy_out,
                   {"den": ops.den})


def mvm_cores(xbars, x, settings: MvmSettings, nonideal: NonIdeal | None = None,
              rng=None, offsets=None, lines=None) -> MvmResult:
    """MVMs on G cores in one call: ``x`` (G, ..., n) holds each core's inputs; codes come
    back (G, ..., lines), as G calls of :func:`mvm` would give them without noise.

    Why: a compiled model's segments are many cores; one batched product and one pass of
    the converters replace a Python loop over cores. The cores must share the geometry
    (config and input length). ``offsets`` (G, neurons) or None (drawn per core); the
    stochastic injection (an LFSR per core) is not batched.

    ``lines``: evaluate only these output lines, indices into the output order (SLs for
    forward MVMs, BLs for backward and recurrent ones); codes come back (G, ..., len(lines)).
    Why: a compiled model's segment often uses 16-64 of a core's 256 columns, and every
    other line's product, charge and conversion is wasted work. Each kept line's codes are
    the full evaluation's (its Den still sums every driven row of the physical line; see
    :mod:`.mvm_operands`), noise included on the fused CPU path (same counters); the torch
    path draws other samples of the same distributions.
    """
    st, ni = settings, nonideal or _IDEAL
    xbars = list(xbars)
    if not xbars:
        raise ValueError("mvm_cores needs at least one core")
    numpy_out = not isinstance(x, torch.Tensor)
    xt = _input_tensor(x)
    if xt.ndim < 2 or xt.shape[0] != len(xbars):
        raise ValueError(f"inputs must be (cores = {len(xbars)}, ..., n), got {tuple(xt.shape)}")
    if st.activation is Activation.STOCHASTIC and st.inject_steps:
        raise ValueError("mvm_cores does not batch the stochastic injection; call mvm per core")
    if any(xb.config != xbars[0].config for xb in xbars):
        raise ValueError("mvm_cores needs cores of one configuration")
    st.check_config(xbars[0].config)
    ops = tuple(mvm_operands_lines(xb, st.direction, lines, ni.ir_drop_ohm) for xb in xbars)
    for o in ops:
        check_input_length(st.direction, xt.shape[-1], o.n_input)
    if rng is None and ni.random:
        rng = np.random.default_rng(0)
    if offsets is None:
        offsets = [_offsets(xb, st, ni, rng, None) for xb in xbars]
        offsets = None if offsets[0] is None else np.stack(offsets)
    elif np.shape(offsets) != (len(xbars), xbars[0].config.rows):
        raise ValueError(f"offsets must be (cores, neurons) = ({len(xbars)}, "
                         f"{xbars[0].config.rows}), got {np.shape(offsets)}")
    g_n, lead, n_out = len(xbars), tuple(xt.shape[1:-1]), ops[0].den.size
    xt = _check_inputs(xt, st.in_bits).reshape(g_n, -1, ops[0].n_input)
    off = None
    if offsets is not None:
        off = np.stack([np.asarray(offsets[i], np.int64)[o.neuron] for i, o in enumerate(ops)])
    sign, mag, q = mvm_kernels.run(ops, xt, st, _effects(ni, st), off, rng)
    den = np.stack([o.den for o in ops])
    return _result(st, sign, mag, q, ops[0], (g_n,) + lead + (n_out,), numpy_out,
                   {"den": den})


def _input_tensor(x):
    """x as a tensor, or as a NumPy array (the CPU path stays in NumPy)."""
    xt = x if isinstance(x, torch.Tensor) else np.asarray(x)
    if xt.ndim == 0:
        raise ValueError("input must have at least one dimension (..., n)")
    return xt


def _offsets(xbar, st, ni, rng, offsets):
    if offsets is None:
        return ni.offsets(xbar.config.rows, st.v_read, rng) if ni.adc_offset_v else None
    offsets = np.asarray(offsets)
    if offsets.shape != (xbar.config.rows,) or offsets.dtype.kind not in "iu":
        raise ValueError(
            f"offsets must be integer charge units, one per neuron, shape "
            f"({xbar.config.rows},); got {offsets.dtype} {offsets.shape}"
        )
    return offsets.astype(np.int64, copy=False)


@functools.lru_cache(maxsize=256)
def _effects(ni: NonIdeal, st: MvmSettings) -> mvm_kernels.Effects:
    """The call's dynamic effects in charge units (memoised: both are frozen, and at batch 1
    recomputing them was a tenth of the call)."""
    scale = integ_units(ni.cmp_noise_v, st.v_read) if ni.cmp_noise_v else None
    return mvm_kernels.Effects(float(charge_units(ni.read_noise_v, st.v_read)),
                               ni.clip_units(st.v_read), scale,
                               float(charge_units(ni.line_noise_v, st.v_read)))


def _result(st, sign, mag, q, ops, shape, numpy_out, extra) -> MvmResult:
    sign, mag = apply_activation(sign, mag, st.activation)
    if ops.order is not None:  # recurrent: neuron n senses SL order[n], writes BL n
        order = ops.order
        if isinstance(sign, torch.Tensor):
            order = from_numpy(order).to(sign.device)
        sign, mag, q = sign[..., order], mag[..., order], q[..., order]
    out = [_like(t.reshape(shape), numpy_out) for t in (sign, mag, q)]
    return MvmResult(st, *out, extra)


def _like(a, numpy_out: bool):
    if isinstance(a, np.ndarray):
        return a if numpy_out else from_numpy(a)
    return like_input(a, numpy_out)


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
    scale = _step_scale(st, m)
    v = code_value(res.sign, res.mag, centre)
    if st.direction is Direction.BACKWARD:
        y = v * den
        return (y[..., 0:2 * m.n_in:2] - y[..., 1:2 * m.n_in:2]) * scale
    if st.direction is Direction.RECURRENT:
        v = v[..., output_neurons(xbar.config, Direction.FORWARD)]  # BL order -> SL order
    return (v * den)[..., :m.n_out] * scale


def _step_scale(st: MvmSettings, m) -> float:
    if st.k == 0:
        raise ValueError("recover needs out_bits >= 2 (a binary neuron has no magnitude)")
    return st.lsb_units / (1 << CHARGE_FRAC_BITS) * m.w_max / m.g_max


def code_value(sign, mag, centre: bool = True) -> np.ndarray:
    """Signed output codes as the multiples of one code step :func:`recover` gives them:
    +-(c + 1/2) with ``centre`` (sign 0, code 0 reads 0), else +-c. NumPy arrays."""
    v = np.asarray(mag).astype(np.float64)
    if centre:
        v += np.where((np.asarray(sign) == 1) | (v > 0), 0.5, 0.0)
    return np.where(np.asarray(sign) == 1, v, -v)


def code_step(xbar: Crossbar, settings: MvmSettings) -> np.ndarray:
    """Forward MVM: x_int . W units of one output code step on every SL (column), i.e.
    ``recover == code_value * code_step`` column by column: the ADC LSB times the column's
    Den of the *target* conductances times w_max / g_max."""
    if settings.direction is not Direction.FORWARD:
        raise ValueError("code_step is defined for forward MVMs")
    m = xbar.require_mapping()
    den = _den_target(xbar, Direction.FORWARD).astype(np.float64) / (1 << G_FRAC_BITS)
    return den * _step_scale(settings, m)


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

