"""The MVM's computation on torch tensors, for one core or for many cores at once.

Why one module: :func:`.mvm.mvm` and :func:`.mvm.mvm_cores` only check and shape their
arguments; the arithmetic lives here, once, for every device. Cores are stacked on a
leading axis G (the segments of a compiled model), so many cores are one batched product
and one pass of the converters, not a Python loop over cores.

Per block of inputs (CPU: about ``BLOCK_OUTPUTS`` codes, so temporaries stay in cache;
GPU: the whole batch): bit planes, one product num = planes @ P per core, then the sampled
charge floor(num / den_units) (exact, see :mod:`.mvm_operands`), read noise per plane,
integrator clipping, LFSR injection and the converter. On the CPU the element-wise part
runs as one fused kernel (:mod:`.fused_cpu`) when numba is installed; it does the same
operations in the same precision and order, so without noise the codes are identical; its
noise comes from counter-based streams inside the kernel (:mod:`.fused_cpu`), the same
distributions as the torch path's draws but other samples (tested statistically), drawn
in aggregate by default (:mod:`.fused_aggregate`: one normal and one uniform per code).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from .fast_random import logistic_draws, normal_draws
from .mvm_operands import MvmOperands, floor_quotient, line_ids
from .neuron import adc_binary_t, adc_counting, adc_exact_t
from .tensors import exact_matmul, from_numpy

__all__ = [
    "BLOCK_OUTPUTS", "CoreOperands", "Effects", "core_operands", "fused_ok", "run", "stream_keys",
    "use_fused",
]

BLOCK_OUTPUTS = 16384
"""CPU batches run in blocks of about this many output codes, so that every temporary
stays in cache (fresh multi-MB temporaries cost page faults: 2-3x slower); 64 rows of a
full core also give the product a better shape than 32 (BLAS runs ~1.3x faster)."""

use_fused = True
"""Run the CPU's element-wise work in the fused numba kernel when numba is installed
(tests turn it off to compare it with the torch path)."""

aggregate_noise = True
"""The fused kernel draws its noise in aggregate (:mod:`.fused_aggregate`: one normal and
one uniform per output code, the same distributions); False: the sequential reference
(:func:`.fused_cpu.charge_adc`: a normal per bit plane, a uniform per comparison)."""


_FUSED_CPU = None
_FUSED_AGGREGATE = None


def _fused():
    """:mod:`.fused_cpu`, imported on first use: numba's import and the kernels' declarations
    take 0.4 s that a process which never runs an MVM (``cimflow compile``) need not pay.
    Kept in a global: an import statement per call cost microseconds at batch 1."""
    global _FUSED_CPU, _FUSED_AGGREGATE
    if _FUSED_CPU is None:
        from . import fused_aggregate, fused_cpu

        _FUSED_CPU, _FUSED_AGGREGATE = fused_cpu, fused_aggregate
    return _FUSED_CPU


def _charge_kernel(st, fx: Effects, inv_scale: float):
    """The fused kernel of a call: the aggregate sampler where there is noise to draw (and
    its e^(r / s) stays in range), else the sequential one (identical without noise)."""
    fused_cpu = _fused()
    if (aggregate_noise and (fx.noisy or inv_scale)
            and _FUSED_AGGREGATE.fits(st.d_units, st.k, inv_scale)):
        return _FUSED_AGGREGATE.charge_adc
    return fused_cpu.charge_adc


@dataclass(frozen=True)
class CoreOperands:
    """Operands of G cores, stacked on the leading axis, on one device."""

    matrix: torch.Tensor
    """P of every core (G, n_in, lines), float32 where exact for all, else float64."""
    den_f: torch.Tensor
    """max(Den, 1) of every core (G, lines) float64."""
    inv_units: torch.Tensor
    """2^24 / max(Den, 1) (G, lines) float64."""
    keep: tuple
    """The per-core :class:`MvmOperands` this was built from (keeps the cache key alive)."""


@dataclass(frozen=True)
class Effects:
    """One call's dynamic effects in charge units."""

    sigma: float
    """Read-noise std per sample (0: off), independent on each of a pulse's 2^b samples."""
    clip: int | None
    """Integrator swing, or None."""
    cmp_scale: float | None
    """Logistic comparator-noise scale, or None."""
    sigma_pulse: float = 0.0
    """Line-noise std per WL pulse (0: off): frozen on the floating line when the pulse ends,
    so all 2^b samples of plane b carry the same draw (std 2^b sigma_pulse in the sum)."""

    @property
    def noisy(self) -> bool:
        return bool(self.sigma or self.sigma_pulse)


_STACKS: OrderedDict = OrderedDict()


def core_operands(ops: tuple[MvmOperands, ...], device) -> CoreOperands:
    """The stacked operands of ``ops`` on ``device``. Memoised on the identity of the
    per-core operand objects, which a Crossbar rebuilds when its conductances change, so
    a stale stack is never returned."""
    device = torch.device(device)
    key = (tuple(id(o) for o in ops), str(device))
    hit = _STACKS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit.keep, ops, strict=True)):
        _STACKS.move_to_end(key)
        return hit
    dtype = np.float64 if any(o.matrix.dtype == np.float64 for o in ops) else np.float32
    m = from_numpy(np.stack([o.matrix.astype(dtype, copy=False) for o in ops]))
    den = from_numpy(np.stack([o.den_f for o in ops]))
    inv = from_numpy(np.stack([o.inv_units for o in ops]))
    stack = CoreOperands(m.to(device), den.to(device), inv.to(device), tuple(ops))
    _STACKS[key] = stack
    while len(_STACKS) > 8:
        _STACKS.popitem(last=False)
    return stack


@functools.lru_cache(maxsize=64)
def _noise_scale(sigma: float, n_planes: int, sigma_pulse: float = 0.0) -> np.ndarray:
    """Read-noise std of plane b's 2^b summed samples (float32): sigma sqrt(2^b) from the
    per-sample noise and 2^b sigma_pulse from the per-pulse line noise, in quadrature."""
    reps = np.exp2(np.arange(n_planes))
    s = np.sqrt(sigma**2 * reps + sigma_pulse**2 * reps**2).astype(np.float32)
    s.flags.writeable = False
    return s


def _powers_of_two(lo: int, hi: int, dtype, device) -> torch.Tensor:
    """2^lo .. 2^hi made exactly on the host (a device's exp2 need not be exact)."""
    return torch.tensor([2.0**e for e in range(lo, hi + 1)], dtype=dtype).to(device)


def planes_t(x: torch.Tensor, n_planes: int, dtype) -> torch.Tensor:
    """Ternary pulses (..., planes, n) of integer inputs (..., n): with t_b = trunc(x / 2^b),
    plane b is t_b - 2 t_(b+1) (exact, |x| < 2^8)."""
    scale = _powers_of_two(-n_planes, 0, dtype, x.device).flip(0)
    t = (x.unsqueeze(-2).to(dtype) * scale[:, None]).trunc_()
    return t[..., :-1, :] - 2 * t[..., 1:, :]


def _charge_t(num, ops: CoreOperands, z, zscale, clip):
    """Charge (G, B, lines) float64 of num (G, B, P, lines); see fused_cpu._charge_adc."""
    n_planes = num.shape[2]
    s = floor_quotient(num.to(torch.float64), ops.den_f[:, None, None, :],
                       ops.inv_units[:, None, None, :])
    reps = _powers_of_two(0, n_planes - 1, torch.float64, num.device)
    s *= reps[:, None]
    if z is not None:
        s += z * from_numpy(zscale).to(z.device)[:, None]
        s.round_()  # half to even, as np.rint
    if clip is None:
        return s.sum(dim=2)  # integers below 2^53: exact in any order
    q = torch.zeros(s.shape[:2] + s.shape[3:], dtype=torch.float64, device=s.device)
    for b in range(n_planes):
        q += s[:, :, b]
        q.clamp_(-clip, clip)
    return q


def fused_ok(x, st, fx: Effects, inject) -> bool:
    """Whether the fused CPU kernel serves this call (else the torch path)."""
    on_cpu = not isinstance(x, torch.Tensor) or x.device.type == "cpu"
    return (use_fused and on_cpu and inject is None and _fused().AVAILABLE
            and (fx.cmp_scale is None or st.adc_mode.name == "BINARY"))


def run(ops: tuple[MvmOperands, ...], x, st, fx: Effects, offsets, rng, inject=None):
    """Codes of integer inputs x (G, B, n_in) on G cores: (sign uint8, mag int64, charge
    int64), each (G, B, lines). ``offsets`` (G, lines) int64 charge units or None;
    ``inject`` (B, steps, lines) int64 LFSR pulses of one core (G = 1) or None.

    CPU inputs served by the fused kernel give NumPy arrays (no torch call on that path:
    each costs microseconds at batch 1); the torch path gives tensors on x's device.
    """
    if fused_ok(x, st, fx, inject):
        return _run_fused(ops, x if isinstance(x, np.ndarray) else x.numpy(), st, fx,
                          offsets, rng)
    x = x if isinstance(x, torch.Tensor) else from_numpy(x)
    dev = x.device
    stack = core_operands(ops, dev)
    g_n, batch, _ = x.shape
    lines = stack.den_f.shape[1]
    n_planes = _n_planes(st.in_bits)
    sign = torch.empty((g_n, batch, lines), dtype=torch.uint8, device=dev)
    mag = torch.empty((g_n, batch, lines), dtype=torch.int64, device=dev)
    q = torch.empty((g_n, batch, lines), dtype=torch.int64, device=dev)
    off = (torch.zeros((g_n, lines), dtype=torch.float64, device=dev) if offsets is None
           else from_numpy(offsets).to(dev, torch.float64))
    if inject is not None:
        inject = from_numpy(inject).to(dev)
    block = batch if dev.type != "cpu" else max(1, BLOCK_OUTPUTS // (g_n * lines))
    zscale = _noise_scale(fx.sigma, n_planes, fx.sigma_pulse) if fx.noisy else None
    for lo in range(0, batch, block):
        hi = min(lo + block, batch)
        pulses = None if inject is None else inject[lo:hi]
        _block_torch(stack, x[:, lo:hi], n_planes, fx, zscale, rng, st, off, pulses,
                     sign[:, lo:hi], mag[:, lo:hi], q[:, lo:hi])
    return sign, mag, q


def _run_fused(ops, x: np.ndarray, st, fx: Effects, offsets, rng):
    g_n, batch, _ = x.shape
    lines = ops[0].den.size
    sign, mag, q = _outputs((g_n, batch, lines))
    keys = (stream_keys(rng, g_n) if (fx.noisy or fx.cmp_scale is not None)
            else np.zeros(g_n, np.uint64))
    for g in range(g_n):  # core by core: each block is one plain 2-D product (BLAS's best)
        off = _ZEROS(1, lines) if offsets is None else offsets[g:g + 1].astype(np.float64)
        _fused_core(ops[g], x[g:g + 1], st, fx, off, keys[g:g + 1], sign[g:g + 1],
                    mag[g:g + 1], q[g:g + 1])
    return sign, mag, q


def _outputs(shape):
    """Fresh (sign uint8, mag int64, charge int64) arrays of ``shape``, views of one buffer.

    Why one: at batch 1024 the three outputs are 4.5 MB that glibc maps fresh on every call
    and the kernel faults in 4 KiB pages (about 1,000 faults, 40 % of an ideal MVM's time
    here); one buffer of 4 MiB or more gets NumPy's transparent-huge-page advice instead."""
    n = math.prod(shape)
    buf = np.empty(17 * n, np.uint8)
    mag = buf[:8 * n].view(np.int64).reshape(shape)
    q = buf[8 * n:16 * n].view(np.int64).reshape(shape)
    return buf[16 * n:].reshape(shape), mag, q


def stream_keys(rng, n: int) -> np.ndarray:
    """``n`` uint64 keys of the fused kernel's random streams, one per core, drawn from the
    caller's NumPy or torch Generator (one call: a seeded Generator repeats the noise)."""
    if isinstance(rng, torch.Generator):
        k = torch.randint(-(1 << 63), (1 << 63) - 1, (n,), generator=rng, device=rng.device,
                          dtype=torch.int64)
        return k.cpu().numpy().view(np.uint64)
    return rng.bit_generator.random_raw(n)


def _fused_core(op: MvmOperands, x: np.ndarray, st, fx: Effects, off, key, sign, mag, q):
    _, batch, n_in = x.shape
    matrix, den, inv = op.matrix, op.den_f[None], op.inv_units[None]
    lines = den.shape[1]
    n_planes = _n_planes(st.in_bits)
    zscale = _ZS if not fx.noisy else _noise_scale64(fx.sigma, n_planes, fx.sigma_pulse)
    clip = -1.0 if fx.clip is None else float(fx.clip)
    inv_scale = 0.0 if fx.cmp_scale is None else 1.0 / fx.cmp_scale
    ids, n_lines = line_ids(op)
    fused_cpu = _fused()
    charge_adc = _charge_kernel(st, fx, inv_scale)
    if (charge_adc is _FUSED_AGGREGATE.charge_adc
            and _FUSED_AGGREGATE.summed_ok(op.exact, n_planes)):
        _fused_core_summed(op, x, st, zscale, clip, inv_scale, off, key, ids, n_lines, sign,
                           mag, q)
        return
    block = max(1, BLOCK_OUTPUTS // lines)
    planes = np.empty((1, min(block, batch), n_planes, n_in), matrix.dtype)
    for lo in range(0, batch, block):
        hi = min(lo + block, batch)
        pl = planes[:, :hi - lo]
        fused_cpu.planes(x[:, lo:hi], n_planes, pl)
        # 2-D: NumPy's stacked matmul may skip BLAS for a (1, n, m) view
        num = (pl.reshape(-1, n_in) @ matrix).reshape(1, hi - lo, n_planes, lines)
        charge_adc(num, den, inv, key, lo, zscale, clip, off, st.d_units, st.k,
                             inv_scale, ids, n_lines, q[:, lo:hi], sign[:, lo:hi],
                             mag[:, lo:hi])


def _fused_core_summed(op: MvmOperands, x, st, zscale, clip, inv_scale, off, key, ids,
                       n_lines, sign, mag, q):
    """:func:`_fused_core` with one product of the whole input instead of one per bit plane
    (a third of the product's work at 3 planes; where :func:`.fused_aggregate.summed_ok`
    allows it: inexact operands). Blocks of as many rows as the planes' product had, so the
    product keeps its shape. With a swing, the kernel bounds every code's partial sums from
    the input row's norms and the line's (``line_norm``)."""
    _, batch, n_in = x.shape
    matrix, lines = op.matrix, op.den.size
    n_planes = _n_planes(st.in_bits)
    block = max(1, BLOCK_OUTPUTS * n_planes // lines)
    xf = np.empty((min(block, batch), n_in), matrix.dtype)
    if _FUSED_AGGREGATE.swing_unreached(n_planes, float(op.line_norm[1].max(initial=0.0)),
                                        zscale, clip):
        clip = -1.0  # no code's bound to check
    for lo in range(0, batch, block):
        hi = min(lo + block, batch)
        xb = xf[:hi - lo]
        np.copyto(xb, x[0, lo:hi], casting="unsafe")  # integer codes |x| < 2^7: exact
        num = (xb @ matrix).reshape(1, hi - lo, 1, lines)
        _FUSED_AGGREGATE.charge_adc_summed(
            num, op.den_f[None], op.inv_units[None], key, lo, zscale, clip, off, st.d_units,
            st.k, inv_scale, ids, n_lines, q[:, lo:hi], sign[:, lo:hi], mag[:, lo:hi],
            n_planes, x[0, lo:hi], matrix, op.line_norm)


@functools.lru_cache(maxsize=64)
def _noise_scale64(sigma: float, n_planes: int, sigma_pulse: float = 0.0) -> np.ndarray:
    """Noise std of plane b's 2^b summed samples (float64): sqrt(sigma^2 2^b + sigma_p^2 4^b),
    the per-sample read noise plus the per-pulse line noise shared by those samples."""
    b = np.exp2(np.arange(n_planes))
    s = np.sqrt(sigma * sigma * b + sigma_pulse * sigma_pulse * b * b)
    s.flags.writeable = False
    return s


@functools.lru_cache(maxsize=16)
def _ZEROS(g_n: int, lines: int) -> np.ndarray:  # noqa: N802 - a constant per shape
    z = np.zeros((g_n, lines))
    z.flags.writeable = False
    return z


def _n_planes(in_bits: int) -> int:
    return 1 if in_bits == 1 else in_bits - 1


def _product(ops: CoreOperands, planes: torch.Tensor) -> torch.Tensor:
    g_n, bs, n_planes, n_in = planes.shape
    num = exact_matmul(planes.reshape(g_n, bs * n_planes, n_in), ops.matrix)
    return num.reshape(g_n, bs, n_planes, -1)


def _block_torch(ops: CoreOperands, x, n_planes, fx, zscale, rng, st, off, pulses, sign, mag,
                 q_out):
    dev, (g_n, bs, _) = x.device, x.shape
    lines = ops.den_f.shape[1]
    num = _product(ops, planes_t(x, n_planes, ops.matrix.dtype))
    z = normal_draws(rng, (g_n, bs, n_planes, lines), dev) if fx.noisy else None
    q = _charge_t(num, ops, z, zscale, fx.clip)
    if pulses is not None:  # LFSR injection (one core): pulse by pulse under the swing
        if fx.clip is None:
            q += pulses.sum(dim=1).to(torch.float64)
        else:
            for t in range(pulses.shape[1]):
                q = (q + pulses[:, t]).clamp_(-fx.clip, fx.clip)
    q_out.copy_(q)
    qe = q + off[:, None, :]
    if fx.cmp_scale is None:
        s, m = adc_exact_t(qe, st.d_units, st.k)
    elif st.adc_mode.name == "BINARY":
        draws = logistic_draws(rng, (st.k + 1, g_n, bs, lines), fx.cmp_scale, dev)
        s, m = adc_binary_t(qe.to(torch.float32), st.d_units, st.k, draws)
    else:
        s, m = adc_counting(q, st.d_units, st.k, off[:, None, :],
                            lambda shape: logistic_draws(rng, shape, fx.cmp_scale, dev))
    sign.copy_(s)
    mag.copy_(m)


_ZS = np.zeros(0)
