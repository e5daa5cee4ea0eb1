"""Fused CPU kernels (numba) of the MVM's element-wise work: one pass, no temporaries.

Why: at batch 1 an MVM made of array operations is ~20 calls of a few microseconds each
(on torch more than on NumPy), and the noisy binary search is 2 (K + 1) more; at large
batches every pass over (planes, batch, lines) is memory traffic. Here the bit planes are
one call and everything after the product (floor of the quotient, read noise, integrator
clipping, the closed-form ADC or the noisy search) is one loop per output code.

Same arithmetic as the torch path of :mod:`.mvm_kernels`, operation for operation and in
the same precision (float64 quotient and charge, float32 noisy search with the same
draws), so both give identical codes; a test holds them to that. numba is optional:
without it (``AVAILABLE`` False) the torch path runs on the CPU too.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    AVAILABLE = False

__all__ = ["AVAILABLE", "planes", "charge_adc"]


def _planes(x, n_planes, out):
    """out[g, b, p, i] = sign(x) * bit p of |x[g, b, i]| (float32), the ternary pulses."""
    g_n, b_n, n = x.shape
    for g in range(g_n):
        for b in range(b_n):
            for i in range(n):
                v = x[g, b, i]
                a = abs(v)
                s = 1.0 if v > 0 else -1.0
                for p in range(n_planes):
                    out[g, b, p, i] = s * ((a >> p) & 1)


def _search(r, draws, g, b, o, d, k):
    """Noisy binary search of one code in float32; returns (sign, magnitude)."""
    sign = 0
    mag = 0
    for m in range(k + 1):
        x = r + draws[m, g, b, o]
        neg = math.copysign(1.0, x) < 0.0
        if m == 0:
            sign = 0 if neg else 1
        else:
            mag = 2 * mag + (1 if neg != (sign == 1) else 0)  # bit = x > 0, inverted for sign 0
        if m < k:
            step = np.float32(d >> m)
            r = r + step if neg else r - step
    return sign, mag


def _charge_adc(num, den_units, z, zscale, clip, off, d, k, draws, q_out, sign_out,
                mag_out):
    """Charge and codes of num (G, B, P, lines): z (G, B, P, lines) float32 read noise
    (size 0: none), zscale (P,) float32, clip < 0: no swing limit, off (G, lines) float64,
    draws (k + 1, G, B, lines) float32 comparator noise (size 0: exact closed form)."""
    g_n, b_n, p_n, o_n = num.shape
    noisy = z.size > 0
    search = draws.size > 0
    lsb = d >> max(k - 1, 0)
    top = float(((1 << k) - 1) * lsb)
    for g in range(g_n):
        for b in range(b_n):
            for o in range(o_n):
                du = den_units[g, o]
                q = 0.0
                for p in range(p_n):
                    s = math.floor(np.float64(num[g, b, p, o]) / du) * (1 << p)
                    if noisy:
                        s = np.rint(s + np.float64(z[g, b, p, o] * zscale[p]))
                    q += s
                    if clip >= 0.0:
                        q = min(max(q, -clip), clip)
                q_out[g, b, o] = np.int64(q)
                qe = q + off[g, o]
                if search:
                    sg, mg = _search(np.float32(qe), draws, g, b, o, d, k)
                    sign_out[g, b, o] = sg
                    mag_out[g, b, o] = mg
                else:
                    pos = qe > 0.0
                    sign_out[g, b, o] = 1 if pos else 0
                    if k == 0:
                        mag_out[g, b, o] = 0
                    else:
                        a = min(abs(qe) - (1.0 if pos else 0.0), top)
                        mag_out[g, b, o] = np.int64(math.floor(a / lsb))


if AVAILABLE:
    planes = njit(cache=True, nogil=True)(_planes)
    _search = njit(cache=True, nogil=True, inline="always")(_search)
    charge_adc = njit(cache=True, nogil=True)(_charge_adc)
else:  # pragma: no cover
    planes = charge_adc = None
