"""Standard normals in bulk for the rank-1 kernel: Box-Muller on counter-based words, no tables.

Why: the rank-1 update draws a cycle-to-cycle normal for every cell of a pulsed row (35 000
per 256 x 256 update). The ziggurat of :mod:`...fused_cpu` needs two table lookups per draw,
which in a vectorised loop are gathers (about 0.3 ns a draw each on our AVX-512 machine),
plus a branchy pass for the 1.2 % it rejects. Box-Muller needs no table and no rejection:
one 64-bit word of the counter-based stream (:func:`...fused_cpu._word`) gives two
independent normals through a log, a square root and a sine/cosine, all polynomials and
float64 lanes that vectorise (fused multiply-adds allowed: ``fastmath={"contract"}``, which
only removes roundings).

The word w is read as two 32-bit halves, j = w mod 2^32 and k = w >> 32:

* radius r = sqrt(-2 ln u1), u1 = (j + 1/2) / 2^32 in (0, 1): ln from the float64 exponent
  and a series in f = (m - 1) / (m + 1) for the mantissa m in [sqrt(1/2), sqrt(2)];
* angle theta = q pi/2 + phi, q = k >> 30 the quadrant and phi = ((k mod 2^30) + 1/2) / 2^30
  * pi/2 - pi/4 in (-pi/4, pi/4): the same uniform angle on the circle as 2 pi u2 (a
  rotation of each quadrant's arc), so that sin and cos need only |phi| <= pi/4 Taylor
  polynomials, and the quadrant is a swap and signs;
* outputs r cos(theta) and r sin(theta).

The transform is within 1e-11 of NumPy's log/sqrt/sin/cos on the same uniforms (tested),
so the draws have the Box-Muller distribution of 32-bit uniforms: r^2 is Exp(1/2) and theta
uniform, each to 2^-32 in probability, and r stops at sqrt(66 ln 2) = 6.77 (the mass
beyond, 2^-33, is the only cut). The float32 results round this by 2^-24 relative.
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

from ..fused_cpu import _word

__all__ = ["AVAILABLE", "fill_pairs", "pair"]

_LN2 = math.log(2.0)
_LOG_C = tuple(2.0 / (2 * i + 1) for i in range(7))
"""ln m = 2 atanh f = 2 sum f^(2i+1) / (2i+1): through i = 6, error below 2e-12 for
|f| <= 0.1716."""
_SIN_C = tuple((-1) ** i / math.factorial(2 * i + 1) for i in range(7))
_COS_C = tuple((-1) ** i / math.factorial(2 * i) for i in range(7))
"""Taylor polynomials of sin (through phi^13) and cos (through phi^12) on |phi| <= pi/4:
errors below 3e-14 and 5e-13."""
_MANT = (1 << 52) - 1
_ONE = 1023 << 52
_SQRT2 = math.sqrt(2.0)
_LO32 = np.uint64(0xFFFFFFFF)
_HALF_PI_2_30 = math.pi / 2 * 2.0**-30
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


if AVAILABLE:
    @intrinsic
    def _bits(typingctx, x):
        """The IEEE bits of a float64 as an int64 (an LLVM bitcast: vectorises)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(64))
        return types.int64(types.float64), codegen

    @intrinsic
    def _from_bits(typingctx, x):
        """The float64 of given IEEE bits (int64)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(types.int64), codegen


def _log(a):
    """ln a for a normal float64 a > 0, branch-free (selects, not jumps)."""
    b = _bits(a)
    e = np.float64((b >> 52) - 1023)
    m = _from_bits((b & _MANT) | _ONE)  # a = m 2^e, m in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    c = _LOG_C
    p = c[6]
    for i in range(5, -1, -1):
        p = p * s + c[i]
    return f * p + e * _LN2


def pair(w):
    """The two standard normals of word w (uint64), float64: (r cos theta, r sin theta)."""
    j = np.float64(np.int64(w & _LO32)) + 0.5
    r = math.sqrt(-2.0 * (_log(j) - 32.0 * _LN2))
    k = np.int64(w >> np.uint64(32))
    quad = k >> 30
    phi = (np.float64(k & ((1 << 30) - 1)) + 0.5) * _HALF_PI_2_30 - math.pi / 4
    t = phi * phi
    sp = _SIN_C[6]
    for i in range(5, -1, -1):
        sp = sp * t + _SIN_C[i]
    sn = sp * phi
    cs = _COS_C[6]
    for i in range(5, -1, -1):
        cs = cs * t + _COS_C[i]
    odd = (quad & 1) != 0  # theta + pi/2: (cos, sin) -> (-sin, cos)
    c1 = sn if odd else cs
    s1 = cs if odd else sn
    c1 = -c1 if (quad == 1) | (quad == 2) else c1
    s1 = -s1 if quad >= 2 else s1
    return r * c1, r * s1


def fill_pairs(buf, k, s):
    """buf[q] for q < k: standard normals (float32) from the words of key s[6] at counters
    s[7], s[7] + 1, ..., ceil(k/2) of them, word q giving buf[q] and buf[q + ceil(k/2)]
    (two contiguous halves: the loop vectorises); buf holds 2 ceil(k/2); s[7] moves on."""
    h = (k + 1) // 2
    key, c0 = s[6], s[7]
    for q in range(h):
        a, b = pair(_word(key, c0 + np.uint64(q)))
        buf[q] = np.float32(a)
        buf[q + h] = np.float32(b)
    s[7] = c0 + np.uint64(h)


if AVAILABLE:
    _log = njit(inline="always", **_OPTS)(_log)
    pair = njit(inline="always", **_OPTS)(pair)
    fill_pairs = njit(**_OPTS)(fill_pairs)
