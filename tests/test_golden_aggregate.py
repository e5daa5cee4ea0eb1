"""The fused kernel's aggregate noise sampler (golden/fused_aggregate.py) against the
sequential kernel it replaces (golden/fused_cpu.charge_adc, kept as the reference) and
against the closed-form code distribution of the noisy binary search.

Each statistical test below runs at a stated significance; where one test function makes
many, they are Bonferroni-corrected so that the function's family-wise significance is
ALPHA. Seeded, so a pass is reproducible."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cimflow.config import PRESETS
from cimflow.golden import bulk_normals, fused_aggregate, fused_cpu, mvm_kernels
from cimflow.golden.array import Crossbar
from cimflow.golden.mvm import MvmSettings, _effects, mvm
from cimflow.golden.mvm_operands import mvm_operands
from cimflow.golden.nonideal import NonIdeal
from cimflow.verif.stats import pooled_bins

pytestmark = pytest.mark.skipif(not fused_cpu.AVAILABLE, reason="numba is not installed")

ALPHA = 1e-3
D, K = 1 << 21, 7
LSB = D >> (K - 1)
CHARGES_LSB = np.array([0.0, 0.2, -0.2, 1.0, 5.5, -17.0, 40.0, 64.0, 100.25, 127.0, 127.9,
                        200.0, -300.0])
"""Charges in LSB: zero, either side of it, on a threshold, mid-code, large, on the first
step (d), near and beyond full scale (every comparison decided), negative."""


def _run(kernel, num, off, inv_scale, key, zscale=None, clip=-1.0, row0=0):
    """Call a fused kernel on ``num`` (reps, planes, lines) with Den = 2^24 units, so that
    each plane's sampled charge is num itself; returns (charge, sign, mag), (reps, lines)."""
    reps, _, o_n = num.shape
    zscale = np.zeros(0) if zscale is None else zscale
    one = np.ones((1, o_n))
    q = np.empty((1, reps, o_n), np.int64)
    sign = np.empty((1, reps, o_n), np.uint8)
    mag = np.empty((1, reps, o_n), np.int64)
    kernel(num[None].astype(np.float32), one * (1 << 24), one, np.array([key], np.uint64),
           row0, zscale, clip, off[None].astype(np.float64), D, K, inv_scale,
           np.arange(o_n, dtype=np.uint64), o_n, q, sign, mag)
    return q[0], sign[0], mag[0]


def exact_code_pmf(r0: float, scale: float, d: int = D, k: int = K) -> np.ndarray:
    """The noisy binary search's code distribution by enumerating its 2^(k+1) decision
    paths (NumPy, libm's exp): comparison m of residual r reads negative with probability
    1 / (1 + e^(r / s)) inside the cut |r| < 16.64 s, else exactly when r < 0; the residual
    then steps by +(d >> m) (negative) or -(d >> m). Index: sign << k | magnitude."""
    r, p, path = np.array([float(r0)]), np.array([1.0]), np.array([0], np.int64)
    for m in range(k + 1):
        t = r / scale
        inside = np.abs(t) < fused_cpu._CMP_CUT
        pneg = np.where(inside, 1.0 / (1.0 + np.exp(np.clip(t, -700, 700))), (r < 0) * 1.0)
        step = float(d >> m)
        r = np.concatenate([r + step, r - step])
        p = np.concatenate([p * pneg, p * (1.0 - pneg)])
        path = np.concatenate([2 * path + 1, 2 * path])
    neg0 = path >> k
    low = path & ((1 << k) - 1)
    mag = np.where(neg0 == 1, low, (1 << k) - 1 - low)
    pmf = np.zeros(2 << k)
    np.add.at(pmf, ((1 - neg0) << k) | mag, p)
    return pmf


def _signed_order(k: int = K) -> np.ndarray:
    """Code indices (sign << k | mag) in the order of their signed values."""
    neg = [(0 << k) | m for m in range((1 << k) - 1, -1, -1)]
    return np.array(neg + [(1 << k) | m for m in range(1 << k)])


def _gof_pvalue(idx, pmf):
    """Chi-square goodness of fit of code indices ``idx`` to ``pmf`` (1.0 where all the
    mass is one bin and every sample is in it)."""
    order = _signed_order()
    counts = np.bincount(idx, minlength=pmf.size)[order]
    obs, exp = pooled_bins(counts, pmf[order] * idx.size)
    if obs.size < 2:
        return 1.0 if obs.size == 1 and obs[0] == idx.size else 0.0
    return scipy_stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def _two_sample_pvalue(a, b):
    order = _signed_order()
    table = np.stack([np.bincount(v, minlength=2 << K)[order] for v in (a, b)])
    table = table[:, table.sum(axis=0) > 0]
    cols, acc = [], np.zeros(2, np.int64)
    for c in table.T:  # merge neighbours until each column expects >= 5 in both rows
        acc = acc + c
        if acc.sum() * min(len(a), len(b)) / (len(a) + len(b)) >= 5:
            cols.append(acc)
            acc = np.zeros(2, np.int64)
    if cols:
        cols[-1] = cols[-1] + acc
    if len(cols) < 2:
        return 1.0
    return scipy_stats.chi2_contingency(np.stack(cols, axis=1)).pvalue


LSB_OVER_S = (0.3, 1.0, 3.0)
"""Comparator noise scale s against the LSB: noise wider than a code, as wide, narrower."""


def _search_samples(reps=20_000):
    rng = np.random.default_rng(17)
    off = rng.integers(-LSB, LSB, CHARGES_LSB.size).astype(np.float64)
    num = np.broadcast_to(np.rint(CHARGES_LSB * LSB), (reps, 1, CHARGES_LSB.size))
    out = {}
    for i, ratio in enumerate(LSB_OVER_S):
        scale = LSB / ratio
        got = {}
        for name, kern in (("aggregate", fused_aggregate.charge_adc),
                           ("sequential", fused_cpu.charge_adc)):
            _, s, m = _run(kern, num, off, 1.0 / scale, 0xA66 + 7 * i, row0=11)
            got[name] = (s.astype(np.int64) << K) | m
        out[ratio] = (scale, got, num[0, 0] + off)
    return out


@pytest.fixture(scope="module")
def search_samples():
    return _search_samples()


def test_search_codes_follow_the_closed_form_distribution(search_samples):
    """Every (charge, noise scale) of CHARGES_LSB x LSB_OVER_S, 20,000 codes each: both
    samplers pass a chi-square goodness of fit to the enumerated distribution
    (exact_code_pmf), and against each other a two-sample chi-square; 117 tests at
    ALPHA / 117 each (Bonferroni: family-wise ALPHA). No code of probability below 1e-15
    occurs. The cases span one-code point masses (beyond full scale) to spreads of ~20
    codes (noise 3.3 LSB)."""
    n_tests = len(LSB_OVER_S) * CHARGES_LSB.size * 3
    spreads = []
    for scale, got, r0 in search_samples.values():
        for o, r in enumerate(r0):
            pmf = exact_code_pmf(r, scale)
            spreads.append(np.count_nonzero(pmf > 1e-3))
            for name in ("aggregate", "sequential"):
                idx = got[name][:, o]
                assert pmf[idx].min() > 1e-15, (name, r, scale)
                assert _gof_pvalue(idx, pmf) > ALPHA / n_tests, (name, r / LSB, scale)
            p2 = _two_sample_pvalue(got["aggregate"][:, o], got["sequential"][:, o])
            assert p2 > ALPHA / n_tests, (r / LSB, scale)
    assert min(spreads) == 1 and max(spreads) >= 15


def test_search_distribution_test_has_power(search_samples):
    """The goodness-of-fit test above rejects the aggregate sampler's codes against the
    distribution of a 10 % wider comparator noise (lsb / s = 1, the charges inside the
    ADC's range whose codes spread over several values), at the per-test significance."""
    n_tests = len(LSB_OVER_S) * CHARGES_LSB.size * 3
    scale, got, r0 = search_samples[1.0]
    rejected = [_gof_pvalue(got["aggregate"][:, o], exact_code_pmf(r, 1.1 * scale))
                < ALPHA / n_tests for o, r in enumerate(r0) if abs(r) < 120 * LSB]
    assert len(rejected) >= 8 and all(rejected)


def test_exact_pmf_reference_is_a_distribution_with_the_noiseless_mode():
    """The enumeration itself: probabilities sum to 1, and with a noise far below the LSB
    all the mass is on the closed-form converter's code (neuron.py: |code| =
    ceil(q / lsb) - 1 for q > 0, floor(-q / lsb) for q <= 0, at most 2^K - 1)."""
    for q in (-300.0, -17.3, -0.5, 0.5, 3.2, 99.9, 126.5, 300.0):
        pmf = exact_code_pmf(q * LSB, LSB / 1000.0)
        assert abs(pmf.sum() - 1.0) < 1e-12
        mag = min(math.ceil(q) - 1 if q > 0 else math.floor(-q), (1 << K) - 1)
        assert pmf[(int(q > 0) << K) | mag] > 1 - 1e-12


# ------------------------------------------------------------------------ read noise
SIGMA = 0.4 * LSB
ZSCALE = SIGMA * np.sqrt([1.0, 2.0, 4.0])  # per plane: 2^p samples summed


def _planes_num(reps, rng, lines=24, hi=20 * LSB):
    """Noise-free plane charges (reps, 3, lines): one fixed input per line, repeated."""
    one = rng.integers(-hi, hi, (1, 3, lines)).astype(np.float64)
    return np.repeat(one, reps, axis=0)


def test_read_noise_sum_is_the_normal_of_the_summed_variance():
    """Read noise alone (no swing, no comparator noise), 3 planes, 24 lines x 4,000
    repeats: the aggregate charge deviation is rint(N(0, sum sigma_p^2)) (Kolmogorov-Smirnov
    against that normal, and two-sample against the sequential kernel's sum over planes of
    rint(N(0, sigma_p^2)), each at ALPHA / 2); the codes of both kernels (closed-form
    converter) pass a two-sample chi-square at ALPHA."""
    rng = np.random.default_rng(23)
    num = _planes_num(4000, rng)
    det = (num * [[[1.0], [2.0], [4.0]]]).sum(axis=1)
    off = np.zeros(num.shape[2])
    qa, sa, ma = _run(fused_aggregate.charge_adc, num, off, 0.0, 5, ZSCALE)
    qs, ss, ms = _run(fused_cpu.charge_adc, num, off, 0.0, 5, ZSCALE)
    sd = float(np.sqrt(np.sum(ZSCALE**2)))
    ea, es = (qa - det).ravel(), (qs - det).ravel()
    assert np.all(ea == np.rint(ea))
    assert scipy_stats.kstest(ea, "norm", args=(0.0, sd)).pvalue > ALPHA / 2
    assert scipy_stats.ks_2samp(ea, es).pvalue > ALPHA / 2
    ca, cs = (sa.astype(np.int64) << K) | ma, (ss.astype(np.int64) << K) | ms
    assert _two_sample_pvalue(ca.ravel(), cs.ravel()) > ALPHA
    assert np.std(ca - cs) > 0.3  # the noise moves codes


def test_charges_near_the_swing_are_drawn_plane_by_plane_as_the_reference():
    """With an integrator swing: lines whose noise-free partial sums come within the
    noise bound of the swing take the reference's per-plane draws (same counters), so
    their charges equal the sequential kernel's exactly; the others never reach the swing
    and have the aggregate distribution (KS, two-sample against the sequential kernel, at
    ALPHA). Both kinds occur, and the near ones do clip."""
    rng = np.random.default_rng(29)
    reps, lines = 3000, 16
    num = _planes_num(reps, rng, lines, hi=4 * LSB)  # partial sums below 28 LSB
    clip = float(60 * LSB)  # the noise bound after 3 planes is 25.3 LSB
    num[:, :, :2] = 10 * LSB  # partial sums 10, 30, 70 LSB: clips
    num[:, :, 2:4] = np.array([6.0, 6.0, 5.5])[None, :, None] * LSB  # 6, 18, 40: near
    num[:, :, 4:8] = -num[:, :, :4]
    off = np.zeros(lines)
    qa, _, _ = _run(fused_aggregate.charge_adc, num, off, 0.0, 9, ZSCALE, clip)
    qs, _, _ = _run(fused_cpu.charge_adc, num, off, 0.0, 9, ZSCALE, clip)
    bound = np.cumsum(fused_aggregate.Z_BOUND * ZSCALE + 0.5)
    partial = np.abs(np.cumsum(num[0] * [[1.0], [2.0], [4.0]], axis=0))
    near = np.any(partial + bound[:, None] > clip, axis=0)
    assert near[:8].all() and not near[8:].any()
    assert np.array_equal(qa[:, near], qs[:, near])
    assert np.any(np.abs(qs[:, near]) == clip)
    far_a, far_s = qa[:, ~near].ravel(), qs[:, ~near].ravel()
    assert np.abs(far_a).max() < clip
    assert scipy_stats.ks_2samp(far_a, far_s).pvalue > ALPHA


def test_without_noise_both_kernels_give_identical_codes():
    """No noise (swing and offsets on): the aggregate kernel is the sequential one, code for
    code and charge for charge."""
    rng = np.random.default_rng(31)
    num = rng.integers(-40 * LSB, 40 * LSB, (50, 3, 40)).astype(np.float64)
    off = rng.integers(-LSB, LSB, 40).astype(np.float64)
    a = _run(fused_aggregate.charge_adc, num, off, 0.0, 1, clip=float(60 * LSB))
    b = _run(fused_cpu.charge_adc, num, off, 0.0, 1, clip=float(60 * LSB))
    for u, v in zip(a, b, strict=True):
        assert np.array_equal(u, v)


def test_normal_bound_is_the_ziggurat_tail_at_the_smallest_uniform():
    """Z_BOUND: the ziggurat's largest output is its tail r + a with a = -log(u) / r at the
    smallest uniform the kernel makes ((0 + 1/2) 2^-53); every other branch is below r.
    The aggregate's Box-Muller normal is at most sqrt(66 ln 2) = 6.77, below it."""
    u_min = fused_cpu._uniform(np.uint64(0))
    assert u_min == 2.0**-54
    top = fused_cpu._ZIG_R - math.log(u_min) / fused_cpu._ZIG_R
    assert top <= fused_aggregate.Z_BOUND < top + 1e-6
    z = fused_cpu.normals(np.uint64(99), 0, 200_000)
    assert np.abs(z).max() < fused_aggregate.Z_BOUND
    # the aggregate's one normal (Box-Muller): largest radius at the smallest half-word
    # uniform, 2^-33, well inside the bound, so a sum of planes it stands for cannot clamp
    hi = np.array(bulk_normals.pair(np.uint32(0), np.uint32(0)), np.float64)
    assert np.hypot(*hi) == pytest.approx(math.sqrt(66 * math.log(2.0)), rel=1e-6)
    assert np.hypot(*hi) < fused_aggregate.Z_BOUND


def test_wide_exp_is_accurate_on_its_range():
    """exp_wide: relative error below 1e-11 against libm for |t| <= 700."""
    t = np.linspace(-fused_aggregate.WIDE_EXP_LIMIT, fused_aggregate.WIDE_EXP_LIMIT, 20_001)
    got = np.array([fused_aggregate.exp_wide(v) for v in t])
    assert np.max(np.abs(got / np.exp(t) - 1)) < 1e-11


def test_the_kernel_is_chosen_by_the_switch_and_the_range(monkeypatch):
    """The aggregate sampler serves noisy calls unless switched off, or unless the
    comparator noise is so far below the converter's steps that e^(r / s) would leave
    exp_wide's range (there the sequential kernel serves: it needs no e^(r / s) beyond
    the cut)."""
    st = MvmSettings(v_decr=0.3)
    fx = _effects(NonIdeal(cmp_noise_v=0.5e-3), st)
    inv = 1.0 / fx.cmp_scale
    assert mvm_kernels._charge_kernel(st, fx, inv) is fused_aggregate.charge_adc
    monkeypatch.setattr(mvm_kernels, "aggregate_noise", False)
    assert mvm_kernels._charge_kernel(st, fx, inv) is fused_cpu.charge_adc
    monkeypatch.setattr(mvm_kernels, "aggregate_noise", True)
    assert not fused_aggregate.fits(st.d_units, st.k, 1e3 / fx.cmp_scale)
    assert mvm_kernels._charge_kernel(st, fx, 1e3 / fx.cmp_scale) is fused_cpu.charge_adc
    ideal = _effects(NonIdeal(), st)
    assert mvm_kernels._charge_kernel(st, ideal, 0.0) is fused_cpu.charge_adc


def test_the_kernel_refuses_a_noise_outside_its_range():
    """Called directly with a comparator noise that fits() refuses (LSB / s = 10 at 8-bit
    out: e^(r / s) up to e^1288), the kernel raises instead of overflowing."""
    assert not fused_aggregate.fits(D, K, 10.0 / LSB)
    num = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="too far below"):
        _run(fused_aggregate.charge_adc, num, np.zeros(3), 10.0 / LSB, 1)


def _run_den(num, den, key, zscale, inv_scale=0.0, clip=-1.0, summed=None,
             kernel=fused_aggregate.charge_adc):
    """The aggregate kernel on num (reps, planes, lines) with Den = ``den`` codes per line
    (sampled charge floor(2^24 num / Den), fractional in general), no offsets. ``summed``:
    (x (reps, n_in) int8, P (n_in, lines) float32), and num is then x @ P, one plane."""
    reps, _, o_n = num.shape
    den_f = np.asarray(den, np.float64)[None]
    inv = (1 << 24) / den_f
    q = np.empty((1, reps, o_n), np.int64)
    sign = np.empty((1, reps, o_n), np.uint8)
    mag = np.empty((1, reps, o_n), np.int64)
    args = (num[None].astype(np.float32), den_f, inv, np.array([key], np.uint64), 0, zscale,
            clip, np.zeros((1, o_n)), D, K, inv_scale, np.arange(o_n, dtype=np.uint64), o_n,
            q, sign, mag)
    if summed is None:
        kernel(*args)
    else:
        x, p = summed
        a = np.abs(p.astype(np.float64))
        lines = np.stack([np.sqrt((a * a).sum(axis=0)), a.sum(axis=0)]) * (1 << 24) / den_f
        fused_aggregate.charge_adc_summed(*args, 3, x, p, lines)
    return q[0], (sign[0].astype(np.int64) << K) | mag[0]


def _summed_case(rng, reps, lines, n_in=48, scale=40_000):
    """Random 3-bit inputs and an integer P, every product below 7 n_in scale < 2^24 (exact
    in float32): per-plane products (reps, 3, lines), the summed product (reps, 1, lines),
    x and P."""
    x = rng.integers(-7, 8, (reps, n_in)).astype(np.int8)
    p = rng.integers(-scale, scale, (n_in, lines)).astype(np.float32)
    planes = np.stack([np.sign(x) * ((np.abs(x) >> b) & 1) for b in range(3)], axis=1)
    num = np.einsum("rbi,io->rbo", planes.astype(np.float64), p.astype(np.float64))
    return num, (x.astype(np.float64) @ p.astype(np.float64))[:, None, :], x, p


def test_one_summed_product_stands_for_the_planes_within_their_floors():
    """One product of the whole input (P = 3 planes): sum_p 2^p floor(a_p) lies in
    (A - 7, A] for A = 2^24 sum_p 2^p num_p / Den, so floor(A) - 3 is within 3 units of it
    and centred (the planes' fractions average 1/2). Same counters, so the same read-noise
    normal: the charges of 2,000 x 24 random inputs (exact in float32) differ by -3..3
    units, mean within 0.05 (its std over the inputs is about 1.4: 7 standard errors),
    against the per-plane kernel with the same key; the same uniform for the search moves a
    code only where a 3-unit shift crosses a decision."""
    rng = np.random.default_rng(41)
    reps, lines = 2000, 24
    den = rng.integers(3_000_000, 5_000_000, lines)
    num, summed, x, p = _summed_case(rng, reps, lines)
    qp, cp = _run_den(num, den, 7, ZSCALE, 1.0 / LSB)
    qs, cs = _run_den(summed, den, 7, ZSCALE, 1.0 / LSB, summed=(x, p))
    diff = qs - qp
    assert diff.min() >= -3 and diff.max() <= 3
    assert abs(diff.mean()) < 0.05
    assert len(np.unique(diff)) >= 5  # the floors' shift is real and varies
    assert np.mean(cs != cp) < 1e-3


def test_summed_codes_near_the_swing_take_the_reference_charge():
    """With a swing that some codes' partial sums reach: the codes whose norm bound
    (Cauchy-Schwarz, Hoelder) comes within reach of the swing take the reference's
    per-plane charge, equal to the sequential kernel's exactly (same counters; the plane
    products are exact here); the others stay within 3 units of the per-plane aggregate
    kernel's (same normal) and never reach the swing. Both kinds occur, and some near ones
    clip."""
    rng = np.random.default_rng(47)
    reps, lines = 400, 16
    den = np.full(lines, 1 << 24)
    _, _, x, p = _summed_case(rng, reps, lines, scale=2_000)
    x[:200] = rng.integers(-1, 2, (200, x.shape[1]))  # small rows: far from the swing
    x[-20:] = 7 * np.sign(p[:, 0])  # aligned with line 0: its charge reaches the swing
    planes = np.stack([np.sign(x) * ((np.abs(x) >> b) & 1) for b in range(3)], axis=1)
    num = np.einsum("rbi,io->rbo", planes.astype(np.float64), p.astype(np.float64))
    summed = (x.astype(np.float64) @ p.astype(np.float64))[:, None, :]
    clip = 3.0 * np.abs(p.astype(np.float64)).sum(axis=0).max()
    zs = np.array([100.0, 140.0, 200.0])  # noise bound 6.3k units, the swing 144k
    qp, _ = _run_den(num, den, 3, zs, 0.0, clip)
    qr, _ = _run_den(num, den, 3, zs, 0.0, clip, kernel=fused_cpu.charge_adc)
    qs, _ = _run_den(summed, den, 3, zs, 0.0, clip, summed=(x, p))
    xf, pf = x.astype(np.float64), np.abs(p.astype(np.float64))
    reach = np.minimum(np.sqrt((xf * xf).sum(1))[:, None] * np.sqrt((pf * pf).sum(0)),
                       np.abs(xf).max(1)[:, None] * pf.sum(0))
    extra = 8 + np.sum(fused_aggregate.Z_BOUND * zs + 0.5)
    near = reach * (1 + 2.0**-12) + extra >= clip
    assert 0.05 < near.mean() < 0.95
    assert np.array_equal(qs[near], qr[near])
    assert np.any(np.abs(qr[near]) == clip)
    assert np.abs(qs[~near] - qp[~near]).max() <= 3
    assert np.abs(qs[~near]).max() < clip


def test_summed_product_only_for_inexact_operands_of_several_planes():
    """summed_ok: never for exact operands (the ideal chip stays bit for bit the cycle
    level's) nor for one plane; the summed kernel refuses a product of several planes.
    swing_unreached: true exactly while 7 times the widest line's plane bound, the floors
    and the noise bound stay below the swing (then no code needs its own bound)."""
    z = np.array([100.0, 140.0, 200.0])
    reach = 8 + 7 * 1e6 * (1 + 2.0**-12) + fused_aggregate.Z_BOUND * z.sum() + 1.5
    assert fused_aggregate.swing_unreached(3, 1e6, z, -1.0)
    assert fused_aggregate.swing_unreached(3, 1e6, z, reach + 1)
    assert not fused_aggregate.swing_unreached(3, 1e6, z, reach - 1)
    assert not fused_aggregate.summed_ok(True, 3)
    assert not fused_aggregate.summed_ok(False, 1)
    assert fused_aggregate.summed_ok(False, 3)
    with pytest.raises(ValueError, match="summed product"):
        _run_den(np.zeros((2, 3, 3)), np.full(3, 1 << 24), 1, ZSCALE, 0.0,
                 summed=(np.zeros((2, 4), np.int8), np.zeros((4, 3), np.float32)))


@pytest.mark.parametrize("swing_v", [5.0, 0.1])
def test_mvm_with_ir_drop_takes_one_product_within_float32_tolerance(monkeypatch, swing_v):
    """An MVM with IR drop (float32 operands), read and comparator noise and a swing far
    above the charges (5 V), or one that the largest charges reach (0.1 V): it takes the
    one-product path. Its charges are, where the norm bound keeps a code from the swing,
    the per-plane aggregate path's (same stream, same normal) within 3 units (the floors)
    plus float32's rounding of the products (a relative 2^-20 of the largest charge bound,
    the per-plane products' own tolerance), and elsewhere the sequential reference's
    (per-plane normals, same counters) within that rounding; the codes of the former differ
    from the per-plane path's in under 1 in 1,000. Without IR drop the path is not taken."""
    rng = np.random.default_rng(43)
    xb = Crossbar(PRESETS["medium"])
    xb.program(rng.standard_normal((32, 30)))
    x = rng.integers(-7, 8, (500, 32))
    st = MvmSettings(in_bits=4)
    ni = NonIdeal(read_noise_v=2e-3, ir_drop_ohm=100.0, integrator_swing_v=swing_v,
                  cmp_noise_v=0.5e-3)
    taken, real = [], fused_aggregate.summed_ok

    def spy(*a):
        taken.append(real(*a))
        return taken[-1]

    monkeypatch.setattr(fused_aggregate, "summed_ok", spy)
    a = mvm(xb, x, st, ni, rng=np.random.default_rng(5))
    assert taken == [True]
    monkeypatch.setattr(fused_aggregate, "summed_ok", lambda *a: False)
    b = mvm(xb, x, st, ni, rng=np.random.default_rng(5))
    monkeypatch.setattr(mvm_kernels, "aggregate_noise", False)
    c = mvm(xb, x, st, ni, rng=np.random.default_rng(5))
    monkeypatch.setattr(mvm_kernels, "aggregate_noise", True)
    fx = _effects(ni, st)
    norm = mvm_operands(xb, st.direction, ni.ir_drop_ohm).line_norm
    zs = mvm_kernels._noise_scale64(fx.sigma, 3, fx.sigma_pulse)
    xf = x.astype(np.float64)
    reach = np.minimum(np.sqrt((xf * xf).sum(1))[:, None] * norm[0],
                       np.abs(xf).max(1)[:, None] * norm[1])
    near = reach * (1 + 2.0**-12) + 8 + np.sum(fused_aggregate.Z_BOUND * zs + 0.5) >= fx.clip
    tol = 7 * norm[1].max() * 2.0**-20
    assert near.any() == (swing_v < 1) and not near.all()
    assert np.abs(a.charge - b.charge)[~near].max() <= 3 + tol
    assert np.abs(a.charge - c.charge)[near].max(initial=0) <= tol
    assert bool(np.abs(c.charge).max() == fx.clip) == (swing_v < 1)
    assert np.mean((a.value != b.value)[~near]) < 1e-3
    monkeypatch.setattr(fused_aggregate, "summed_ok", spy)
    mvm(xb, x, st, replace(ni, ir_drop_ohm=0.0), rng=np.random.default_rng(5))
    assert taken == [True, False]
