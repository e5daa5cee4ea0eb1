"""Fused CPU kernels (numba) of the MVM's element-wise work: one pass, no temporaries.

Why: at batch 1 an MVM made of array operations is ~20 calls of a few microseconds each
(on torch more than on NumPy), and the noisy binary search is 2 (K + 1) more; at large
batches every pass over (planes, batch, lines) is memory traffic. Here the bit planes are
one call and everything after the product (floor of the quotient, read noise, integrator
clipping, the closed-form ADC or the noisy search) is one loop per output code.

Same arithmetic as the torch path of :mod:`.mvm_kernels`, operation for operation and in
the same precision (float64 quotient and charge), so without noise both give identical
codes; a test holds them to that. The noise is drawn inside the kernel from counter-based
streams (below), not passed in: drawing it in Python cost more than the whole MVM at batch
1 (two array draws of ~20 us each). Same distributions as the torch path's draws, other
samples; statistical tests hold them to that. numba is optional: without it
(``AVAILABLE`` False) the torch path runs on the CPU too.

:func:`charge_adc` draws sequentially (a normal per bit plane, a uniform per comparison);
MVMs use :mod:`.fused_aggregate` by default, which draws one of each per code from the
same distributions and is tested against this kernel as its reference.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    AVAILABLE = False

__all__ = ["AVAILABLE", "planes", "charge_adc", "normals", "input_codes", "add_code_values"]


def _planes(x, n_planes, out):
    """out[g, b, p, i] = sign(x) * bit p of |x[g, b, i]| (float32), the ternary pulses.
    Plane-major with int32 arithmetic, so that the inner loop over i vectorises (20x the
    speed of a loop over planes inside, whose stores are strided)."""
    g_n, b_n, n = x.shape
    for g in range(g_n):
        for b in range(b_n):
            for p in range(n_planes):
                for i in range(n):
                    v = np.int32(x[g, b, i])
                    bit = np.float32((abs(v) >> np.int32(p)) & np.int32(1))
                    out[g, b, p, i] = bit if v > 0 else -bit


# ---------------------------------------------------------------- in-kernel random numbers
# Counter-based: word(key, c) = splitmix64's output function of key + c * GAMMA. Any sample
# is a pure function of (key, counter), so the kernel draws only the words it needs, with
# no state and no call into Python; the key comes from the caller's Generator, one word per
# core and call, so a seeded Generator repeats its runs.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32, _S11 = (np.uint64(v) for v in (30, 27, 31, 32, 11))
_MASK7 = np.uint64(127)
_U53 = 2.0**-53
_CMP_CUT = math.log(2.0**24 - 1)
"""Where the torch path's logistic draws end (+/-16.64 scales: 23-bit uniforms, see
fast_random.logistic); the kernel's comparisons are deterministic beyond it too."""


def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _word(key, ctr):
    """The 64-bit random word number ``ctr`` (uint64) of stream ``key`` (uint64)."""
    return _mix(key + ctr * _GAMMA)


def _uniform(w):
    """(0, 1) from the top 53 bits of a word: ((w >> 11) + 1/2) 2^-53."""
    return (np.float64(w >> _S11) + 0.5) * _U53


_EXP_C = tuple(1.0 / math.factorial(i) for i in range(12))


def _exp(t):
    """e^t for |t| <= 17 without a libm call or a table (neither vectorises well here):
    (e^(t/32))^32, a degree-11 Taylor polynomial on |t/32| <= 0.53 squared five times;
    relative error below 1e-10, far below what a comparison probability needs."""
    g = t * (1.0 / 32.0)
    c = _EXP_C
    p = c[11]
    for i in range(10, -1, -1):
        p = p * g + c[i]
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


_ROUGH_C = _EXP_C[:6]
_ROUGH_MARGIN = 1.0 / 256.0
"""Relative bound on |_exp_rough(t) / _exp(t) - 1| for |t| <= 16.64 (tested; the truth is
1.4e-3: Taylor's remainder, 32 (t/32)^6 / 720, plus _exp's 1e-10)."""


def _exp_rough(t):
    """e^t to 1.4e-3 for |t| <= 16.64 (a degree-5 Taylor polynomial of t/32 squared five
    times, 15 operations against _exp's 27), for the decisions that do not need _exp
    (see _charge_adc)."""
    g = t * (1.0 / 32.0)
    c = _ROUGH_C
    p = c[5]
    for i in range(4, -1, -1):
        p = p * g + c[i]
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


def _ziggurat_tables(n=128, r=3.442619855899, v=9.91256303526217e-3):
    """Marsaglia and Tsang's (2000) ziggurat for N(0, 1) with 128 layers: acceptance bounds
    kn (of a signed 32-bit integer), widths wn, densities fn."""
    m1 = 2.0**31
    kn, wn, fn = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    kn[0], kn[1] = int(dn / q * m1), 0
    wn[0], wn[n - 1] = q / m1, dn / m1
    fn[0], fn[n - 1] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int(dn / tn * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


_KN, _WN, _FN = _ziggurat_tables()
_ZIG_R = 3.442619855899


def _normal(w):
    """N(0, 1) from word w: the ziggurat's fast path (98.8 %: one multiply, one compare)
    takes the layer from the low 7 bits and the signed abscissa from the top 32; the
    wedges and the tail draw further words from a splitmix64 sequence started at w.
    The tables are the module's (constants of the compiled code: passed as arguments,
    each of the kernel's rejections paid six reference-count updates)."""
    kn, wn, fn = _KN, _WN, _FN
    state = w
    while True:
        iz = np.int64(w & _MASK7)
        hz = np.int64(w >> _S32) - 2147483648
        x = hz * wn[iz]
        if abs(hz) < kn[iz]:
            return x
        state += _GAMMA
        u = _uniform(_mix(state))
        if iz == 0:  # the tail beyond r (Marsaglia's method)
            while True:
                state += _GAMMA
                a = -math.log(_uniform(_mix(state))) / _ZIG_R
                state += _GAMMA
                b = -math.log(_uniform(_mix(state)))
                if b + b >= a * a:
                    return _ZIG_R + a if hz > 0 else -_ZIG_R - a
        if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x
        state += _GAMMA
        w = _mix(state)


def _normals(key, ctr0, n):
    """n standard normals of stream ``key`` at counters ctr0, ctr0 + 2, ... (the layout the
    kernel uses for read noise), for tests of the generator."""
    out = np.empty(n)
    for i in range(n):
        out[i] = _normal(_word(key, np.uint64(ctr0 + 2 * i)))
    return out


_LANES = 128
"""Codes per pass of the kernel's random draws (whole rows of a block)."""


def _lane_counters(rows, o_n, ids, p_n, k, n_lines, lane_read, lane_cmp):
    """Each lane's part of its random-word counters, (its row in the pass) (planes or
    comparisons) n_lines + its line, so that a pass adds one number to all lanes (the
    sequential and the aggregate kernel draw from the same counters)."""
    for rr in range(rows):
        for o in range(o_n):
            lane_read[rr * o_n + o] = np.uint64(rr * p_n * n_lines) + ids[o]
            lane_cmp[rr * o_n + o] = np.uint64(rr * (k + 1) * n_lines) + ids[o]


def _direct_codes(qb, off_g, top, flsb, inv_lsb, k, sign_row, mag_row):
    """Sign and magnitude of each code without comparator noise (the closed form of the
    search): sign (q + L > 0), magnitude floor((|q + L| - sign) / LSB) clamped at ``top``,
    the floor corrected by one step where float rounding put it on the wrong side."""
    for o in range(qb.shape[0]):
        qe = qb[o] + off_g[o]
        pos = qe > 0.0
        sign_row[o] = pos
        a = min(abs(qe) - (1.0 if pos else 0.0), top)
        m0 = np.floor(a * inv_lsb)
        rr = a - m0 * flsb
        m0 = m0 - (rr < 0.0) + (rr >= flsb)
        mag_row[o] = np.int64(m0) if k > 0 else 0


def _charge_adc(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale, ids,
                n_lines, q_out, sign_out, mag_out):
    """Charge and codes of num (G, B, P, lines) (the sampled charge as
    mvm_operands.floor_quotient, the converter's floor likewise by reciprocal and exact
    remainder, both exact on integers below 2^53). Noise is drawn here from ``key`` (G,)
    uint64, one stream per core; ``row0`` is the block's first batch row (the counters
    are global in the call): zscale (P,) float64 read-noise std per plane (size 0: none),
    clip < 0: no swing limit, off (G, lines) float64, inv_scale: 1 / the logistic
    comparator-noise scale (0: none, the exact closed form). ``ids`` (lines,) uint64: the
    physical line of each column of num, of ``n_lines`` on the array (a restricted
    evaluation draws the noise the full one draws for its lines).

    Read noise of (row, plane p, line o) is the normal of counter
    2 ((row P + p) n_lines + ids[o]); comparison m of (row, o) uses counter
    2 ((row (k + 1) + m) n_lines + ids[o]) + 1. A comparison
    of residual r under logistic noise L of scale s reads negative when r + L < 0, whose
    probability is 1 / (1 + exp(r / s)): it compares one uniform with that instead of
    drawing L (no log), and only where |r| < 16.64 s: beyond, the decision is r < 0, as for
    the torch path's logistic, whose support ends at +/-16.64 s (fast_random).

    That comparison, u (1 + E) < 1 with E = _exp(r / s), is decided first from a rough
    e^(r / s) (:func:`_exp_rough`) bounded within E / (1 +- _ROUGH_MARGIN): rounding is
    monotone, so u (1 + hi) < 1 implies u (1 + E) < 1 and u (1 + lo) >= 1 the opposite,
    computed in the same floating point. Only a comparison whose uniform falls between the
    two (about 1 in 1,000) computes E, so the decisions are _exp's, bit for bit, at half
    its cost.

    The random draws (the words, the ziggurat, the search) loop over lanes: ``_LANES //
    lines`` whole rows of (row, line) codes at a time, each lane with its own counters, so
    that a segment of 16 columns vectorises as a 256-column one does; the charge stays a
    loop over one row's lines (the product's layout, read in order)."""
    g_n, b_n, p_n, o_n = num.shape
    rows = max(1, _LANES // o_n)
    c_n = rows * o_n
    noisy = zscale.size > 0
    search = inv_scale > 0.0
    lsb = d >> max(k - 1, 0)
    top = float(((1 << k) - 1) * lsb)
    flsb = float(lsb)
    inv_lsb = 1.0 / flsb
    unit = float(1 << 24)
    # the draws' and the search's scratch only where they run (at batch 1 a call is a few
    # microseconds: allocations and set-up loops count)
    n_rnd = c_n if noisy or search else 0
    n_srch = c_n if search else 0
    q = np.empty(c_n)
    z = np.zeros((p_n, c_n if noisy else 0))
    words = np.empty(n_rnd, np.uint64)
    rejected = np.empty(n_rnd, np.int64)
    r = np.empty(n_srch)
    sg = np.empty(n_srch, np.bool_)
    negs = np.empty(n_srch, np.bool_)
    acc = np.zeros(n_srch, np.int64)
    unsure = np.empty(n_srch, np.bool_)
    lane_off = np.empty(n_srch)
    hi, lo = 1.0 + _ROUGH_MARGIN, 1.0 - _ROUGH_MARGIN
    kn, wn = _KN, _WN
    lane_read = np.empty(n_rnd, np.uint64)
    lane_cmp = np.empty(n_rnd, np.uint64)
    if n_rnd:
        _lane_counters(rows, o_n, ids, p_n, k, n_lines, lane_read, lane_cmp)
    for g in range(g_n):
        den = den_f[g]
        inv = inv_units[g]
        kg = key[g]
        if search:
            for rr in range(rows):
                for o in range(o_n):
                    lane_off[rr * o_n + o] = off[g, o]
        for b0 in range(0, b_n, rows):
            nr = min(rows, b_n - b0)
            n = nr * o_n
            row = row0 + b0
            if noisy:  # per plane: the words, the ziggurat's fast path for every lane (two
                # loops that vectorise), then the few rejects (1.2 %) listed by the second
                for p in range(p_n):
                    zp = z[p]
                    base = np.uint64((row * p_n + p) * n_lines)
                    for j in range(n):
                        words[j] = _word(kg, (base + lane_read[j]) * np.uint64(2))
                    n_rej = 0
                    for j in range(n):
                        w = words[j]
                        iz = np.int64(w & _MASK7)
                        hz = np.int64(w >> _S32) - 2147483648
                        zp[j] = hz * wn[iz]
                        rejected[n_rej] = j
                        n_rej += abs(hz) >= kn[iz]
                    for i in range(n_rej):
                        j = rejected[i]
                        zp[j] = _normal(words[j])
            for rb in range(nr):
                b = b0 + rb
                qb = q[rb * o_n:(rb + 1) * o_n]
                qb[:] = 0.0
                for p in range(p_n):
                    rep = float(1 << p)
                    zs = zscale[p] if noisy else 0.0
                    zb = z[p, rb * o_n:(rb + 1) * o_n]
                    for o in range(o_n):
                        a = np.float64(num[g, b, p, o])
                        s = np.floor(a * inv[o])
                        rem = a * unit - s * den[o]
                        s = (s - (rem < 0.0) + (rem >= den[o])) * rep
                        if noisy:
                            s = np.rint(s + zb[o] * zs)
                        qb[o] += s
                    if clip >= 0.0:
                        for o in range(o_n):
                            qb[o] = min(max(qb[o], -clip), clip)
                for o in range(o_n):
                    q_out[g, b, o] = np.int64(qb[o])
                if not search:
                    _direct_codes(qb, off[g], top, flsb, inv_lsb, k, sign_out[g, b], mag_out[g, b])
            if not search:
                continue
            # noisy binary search on the exact float64 residual: bit = (r + L > 0), inverted
            # when the sign is 0; the residual steps by -d >> m toward zero
            for j in range(n):
                r[j] = q[j] + lane_off[j]
            for m in range(k + 1):  # branch-free over the lanes, so that it vectorises
                step = float(d >> m)
                base = np.uint64((row * (k + 1) + m) * n_lines)
                n_unsure = 0
                for j in range(n):
                    rj = r[j]
                    t = rj * inv_scale
                    tc = min(max(t, -_CMP_CUT), _CMP_CUT)
                    w = _word(kg, (base + lane_cmp[j]) * np.uint64(2) + np.uint64(1))
                    u = _uniform(w)
                    e = _exp_rough(tc)
                    sure_neg = u * (1.0 + e * hi) < 1.0
                    inside = abs(t) < _CMP_CUT
                    negs[j] = sure_neg if inside else rj < 0.0
                    un = inside and not (sure_neg or u * (1.0 + e * lo) >= 1.0)
                    unsure[j] = un
                    n_unsure += un
                if n_unsure:  # the rare uniforms between the bounds: _exp decides
                    for j in range(n):
                        if unsure[j]:
                            tc = min(max(r[j] * inv_scale, -_CMP_CUT), _CMP_CUT)
                            w = _word(kg, (base + lane_cmp[j]) * np.uint64(2) + np.uint64(1))
                            negs[j] = _uniform(w) * (1.0 + _exp(tc)) < 1.0
                for j in range(n):
                    r[j] += step if negs[j] else -step
                if m == 0:
                    for j in range(n):
                        sg[j] = not negs[j]
                        acc[j] = 0
                else:
                    for j in range(n):
                        acc[j] = 2 * acc[j] + (negs[j] != sg[j])
            for rb in range(nr):
                b = b0 + rb
                accb = acc[rb * o_n:(rb + 1) * o_n]
                sgb = sg[rb * o_n:(rb + 1) * o_n]
                for o in range(o_n):
                    mag_out[g, b, o] = accb[o]
                    sign_out[g, b, o] = sgb[o]


# ---------------------------------------------------------------- the host's side of an MVM
def _input_codes(x, scale, lo, top, out):
    """out = rint(clip(x / scale, lo, 1) * top) as int8, element by element (x flat, any
    float dtype, read as float64): the codes a compiled model's host drives, the NumPy
    expression's operations in its order and precision, in one pass instead of five over
    fresh float64 temporaries."""
    for i in range(x.size):
        v = np.float64(x[i]) / scale
        v = min(max(v, lo), 1.0) * top
        out[i] = np.int8(np.rint(v))


def _add_code_values(sign, mag, k, table, scale, dest, y):
    """y[b, dest[g, j]] += table[sign << k | mag] * scale[g, j] for every core g (in
    order), batch row b and column j of dest: the host's recovery of G cores' codes
    (``table``: the value of every code; ``scale``: units per code step, 0 where a column
    is not used) summed digitally, without (G, B, width) float64 temporaries."""
    g_n, b_n, w_n = sign.shape[0], sign.shape[1], dest.shape[1]
    for g in range(g_n):
        for b in range(b_n):
            for j in range(w_n):
                idx = (np.int64(sign[g, b, j]) << k) | np.int64(mag[g, b, j])
                y[b, dest[g, j]] += table[idx] * scale[g, j]


if AVAILABLE:
    _jit = njit(cache=True, nogil=True)
    _mix, _word, _uniform, _normal = _jit(_mix), _jit(_word), _jit(_uniform), _jit(_normal)
    _exp, _exp_rough, _lane_counters = _jit(_exp), _jit(_exp_rough), _jit(_lane_counters)
    _direct_codes = _jit(_direct_codes)
    planes, charge_adc, normals = _jit(_planes), _jit(_charge_adc), _jit(_normals)
    input_codes, add_code_values = _jit(_input_codes), _jit(_add_code_values)
else:  # pragma: no cover
    planes = charge_adc = normals = input_codes = add_code_values = None
