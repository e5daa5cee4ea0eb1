"""What the algorithmic MVM needs from the array, folded once per array and direction.

Why: every MVM on a programmed core reuses the same conductances, so the work that depends
on them alone is done once and cached on the :class:`Crossbar` (until its ``g`` changes):

* the *product matrix* P (input values, output lines) with num = planes @ P. Forward and
  recurrent MVMs drive row pair 2r/2r+1 with +s/-s, so P[r] = G[2r] - G[2r+1] (half the
  rows of the physical product); backward MVMs drive SL k single-ended, so P = G[:, k].T.
  With IR drop each input line's conductances are scaled by its line gain first.
* the denominator Den (driven-line conductance sums, the voltage-mode normalisation) as
  ``den_units`` = Den / 2^24, so that one float division gives 2^24 num / Den.

Exactness (non-idealities off). P holds integer codes; |num| <= Den and all partial sums
are bounded by the largest column sum of |P|, so below 2^24 a float32 product is exact in
any summation order (float64 above). The quotient q = 2^24 num / Den has |q| <= 2^24; a
correctly rounded division errs by at most 2^24 * 2^-53 = 2^-29, while a non-integer q is
at least 1/Den > 2^-29 from an integer when Den < 2^29 codes. So floor(fl(q)) is the exact
floor(2^24 num / Den) that the cycle level computes in integers (``sample_units``).

The kernels get the same floor without a division (:func:`floor_quotient`): a product
with the reciprocal 2^24 / Den is within 2^-27 of q, so its floor is off by at most one,
and the remainder 2^24 num - q0 Den (integers below 2^53: exact) corrects it.

Restricted to some output lines (:func:`mvm_operands_lines`): P's columns, Den and the
neuron map of those lines only. Nothing is dropped from a kept line: its column of P still
has every input row and its Den still sums every driven row of the physical line, exactly
as the full operands hold them, and no output line's computation reads another line's
operands, so each kept line's result is the full evaluation's (code for code without noise;
the fused kernel's noise counters use the physical line index, so its noise is the same
too). What the unused lines would compute cannot change a kept line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .array import G_FRAC_BITS, Crossbar, Direction, neuron_of_line
from .neuron import CHARGE_FRAC_BITS
from .nonideal import NonIdeal

__all__ = [
    "MvmOperands", "mvm_operands", "MAX_DEN_CODES", "oriented_codes", "output_neurons",
    "check_input_length", "floor_quotient", "mvm_operands_lines", "line_ids",
]

MAX_DEN_CODES = 1 << 29
"""Largest conductance sum of one output line (codes) for which the float quotient is exact
(512k uS: 256 cells of 2 mS; no RRAM array comes near it)."""


def oriented_codes(xbar: Crossbar, direction: Direction) -> tuple[np.ndarray, int]:
    """The int64 conductance codes oriented (input lines, output lines) for ``direction``,
    and the length of an input vector of the mapped matrix."""
    n = xbar.vector_lengths(direction)[0]
    return (xbar.codes().T if direction is Direction.BACKWARD else xbar.codes()), n


def output_neurons(config, direction: Direction) -> np.ndarray:
    """The neuron that senses each output line (SLs, or BLs for backward MVMs)."""
    return neuron_of_line(config, on_sl=direction is not Direction.BACKWARD)


def check_input_length(direction: Direction, got: int, need: int) -> None:
    if got != need:
        raise ValueError(
            f"{direction.name.lower()} input has length {got}, the mapped matrix needs {need}"
        )


@dataclass(frozen=True)
class MvmOperands:
    n_input: int
    """Length of an input vector of the direction (Mapping.n_out for backward MVMs)."""
    matrix: np.ndarray
    """P (n_input, output lines), float32 where exact, else float64 (read-only)."""
    den: np.ndarray
    """Den of every output line (int64 codes); 0 where no driven cell reaches the line."""
    den_units: np.ndarray
    """max(Den, 1) / 2^24 (float64): num / den_units = 2^24 num / Den, and 0 when Den = 0
    (then num = 0 too)."""
    den_f: np.ndarray
    """max(Den, 1) (float64)."""
    inv_units: np.ndarray
    """2^24 / max(Den, 1) (float64), for :func:`floor_quotient`."""
    neuron: np.ndarray
    """The neuron that senses each output line."""
    order: np.ndarray | None
    """Recurrent MVMs: the output line of neuron n (neuron n writes BL n); else None."""
    lines: np.ndarray | None = None
    """Restricted operands: the physical output line (SL, or BL for backward MVMs) of each
    column of ``matrix``; None: all lines, in order."""
    n_lines: int = 0
    """Output lines of the whole array (the noise counters' stride); 0: ``den.size``."""
    exact: bool = True
    """P holds integer codes (no IR drop), so every product is exact; False: P is scaled by
    the IR drop's line gains and its float32 products round (see :func:`mvm_operands`)."""
    line_norm: np.ndarray | None = None
    """(2, lines) float64: 2^24 / max(Den, 1) times each line's L2 and L1 norm of P, so
    that an input row x gives |2^24 (|x| @ |P|) / Den| <= min(|x|_2 row 0, |x|_inf row 1):
    a bound on the sampled charges without a product."""


def _build(xbar: Crossbar, direction: Direction, ir_drop_ohm: float) -> MvmOperands:
    g, n = oriented_codes(xbar, direction)
    gf = g.astype(np.float64)
    if ir_drop_ohm:
        gain = NonIdeal(ir_drop_ohm=ir_drop_ohm).line_gain(gf / (1 << G_FRAC_BITS))
        gf = gf * gain[:, None]
    if direction is Direction.BACKWARD:
        p, den = gf[:n], g[:n].sum(axis=0)
    else:
        p, den = gf[0:2 * n:2] - gf[1:2 * n:2], g[:2 * n].sum(axis=0)
    if den.max(initial=0) >= MAX_DEN_CODES:
        raise ValueError(
            f"an output line's conductance sum ({den.max() / (1 << G_FRAC_BITS):.0f} uS) "
            f"exceeds the exact-MVM limit of {MAX_DEN_CODES / (1 << G_FRAC_BITS):.0f} uS"
        )
    exact32 = ir_drop_ohm or np.abs(p).sum(axis=0).max(initial=0) < (1 << 24)
    p = p.astype(np.float32 if exact32 else np.float64)
    den_f = np.maximum(den, 1).astype(np.float64)
    den_units = den_f / (1 << CHARGE_FRAC_BITS)
    inv_units = (1 << CHARGE_FRAC_BITS) / den_f
    neuron = output_neurons(xbar.config, direction)
    order = np.argsort(neuron) if direction is Direction.RECURRENT else None
    for a in (p, den, den_units, den_f, inv_units, neuron, order):
        if a is not None:
            a.flags.writeable = False
    return MvmOperands(n, p, den, den_units, den_f, inv_units, neuron, order,
                       exact=not ir_drop_ohm, line_norm=_line_norm(p, den_f))


def _line_norm(p: np.ndarray, den_f: np.ndarray) -> np.ndarray:
    a = np.abs(p.astype(np.float64))
    n = np.stack([np.sqrt((a * a).sum(axis=0)), a.sum(axis=0)]) * (
        float(1 << CHARGE_FRAC_BITS) / den_f)
    n.flags.writeable = False
    return n


def floor_quotient(num, den_f, inv_units):
    """floor(2^24 num / Den) of float64 tensors (broadcast) without a division:
    q0 = floor(num * 2^24 / Den) is within one of it, the exact remainder corrects q0."""
    q = (num * inv_units).floor()
    r = num * float(1 << CHARGE_FRAC_BITS) - q * den_f
    return q - (r < 0).to(q.dtype) + (r >= den_f).to(q.dtype)


def line_ids(ops: MvmOperands) -> tuple[np.ndarray, int]:
    """(physical line of each operand column as uint64, lines of the whole array): what the
    fused kernel's noise counters are indexed by, so that a restricted evaluation draws the
    full evaluation's noise for its lines."""
    if ops.lines is None:
        return _arange_u64(ops.den.size), ops.den.size
    return ops.lines.astype(np.uint64), ops.n_lines


_ARANGE: dict[int, np.ndarray] = {}


def _arange_u64(n: int) -> np.ndarray:
    a = _ARANGE.get(n)
    if a is None:
        a = _ARANGE[n] = np.arange(n, dtype=np.uint64)
        a.flags.writeable = False
    return a


def _restrict(full: MvmOperands, outputs: np.ndarray) -> MvmOperands:
    phys = outputs if full.order is None else full.order[outputs]
    parts = [np.ascontiguousarray(a[..., phys]) for a in (
        full.matrix, full.den, full.den_units, full.den_f, full.inv_units, full.neuron)]
    phys = np.array(phys, dtype=np.int64)
    for a in (*parts, phys):
        a.flags.writeable = False
    p, den, den_units, den_f, inv_units, neuron = parts
    return MvmOperands(full.n_input, p, den, den_units, den_f, inv_units, neuron, None,
                       phys, full.den.size, full.exact, _line_norm(p, den_f))


def mvm_operands_lines(xbar: Crossbar, direction: Direction, outputs,
                       ir_drop_ohm: float = 0.0) -> MvmOperands:
    """The operands of ``direction`` restricted to the output positions ``outputs`` (indices
    into an MVM's output order: SLs for forward MVMs, BLs for backward and recurrent ones),
    cached like :func:`mvm_operands`; ``outputs`` None gives the full operands. See the
    module docstring for why a kept line's result is unchanged."""
    if outputs is None:
        return mvm_operands(xbar, direction, ir_drop_ohm)
    full = mvm_operands(xbar, direction, ir_drop_ohm)
    outputs = np.asarray(outputs)
    n = full.den.size
    if (outputs.ndim != 1 or outputs.size == 0 or outputs.dtype.kind not in "iu"
            or outputs.min() < 0 or outputs.max() >= n):
        raise ValueError(f"lines must be a non-empty 1-D array of output lines in [0, {n}), "
                         f"got {outputs.dtype} {outputs.shape}")
    outputs = outputs.astype(np.int64, copy=False)
    return xbar.cached(("mvm_operands", direction, float(ir_drop_ohm), outputs.tobytes()),
                       lambda xb: _restrict(full, outputs))


def mvm_operands(xbar: Crossbar, direction: Direction, ir_drop_ohm: float = 0.0) -> MvmOperands:
    """The cached operands of ``direction`` on ``xbar`` (IR drop folded in when > 0).

    With IR drop the products are float32 (not exact; the effect is itself approximate and
    float32 rounding, ~1e-7 relative, is far below it).
    """
    return xbar.cached(("mvm_operands", direction, float(ir_drop_ohm)),
                       lambda xb: _build(xb, direction, ir_drop_ohm))
