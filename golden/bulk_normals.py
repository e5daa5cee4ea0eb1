"""Standard normals in bulk: Box-Muller on counter-based words, no tables.

Why: the rank-1 update (:mod:`.rpu.fused`) draws a cycle-to-cycle normal for every cell of
a pulsed row (35 000 per 256 x 256 update), and the fused MVM's aggregate sampler
(:mod:`.fused_aggregate`) a read-noise normal for every output code. The ziggurat of
:mod:`.fused_cpu` needs two table lookups per draw,
which in a vectorised loop are gathers (about 0.3 ns a draw each on our AVX-512 machine),
plus a branchy pass for the 1.2 % it rejects. Box-Muller needs no table and no rejection:
one 64-bit word of the counter-based stream (:func:`.fused_cpu._word`) gives two
independent normals through a log, a square root and a sine/cosine, all polynomials in
float32 lanes (16 to a 512-bit register; fused multiply-adds allowed, ``fastmath={"contract"}``,
which only removes roundings). The words are split into 32-bit halves in a first loop, so
that the transform's loop has no 64-bit lane and vectorises at the full float32 width.

The word w is read as two 32-bit halves, j = w mod 2^32 and k = w >> 32:

* radius r = sqrt(-2 ln u1), u1 = j 2^-32 + 2^-33 rounded to float32 (24 significant bits,
  in [2^-33, 1]): ln from the exponent and a series in f = (m - 1) / (m + 1) for the
  mantissa m in [sqrt(1/2), sqrt(2)];
* angle theta = q pi/2 + phi, q = k >> 30 the quadrant and phi = ((k mod 2^30) + 1/2) / 2^30
  * pi/2 - pi/4 in (-pi/4, pi/4): the same uniform angle on the circle as 2 pi u2 (a
  rotation of each quadrant's arc), so that sin and cos need only |phi| <= pi/4 Taylor
  polynomials, and the quadrant is a swap and signs;
* outputs r cos(theta) and r sin(theta), float32.

The transform is within a few float32 roundings of float64 NumPy on the same uniforms
(measured 1.1e-7 (1 + r), tested to 1e-6 (1 + r)), so the draws have the Box-Muller
distribution of float32 uniforms: r^2 is Exp(1/2) and theta uniform, each to float32's
2^-24 resolution, and r stops at sqrt(66 ln 2) = 6.77 (the mass beyond, 2^-33, is the only
cut). The MVM path's NumPy Box-Muller (:func:`.fast_random.standard_normal`) works at the
same float32 resolution.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    AVAILABLE = False

from .fused_cpu import _word

__all__ = ["AVAILABLE", "fill_pairs", "pair"]

_F32 = np.float32
_LN2 = _F32(math.log(2.0))
_LOG_C = tuple(_F32(2.0 / (2 * i + 1)) for i in range(5))
"""ln m = 2 atanh f = 2 sum f^(2i+1) / (2i+1): through i = 4, error below 1e-9 for
|f| <= 0.1716."""
_SIN_C = tuple(_F32((-1) ** i / math.factorial(2 * i + 1)) for i in range(5))
_COS_C = tuple(_F32((-1) ** i / math.factorial(2 * i)) for i in range(6))
"""Taylor polynomials of sin (through phi^9) and cos (through phi^10) on |phi| <= pi/4:
errors below 2e-9 and 1.2e-10, under float32's 6e-8."""
_SQRT2 = _F32(math.sqrt(2.0))
_LO32 = np.uint64(0xFFFFFFFF)
_U32 = _F32(2.0**-32)
_U33 = _F32(2.0**-33)
_PHI_STEP = _F32(math.pi / 2 * 2.0**-30)
_PHI_0 = _F32(math.pi / 2 * 2.0**-31 - math.pi / 4)
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


if AVAILABLE:
    @intrinsic
    def _bits(typingctx, x):
        """The IEEE bits of a float32 as an int32 (an LLVM bitcast: vectorises)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(32))
        return types.int32(types.float32), codegen

    @intrinsic
    def _from_bits(typingctx, x):
        """The float32 of given IEEE bits (int32)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.FloatType())
        return types.float32(types.int32), codegen


def _log(a):
    """ln a for a normal float32 a > 0, branch-free (selects, not jumps)."""
    b = _bits(a)
    e = _F32((b >> np.int32(23)) - np.int32(127))
    m = _from_bits((b & np.int32(0x7FFFFF)) | np.int32(0x3F800000))  # a = m 2^e, m in [1, 2)
    big = m > _SQRT2
    m = m * _F32(0.5) if big else m
    e = e + _F32(1.0) if big else e
    f = (m - _F32(1.0)) / (m + _F32(1.0))
    s = f * f
    c = _LOG_C
    p = c[4]
    for i in range(3, -1, -1):
        p = p * s + c[i]
    return f * p + e * _LN2


def pair(j, k):
    """The two standard normals (float32) of the halves j, k (uint32) of a word."""
    r = math.sqrt(_F32(-2.0) * _log(_F32(j) * _U32 + _U33))
    quad = k >> np.uint32(30)
    phi = _F32(k & np.uint32((1 << 30) - 1)) * _PHI_STEP + _PHI_0
    t = phi * phi
    sp = _SIN_C[4]
    for i in range(3, -1, -1):
        sp = sp * t + _SIN_C[i]
    sn = sp * phi
    cs = _COS_C[5]
    for i in range(4, -1, -1):
        cs = cs * t + _COS_C[i]
    odd = (quad & np.uint32(1)) != 0  # theta + pi/2: (cos, sin) -> (-sin, cos)
    c1 = sn if odd else cs
    s1 = cs if odd else sn
    c1 = -c1 if (quad == 1) | (quad == 2) else c1
    s1 = -s1 if quad >= 2 else s1
    return r * c1, r * s1


def fill_pairs(buf, k, s, halves):
    """buf[q] for q < k: standard normals (float32) from the words of key s[6] at counters
    s[7], s[7] + 1, ..., h = ceil(k/2) of them, word q giving buf[q] and buf[q + h] (two
    contiguous halves: the loops vectorise); buf and the scratch ``halves`` (uint32) hold
    2 h; s[7] moves on by h."""
    h = (k + 1) // 2
    key, c0 = s[6], s[7]
    for q in range(h):
        w = _word(key, c0 + np.uint64(q))
        halves[q] = np.uint32(w & _LO32)
        halves[q + h] = np.uint32(w >> np.uint64(32))
    for q in range(h):
        buf[q], buf[q + h] = pair(halves[q], halves[q + h])
    s[7] = c0 + np.uint64(h)


if AVAILABLE:
    _log = njit(inline="always", **_OPTS)(_log)
    pair = njit(inline="always", **_OPTS)(pair)
    fill_pairs = njit(**_OPTS)(fill_pairs)
