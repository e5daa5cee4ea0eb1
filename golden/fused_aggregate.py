"""The fused CPU kernel with its noise drawn in aggregate: one normal and one uniform per
output code, from the distributions the sequential draws of :mod:`.fused_cpu` produce.

Why: the sequential kernel (:func:`.fused_cpu.charge_adc`, kept as the reference) draws a
normal per bit plane (read noise) and a uniform per comparison of the noisy binary search:
with 3 planes and 8 comparisons, 11 random numbers and 8 exponentials per output code,
most of a noisy MVM's time. Two facts make one of each enough:

* **Read noise.** Plane p adds rint(z_p sigma_p) to an integer charge, and the sum of the
  planes' independent normals is one normal of variance sum sigma_p^2. The integrator's
  swing clamps every partial sum, a non-linearity between the planes; but the reference's
  normals are bounded (|z| < ``Z_BOUND``: the ziggurat's tail ends where its 53-bit
  uniform does), so where every noise-free partial sum is at least sum_(i <= p)
  (Z_BOUND sigma_i + 1/2) inside the swing, no partial sum can clamp and the charge is the
  noise-free charge plus the planes' noise. Such a code draws one normal of the summed
  variance (table-free Box-Muller in float32 lanes, :mod:`.bulk_normals`: no gathers and
  no rejections, so the loop vectorises 16 wide; |z| <= 6.77 < Z_BOUND, so the sum stays
  inside the bound too) and rounds it once (rounding each plane's term to a unit instead moves the
  variance by (P - 1) / 12 units^2, against sigma^2 ~ 10^9 units^2: the charge unit is
  2^-24 of a sample); any other code (a charge near the swing) draws the planes one by one
  and clamps as the reference does.
* **Noisy binary search.** Each comparison of residual r reads negative with probability
  p(r) = 1 / (1 + e^(r / s)) (Logistic(0, s) noise; decided, as in the reference, by
  r < 0 beyond |r| = 16.64 s), and the next residual is r +- the step, so a code is a
  path in a binary tree whose branch probabilities are known at every node. Inverting the
  code's CDF with one uniform u walks that tree: take the negative branch if u < p, then
  rescale u to the chosen branch (u / p, or (u - p) / (1 - p)), which is again uniform and
  independent of the past. Kept as a ratio a / b (no division): u (1 + E) < 1 becomes
  a (1 + E) < b with E = e^(r / s). E alone carries the residual (r < 0 is E < 1, the cut
  is e^-16.64 < E < e^16.64) and follows it by one product per step, e^(+-step / s), not
  one exponential per comparison. A residual beyond every threshold (|r| > the steps' sum
  + 17.64 s) decides every comparison alike and is clamped there, which keeps E finite;
  where even that leaves e^709 behind (a noise hundreds of times below the steps),
  :func:`fits` says no and the sequential kernel serves the call.

* **One product.** With IR drop the operands P are float32 (the line gains scale the codes),
  and each plane's product num_p = plane_p @ P rounds in BLAS's order: the reference's
  plane charges floor(2^24 num_p / Den) already move by a few units with the summation
  order (-7..7 against float64 products, the MLP of benchmarks/). There, one product of
  the whole input N = x @ P (= sum_p 2^p num_p) replaces the P planes' products (a third
  of the work at 3 planes). With A = 2^24 N / Den, the planes' sum of floors
  sum_p 2^p floor(a_p) = A - sum_p 2^p frac(a_p) lies in (A - 2^P + 1, A], and
  floor(A) - (2^(P-1) - 1), the kernel's charge, is within 2^(P-1) units of it and centred
  (the fractions average 1/2): a shift of the same size as float32's own, 10^-5 of one
  code step. :func:`summed_ok` allows it only for such inexact operands (exact ones, the
  ideal chip, keep their per-plane floors, bit for bit the cycle level's). Clamping at the
  integrator's swing is the planes' one non-linearity: each code bounds its reference's
  partial sums without a product, by 2^24 (|x| @ |P|) / Den <= the smaller of
  |x|_2 |P_o|_2 (Cauchy-Schwarz) and |x|_inf |P_o|_1 (Hoelder), plus the floors and the
  noise bound; a code whose bound reaches the swing takes the reference's charge plane by
  plane (its plane products from x and P, normals from the reference's counters), as the
  aggregate's own codes near the swing do. Where even the widest line cannot reach it
  (:func:`swing_unreached`, the MLP of benchmarks/) no code is checked. Same counters as
  the per-plane path: the same noise for the same key.

Both are exact in distribution (the search up to float64 rounding of probabilities,
~1e-12; the read-noise normal at float32 resolution, ~1e-7 (1 + |z|) relative, and cut at
6.77, tail mass 2^-33, see :mod:`.bulk_normals`); per-seed samples differ from the
sequential kernel's. A float32 search (16 lanes, e^(r / s) recomputed per step in the
band: float32's range ends at e^88, below the carried e^(r / s) of a clamped residual, up
to e^382 for the MLP of benchmarks/) was tried and was slower on this CPU (docs/compiler.md),
so the search stays in float64. tests/test_golden_aggregate.py holds
both kernels' code distributions to each other and to the distribution enumerated over
every decision path (chi-square at a stated significance). The counters are a subset of
the reference's, so a restricted evaluation still draws the full one's noise for its
lines: the normal of (row, line) is plane 0's read-noise word, the uniform comparison 0's.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import fused_cpu as fc
from .bulk_normals import pair as _pair

__all__ = ["AVAILABLE", "Z_BOUND", "WIDE_EXP_LIMIT", "charge_adc", "charge_adc_summed", "fits",
           "exp_wide", "summed_ok", "swing_unreached"]

AVAILABLE = fc.AVAILABLE

Z_BOUND = fc._ZIG_R + 54.0 * math.log(2.0) / fc._ZIG_R + 1e-9
"""Largest |z| the reference's (ziggurat) normal can return: its tail is r + a with
a = -log(u) / r and u >= 2^-54 (a 53-bit uniform at its half-step), every other branch
stays below r. The aggregate's own Box-Muller normal stays below 6.77 (tested)."""

WIDE_EXP_LIMIT = 700.0
"""|t| up to which :func:`exp_wide` is accurate (e^709 is float64's largest power)."""


_LANES = 512
"""Codes per pass of the draws and the search (whole rows of a block); the search's state
is four float64 arrays of this length (16 KB, in the first-level cache)."""

_LO32 = np.uint64(0xFFFFFFFF)

_E_LO, _E_HI = math.exp(-fc._CMP_CUT), math.exp(fc._CMP_CUT)
"""e^(r / s) at the comparator's cut: inside, a comparison is random; outside, r < 0."""


def _exp_wide(t):
    """e^t for |t| <= 700: (e^(t / 2048))^2048, a degree-12 Taylor polynomial on
    |t / 2048| <= 0.35 squared 11 times (no libm call, so the loop vectorises); relative
    error below 1e-12 (tested)."""
    g = t * (1.0 / 2048.0)
    c = _INV_FACT
    p = c[12]
    for i in range(11, -1, -1):
        p = p * g + c[i]
    for _ in range(11):
        p = p * p
    return p


_INV_FACT = tuple(1.0 / math.factorial(i) for i in range(13))


@functools.lru_cache(maxsize=256)
def fits(d: int, k: int, inv_scale: float) -> bool:
    """Whether the search's clamped residual keeps e^(r / s) in :func:`exp_wide`'s range
    (else the sequential kernel serves the call: a comparator noise this far below the
    LSB is nearly deterministic anyway)."""
    return inv_scale == 0.0 or _r_max(d, k, inv_scale) * inv_scale <= WIDE_EXP_LIMIT


def summed_ok(exact: bool, n_planes: int) -> bool:
    """Whether one product of the whole input may stand for the bit planes' products (module
    docstring, "One product"): the operands are inexact already (IR drop: float32 products)
    and there is more than one plane. Codes near the swing are the kernel's to find."""
    return not exact and n_planes > 1


def swing_unreached(n_planes: int, line_l1_max: float, zscale: np.ndarray,
                    clip: float) -> bool:
    """Whether no input can bring a reference partial sum to the swing ``clip`` (none: < 0):
    each plane's charge is at most ``line_l1_max`` (2^24 sum |P| / Den of the widest
    line), so the sum of P planes' charges, floors and noise bounds stays inside. Then
    :func:`charge_adc_summed` needs no per-code bound (it is called without the swing)."""
    if clip < 0.0:
        return True
    reach = float(1 << n_planes) + ((1 << n_planes) - 1) * line_l1_max * _ROUND_SLACK
    for p in range(zscale.size):
        reach += Z_BOUND * float(zscale[p]) + 0.5
    return reach < clip


def _r_max(d, k, inv_scale):
    """A residual at or beyond which every comparison of the search is decided alike:
    after the first k steps (their sum) it is still (cut + 1) s from zero."""
    steps = 0.0
    for m in range(k):
        steps += float(d >> m)
    return steps + (fc._CMP_CUT + 1.0) / inv_scale


def _charge_adc(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale, ids,
                n_lines, q_out, sign_out, mag_out):
    """:func:`.fused_cpu.charge_adc`'s arguments and results, its noise drawn in aggregate
    (module docstring). Same charge arithmetic (the floor of the quotient, exact in
    float64), same closed-form converter without comparator noise; lanes as there."""
    _kernel(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale, ids,
            n_lines, q_out, sign_out, mag_out, 0, np.empty((0, 0), np.int8),
            np.empty((0, 0), np.float32), np.empty((2, 0)))


def _charge_adc_summed(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale,
                       ids, n_lines, q_out, sign_out, mag_out, n_planes, x, matrix, line_norm):
    """:func:`charge_adc` of one product of the whole input (module docstring, "One
    product"): num (1, B, 1, lines) = x @ matrix, the sum sum_p 2^p num_p of ``n_planes``
    bit planes (counters and zscale are the planes', as in :func:`charge_adc`); its one
    floor minus 2^(P-1) - 1 stands for the planes' floors. With a swing, a code whose
    reference partial sums might reach it (the input row's L2 and L-infinity norms, from
    ``x`` (B, n_in), times ``line_norm`` (2, lines): 2^24 / Den times each line's L2 and L1
    norms of P; the sums are at most the smaller product, Cauchy-Schwarz or Hoelder) takes
    the reference's per-plane charge, its plane products from ``x`` and ``matrix``
    (n_in, lines)."""
    if num.shape[0] != 1 or num.shape[2] != 1 or n_planes < 1:
        raise ValueError("a summed product is one plane of one core")
    _kernel(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale, ids,
            n_lines, q_out, sign_out, mag_out, n_planes, x, matrix, line_norm)


def _kernel(num, den_f, inv_units, key, row0, zscale, clip, off, d, k, inv_scale, ids,
            n_lines, q_out, sign_out, mag_out, summed, xs, matrix, line_norm):
    """The body of :func:`charge_adc` (``summed`` 0) and :func:`charge_adc_summed`."""
    g_n, b_n, p_n, o_n = num.shape
    p_c = summed if summed > 0 else p_n
    corr = float((1 << (summed - 1)) - 1) if summed > 0 else 0.0
    nums = np.empty(p_c)
    rows = max(1, _LANES // o_n)
    c_n = rows * o_n
    noisy = zscale.size > 0
    search = inv_scale > 0.0
    clipped = clip >= 0.0
    lsb = d >> max(k - 1, 0)
    top = float(((1 << k) - 1) * lsb)
    flsb = float(lsb)
    inv_lsb = 1.0 / flsb
    unit = float(1 << 24)
    # read noise: the sum's std and each plane's bound on the noise of its partial sum
    sd = 0.0
    bound = np.zeros(p_n)
    acc_b = 0.0
    for p in range(p_n):
        if noisy:
            acc_b += Z_BOUND * zscale[p] + 0.5
        bound[p] = acc_b
    for p in range(zscale.size):
        sd += zscale[p] * zscale[p]
    # a summed product's reach beyond its norms' bound: each plane's floor (1 unit, 2^p
    # in the sum), the estimate's correction and the noise bound of every plane
    reach_extra = float(1 << p_c)
    for p in range(zscale.size):
        reach_extra += Z_BOUND * zscale[p] + 0.5
    sd = math.sqrt(sd)
    # the search: the clamp of the residual, e^(+-step / s) per comparison
    r_max = _r_max_jit(d, k, inv_scale) if search else 0.0
    if r_max * inv_scale > WIDE_EXP_LIMIT:
        raise ValueError("comparator noise too far below the converter's steps for the "
                         "aggregate sampler (see fits)")
    up = np.empty(k + 1)
    down = np.empty(k + 1)
    for m in range(k + 1):
        up[m] = math.exp(float(d >> m) * inv_scale) if search else 1.0
        down[m] = 1.0 / up[m]
    n_srch = c_n if search else 0
    n_z = c_n if noisy else 0
    q = np.empty(c_n)
    z = np.zeros(n_z, np.float32)
    risky = np.zeros(o_n, np.bool_)
    lo32 = np.empty(n_z, np.uint32)
    hi32 = np.empty(n_z, np.uint32)
    e = np.empty(n_srch)
    ua = np.empty(n_srch)
    ub = np.empty(n_srch)
    dec = np.empty(n_srch)
    lane_off = np.empty(n_srch)
    lane_read = np.empty(max(n_z, n_srch), np.uint64)
    lane_cmp = np.empty(max(n_z, n_srch), np.uint64)
    if noisy or search:
        fc._lane_counters(rows, o_n, ids, p_c, k, n_lines, lane_read, lane_cmp)
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
            if noisy:  # one normal per code from plane 0's word: its halves, in a loop
                # of 64-bit lanes, then Box-Muller in float32 lanes (both loops vectorise)
                base = np.uint64(row * p_c * n_lines)
                for j in range(n):
                    w = fc._word(kg, (base + lane_read[j]) * np.uint64(2))
                    lo32[j] = np.uint32(w & _LO32)
                    hi32[j] = np.uint32(w >> fc._S32)
                for j in range(n):
                    z[j] = _pair(lo32[j], hi32[j])[0]
            for rb in range(nr):
                b = b0 + rb
                qb = q[rb * o_n:(rb + 1) * o_n]
                qb[:] = 0.0
                for o in range(o_n):
                    risky[o] = False
                for p in range(p_n):
                    rep = float(1 << p)
                    lim = clip - bound[p]
                    for o in range(o_n):
                        a = np.float64(num[g, b, p, o])
                        s = np.floor(a * inv[o])
                        rem = a * unit - s * den[o]
                        qb[o] += (s - (rem < 0.0) + (rem >= den[o])) * rep - corr
                    if summed > 0:
                        if clipped:  # the reference's partial sums, bounded from the norms
                            l2, linf = _row_norms(xs, b)
                            for o in range(o_n):
                                reach = min(l2 * line_norm[0, o], linf * line_norm[1, o])
                                risky[o] = reach * _ROUND_SLACK + reach_extra >= clip
                    elif clipped and noisy:
                        for o in range(o_n):
                            risky[o] |= abs(qb[o]) > lim
                    elif clipped:
                        for o in range(o_n):
                            qb[o] = min(max(qb[o], -clip), clip)
                if noisy:
                    zb = z[rb * o_n:(rb + 1) * o_n]
                    for o in range(o_n):
                        qb[o] += np.rint(np.float64(zb[o]) * sd)
                if clipped and (noisy or summed > 0):
                    for o in range(o_n):
                        if risky[o]:
                            if summed > 0:
                                _plane_products(xs, matrix, b, o, summed, nums)
                            else:
                                for p in range(p_n):
                                    nums[p] = num[g, b, p, o]
                            qb[o] = _planes_one_by_one(nums, den[o], inv[o], kg, row0 + b,
                                                       zscale, clip, ids[o], n_lines)
                for o in range(o_n):
                    q_out[g, b, o] = np.int64(qb[o])
                if not search:
                    fc._direct_codes(qb, off[g], top, flsb, inv_lsb, k, sign_out[g, b],
                                     mag_out[g, b])
            if not search:
                continue
            # the search by inversion: one uniform a / b per code, walked down the tree;
            # E = e^(r / s) alone carries the residual (r < 0 is E < 1, the band
            # |r| < cut s is e^-cut < E < e^cut), the decisions are packed into dec
            base = np.uint64(row * (k + 1) * n_lines)
            for j in range(n):
                rj = min(max(q[j] + lane_off[j], -r_max), r_max)
                e[j] = _exp_wide(rj * inv_scale)
                w = fc._word(kg, (base + lane_cmp[j]) * np.uint64(2) + np.uint64(1))
                ua[j] = fc._uniform(w)
                ub[j] = 1.0
                dec[j] = 0.0
            for m in range(k + 1):  # branch-free over the lanes, so that it vectorises
                e_up, e_down = up[m], down[m]
                for j in range(n):
                    ej, aj, bj = e[j], ua[j], ub[j]
                    inside = (ej > _E_LO) & (ej < _E_HI)
                    x = aj * (1.0 + ej)
                    neg = ((x < bj) & inside) | ((ej < 1.0) & ~inside)
                    pos_in = inside & ~neg  # a positive decision of the uniform
                    ua[j] = x - (bj if pos_in else 0.0) if inside else aj
                    ub[j] = bj * (ej if pos_in else 1.0)
                    e[j] = ej * (e_up if neg else e_down)
                    dec[j] = dec[j] + dec[j] + (1.0 if neg else 0.0)
            for rb in range(nr):
                b = b0 + rb
                for o in range(o_n):
                    v = np.int64(dec[rb * o_n + o])
                    neg0 = v >> k
                    low = v & ((1 << k) - 1)
                    sign_out[g, b, o] = 1 - neg0
                    mag_out[g, b, o] = low if neg0 else ((1 << k) - 1) - low


def _planes_one_by_one(nums, den_o, inv_o, kg, row, zscale, clip, line, n_lines):
    """The charge of one code as the reference computes it from its planes' products
    ``nums`` (P,): each plane's sampled charge, a normal per plane from the reference's
    counters (none where ``zscale`` is empty), each plane's term rounded, every partial sum
    clamped at the swing: the codes that might reach it."""
    p_n = nums.size
    unit = float(1 << 24)
    qq = 0.0
    for p in range(p_n):
        a = nums[p]
        s = np.floor(a * inv_o)
        rem = a * unit - s * den_o
        s = (s - (rem < 0.0) + (rem >= den_o)) * float(1 << p)
        if zscale.size:
            zp = fc._normal(fc._word(kg, (np.uint64((row * p_n + p) * n_lines) + line)
                                     * np.uint64(2)))
            s = np.rint(s + zp * zscale[p])
        qq = min(max(qq + s, -clip), clip)
    return qq


def _plane_products(x, matrix, b, o, n_planes, out):
    """out[p] = plane p of input row b times column o of the product matrix (float32
    products summed in float64: the reference's float32 product to its rounding)."""
    for p in range(n_planes):
        out[p] = 0.0
    for i in range(x.shape[1]):
        v = np.int32(x[b, i])
        w = np.float64(matrix[i, o])
        for p in range(n_planes):
            bit = (abs(v) >> np.int32(p)) & np.int32(1)
            if bit:
                out[p] += w if v > 0 else -w


def _row_norms(x, b):
    """(L2, L-infinity) norm of input row b (integer codes, exact in float64)."""
    s2, top = 0, 0
    for i in range(x.shape[1]):
        v = np.int32(x[b, i])
        s2 += v * v
        top = max(top, abs(v))
    return math.sqrt(float(s2)), float(top)


_ROUND_SLACK = 1.0 + 2.0**-12
"""Relative slack on a summed product's norm bound for float32's rounding of the plane
products (each within n 2^-24 of exact, n < 2^12 rows)."""


if AVAILABLE:
    from numba import njit

    _jit = njit(cache=True, nogil=True, error_model="numpy")  # no zero-division branches
    _exp_wide = exp_wide = _jit(_exp_wide)
    _r_max_jit = _jit(_r_max)
    _planes_one_by_one = _jit(_planes_one_by_one)
    _plane_products, _row_norms = _jit(_plane_products), _jit(_row_norms)
    _kernel = _jit(_kernel)
    charge_adc = _jit(_charge_adc)
    charge_adc_summed = _jit(_charge_adc_summed)
else:  # pragma: no cover
    exp_wide, charge_adc, charge_adc_summed = _exp_wide, None, None
