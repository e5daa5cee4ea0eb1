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


def _charge_adc(num, den_f, inv_units, z, zscale, clip, off, d, k, draws, q_out, sign_out,
                mag_out):
    """Charge and codes of num (G, B, P, lines) (the sampled charge as
    mvm_operands.floor_quotient, the converter's floor likewise by reciprocal and exact
    remainder, both exact on integers below 2^53): z (G, B, P, lines) float32 read noise
    (size 0: none), zscale (P,) float32, clip < 0: no swing limit, off (G, lines) float64,
    draws (k + 1, G, B, lines) float32 comparator noise (size 0: exact closed form).
    Loops run over the lines innermost, so that they vectorise."""
    g_n, b_n, p_n, o_n = num.shape
    noisy = z.size > 0
    search = draws.size > 0
    lsb = d >> max(k - 1, 0)
    top = float(((1 << k) - 1) * lsb)
    flsb = float(lsb)
    inv_lsb = 1.0 / flsb
    unit = float(1 << 24)
    q = np.empty(o_n)
    r = np.empty(o_n, np.float32)
    sg = np.empty(o_n, np.bool_)
    for g in range(g_n):
        den = den_f[g]
        inv = inv_units[g]
        for b in range(b_n):
            q[:] = 0.0
            for p in range(p_n):
                rep = float(1 << p)
                zs = zscale[p]
                for o in range(o_n):
                    a = np.float64(num[g, b, p, o])
                    s = np.floor(a * inv[o])
                    rem = a * unit - s * den[o]
                    s = (s - (rem < 0.0) + (rem >= den[o])) * rep
                    if noisy:
                        s = np.rint(s + np.float64(z[g, b, p, o] * zs))
                    q[o] += s
                if clip >= 0.0:
                    for o in range(o_n):
                        q[o] = min(max(q[o], -clip), clip)
            for o in range(o_n):
                q_out[g, b, o] = np.int64(q[o])
            if not search:
                for o in range(o_n):
                    qe = q[o] + off[g, o]
                    pos = qe > 0.0
                    sign_out[g, b, o] = pos
                    a = min(abs(qe) - (1.0 if pos else 0.0), top)
                    m0 = np.floor(a * inv_lsb)
                    rr = a - m0 * flsb
                    m0 = m0 - (rr < 0.0) + (rr >= flsb)
                    mag_out[g, b, o] = np.int64(m0) if k > 0 else 0
                continue
            # noisy binary search in float32: bit = x > 0 (sign bit of x), inverted when
            # the sign is 0; the residual steps by -copysign(d >> m, x)
            for o in range(o_n):
                r[o] = np.float32(q[o] + off[g, o])
                mag_out[g, b, o] = 0
            for m in range(k + 1):
                step = np.float32(d >> m)
                for o in range(o_n):
                    x = r[o] + draws[m, g, b, o]
                    neg = math.copysign(1.0, x) < 0.0
                    if m == 0:
                        sg[o] = not neg
                    else:
                        mag_out[g, b, o] = 2 * mag_out[g, b, o] + (neg != sg[o])
                    if m < k:
                        r[o] = r[o] + step if neg else r[o] - step
            for o in range(o_n):
                sign_out[g, b, o] = sg[o]


if AVAILABLE:
    planes = njit(cache=True, nogil=True)(_planes)
    charge_adc = njit(cache=True, nogil=True)(_charge_adc)
else:  # pragma: no cover
    planes = charge_adc = None
