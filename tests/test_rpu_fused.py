"""The fused CPU kernel (golden.rpu.fused) against the torch path of the pulsed update.

* Bernoulli source: the kernel draws its own random numbers, so it must equal the torch
  path in distribution. Per case, the weight change of every cell and of every row and column
  sum (which carries the correlations the shared line streams create) over independent
  trials, two-sample Kolmogorov-Smirnov, alpha = 0.001 per case split over its statistics
  (Bonferroni). A kernel with 10 % too much gain must be rejected at the same alpha.
* The periphery kernels (DAC, noise, ADC around the product) draw the same noise as the torch
  path and must give identical outputs.
* LFSR source (the RTL's streams): counts are the source's, the device step is the kernel's;
  without cycle-to-cycle noise every weight must be bit-identical to the torch path's, so a
  step run on the fused path is still the one the RTL replays.
"""

import numpy as np
import pytest
import torch
from scipy import stats

from cimflow.config import PRESETS
from cimflow.golden import bulk_normals
from cimflow.golden.rpu import ConstantStepDevice, IOParameters, SoftBoundsDevice
from cimflow.golden.rpu import fused as fused_mod
from cimflow.golden.rpu.io import analog_mvm
from cimflow.golden.rpu.pulses import BernoulliSource, LfsrSource
from cimflow.golden.rpu.update import pulsed_update

pytestmark = pytest.mark.skipif(not fused_mod.AVAILABLE, reason="numba not installed")

ALPHA = 0.001
TRIALS = 1500
X = torch.tensor([[0.9, -0.5, 0.25, 0.0, 0.7]])
D = torch.tensor([[0.6, -0.3, 0.45]])


def _samples(dev, x, d, lr, fused, sequential=False, trials=TRIALS, seed=0):
    """Weight change (trials, n_out, n_in) of one update from the same start each trial."""
    st = dev.sample((d.shape[1], x.shape[1]), generator=torch.Generator().manual_seed(7))
    w0 = 0.3 * st.b_max if dev.soft else torch.zeros(d.shape[1], x.shape[1])
    g = torch.Generator().manual_seed(seed)
    rng = fused_mod.new_state(seed + 1)
    out = torch.empty(trials, *w0.shape)
    for t in range(trials):
        w = w0.clone()
        pulsed_update(w, st, x, d, lr, bl=10, dw_min=dev.dw_min, source=BernoulliSource(),
                      generator=g, sequential=sequential, fused=fused, rng=rng)
        out[t] = w - w0
    return out.double()


def _pvalues(a, b):
    """KS p-values of every cell, every row sum and every column sum that ever changes."""
    stat = [a.flatten(1), a.sum(2), a.sum(1)]
    ref = [b.flatten(1), b.sum(2), b.sum(1)]
    ps = []
    for sa, sb in zip(stat, ref, strict=True):
        for k in range(sa.shape[1]):
            if sa[:, k].abs().max() > 0 or sb[:, k].abs().max() > 0:
                ps.append(stats.ks_2samp(sa[:, k].numpy(), sb[:, k].numpy()).pvalue)
    return np.array(ps)


X3 = torch.tensor([[0.9, -0.5, 0.25, 0.0, 0.7], [0.2, 0.8, -0.6, 0.4, 0.0],
                   [-0.7, 0.1, 0.5, 0.3, 0.9]])
D3 = torch.tensor([[0.6, -0.3, 0.45], [-0.5, 0.2, 0.1], [0.3, 0.35, -0.6]])
CASES = {
    "constant_step_rank1": (ConstantStepDevice(), X, D, False),
    "soft_bounds_rank1": (SoftBoundsDevice(up_down=0.1), X, D, False),
    "constant_step_sequential_3": (ConstantStepDevice(), X3, D3, True),
    "soft_bounds_sequential_3": (SoftBoundsDevice(up_down=0.1), X3, D3, True),
    "constant_step_merged_3": (ConstantStepDevice(), X3, D3, False),
    "soft_bounds_merged_3": (SoftBoundsDevice(up_down=0.1), X3, D3, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_update_distribution_equals_torch_path(case):
    dev, x, d, seq = CASES[case]
    trials = 600 if len(x) > 1 else TRIALS  # the torch path loops in Python: fewer trials
    ref = _samples(dev, x, d, 0.01, fused=False, sequential=seq, trials=trials)
    got = _samples(dev, x, d, 0.01, fused=True, sequential=seq, trials=trials, seed=1)
    assert got.abs().sum() > 0  # the kernel did update
    ps = _pvalues(got, ref)
    assert len(ps) >= 10
    assert ps.min() > ALPHA / len(ps), (case, ps.min())


def test_fused_distribution_test_has_power():
    # the kernel run at 1.1x the gain (1.21x the learning rate) must be rejected
    dev = ConstantStepDevice()
    ref = _samples(dev, X, D, 0.01, fused=False)
    wrong = _samples(dev, X, D, 0.0121, fused=True, seed=1)
    ps = _pvalues(wrong, ref)
    assert ps.min() < ALPHA / len(ps)


@pytest.mark.parametrize("bl", [10, 7, 64])
def test_kernel_pulse_masks_are_bernoulli(bl):
    # the kernel's pulse bits (counter-based words, four 16-bit uniforms each, slots grouped
    # by four across the lines) against the independent reference: slot t of a line fires
    # with probability round(min(gain |v|, 1) 2^16) / 2^16, independently of every other
    # slot and line. Exact two-sided binomial tests at alpha 6.8e-6 each (at most 600 tests:
    # family-wise below 0.005): every slot of every line; pairs of slots in the
    # same word, in neighbouring words, of neighbouring lines (both fire with p_a p_b);
    # nothing beyond BL, p = 0 never and p = 1 always fire. Power: the pooled rate of the
    # p = 0.5 line is rejected against a 3 % larger probability.
    gain = np.float32(1.0)
    v = np.array([[0.5, -0.3, 0.0, 1.2, 0.05, -0.77, 0.9, 1e-5]], np.float32)
    p = np.rint(np.minimum(np.abs(v[0]) * gain, 1) * np.float32(65536)) / 65536
    trials = 20_000
    s = fused_mod.new_state(3)
    m = np.empty(v.shape[1], np.uint64)
    bits = np.empty((trials, v.shape[1], 64), bool)
    for t in range(trials):
        fused_mod._masks(v, 0, gain, bl, s, m)
        bits[t] = (m[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1) == 1

    def ok(count, n, q):
        return stats.binomtest(int(count), n, float(q)).pvalue > 6.8e-6

    assert not bits[:, :, bl:].any()
    assert not bits[:, 2, :bl].any() and bits[:, 3, :bl].all()
    for i in range(v.shape[1]):
        if 0 < p[i] < 1:
            for t in range(bl):
                assert ok(bits[:, i, t].sum(), trials, p[i]), (i, t)
    pairs = [(0, 0, 0, 1), (0, 3, 0, 4), (1, 2, 1, 5), (0, 0, 1, 0), (5, 6, 6, 6),
             (0, bl - 1, 7, bl - 1)]
    for ia, ta, ib, tb in pairs:
        both = (bits[:, ia, ta] & bits[:, ib, tb]).sum()
        assert ok(both, trials, p[ia] * p[ib]), (ia, ta, ib, tb)
    pooled = bits[:, 0, :bl].sum()
    assert ok(pooled, trials * bl, p[0])
    assert not ok(pooled, trials * bl, 1.03 * p[0])


def test_fused_mean_matches_eq_1_3():
    # independent reference: E[dw_ij] = lr * x_i * d_j * E[dw]/dw_min per coincidence, within
    # 4.5 standard errors (two-sided alpha ~ 7e-6 per cell, 15 cells); ideal-ish device
    # without bounds or cycle noise, so each trial's change is dw_min * n_signed exactly
    dev = ConstantStepDevice(dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0,
                             w_max=10.0, w_min=-10.0, w_max_dtod=0.0, w_min_dtod=0.0)
    s = _samples(dev, X, D, 0.01, fused=True, trials=4000)
    p = (X.abs().T * D.abs()).T  # P(coincidence per slot) at gain 1 (lr = dw_min * BL)
    mean = 0.01 * D.T * X
    se = (dev.dw_min * (10 * p * (1 - p)).sqrt() / 4000 ** 0.5).double()
    err = (s.mean(0) - mean.double()).abs()
    assert bool((err <= 4.5 * se + 1e-12).all()), (err / (se + 1e-30)).max()


@pytest.mark.parametrize("seeds,gain_lr", [((1, 1), 0.01), ((0x5A5A, 0x1234), 0.02),
                                           ((77, 991), 0.005)])
@pytest.mark.parametrize("sequential", [False, True])
def test_fused_lfsr_update_bit_exact(seeds, gain_lr, sequential):
    cfg = PRESETS["small"]
    dev = ConstantStepDevice(dw_min_std=0.0)  # the RTL's cell: no cycle-to-cycle noise
    st = dev.sample((6, 9), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 9, generator=g) * 2 - 1
    d = (torch.rand(3, 6, generator=g) * 2 - 1) * 0.5
    w0 = st.clip(0.05 * torch.randn(6, 9, generator=g))
    ws = []
    for fused in (False, True):
        w = w0.clone()
        src = LfsrSource(cfg, *seeds)
        for _ in range(3):  # the chains run on from step to step
            pulsed_update(w, st, x, d, gain_lr, bl=10, dw_min=dev.dw_min, source=src,
                          sequential=sequential, fused=fused)
        ws.append(w)
    assert not torch.equal(ws[0], w0)  # something was updated
    assert torch.equal(ws[0], ws[1])


def test_kernel_normals_are_standard_normal():
    # the ziggurat (fast path and rejections) against N(0, 1): KS at alpha = 0.001, and the
    # tail mass beyond the base layer's edge R = 3.4426 within 4.5 binomial standard errors
    z = fused_mod.normals(200_000, fused_mod.new_state(11))
    assert stats.kstest(z, "norm").pvalue > ALPHA
    p = 2 * stats.norm.sf(3.442619855899)
    assert abs((np.abs(z) > 3.442619855899).mean() - p) < 4.5 * (p * (1 - p) / z.size) ** 0.5
    wrong = fused_mod.normals(200_000, fused_mod.new_state(12)) * 1.03  # power: 3 % scale
    assert stats.kstest(wrong, "norm").pvalue < ALPHA


def test_bulk_normals_are_standard_normal_and_pairs_independent():
    # the rank-1 rows' Box-Muller draws (both halves of each word), in blocks as the kernel
    # calls it (an odd block too): KS against N(0, 1) at alpha = 0.001; tail masses beyond
    # 3 and 4 within 4.5 binomial standard errors; z1^2 + z2^2 of a word ~ chi2(2) (KS,
    # alpha = 0.001) and the two halves independent (chi-square on a 10 x 10 grid of
    # N(0, 1) deciles, alpha = 0.001); a 3 % scale error is rejected by the same KS
    s = fused_mod.new_state(5)
    firsts, seconds = [], []
    for k in (256, 255) * 400:
        h = (k + 1) // 2
        buf = np.empty(2 * h, np.float32)
        bulk_normals.fill_pairs(buf, k, s, np.empty(2 * h, np.uint32))
        firsts.append(buf[:h].astype(np.float64))
        seconds.append(buf[h:].astype(np.float64))
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    z = np.concatenate([a, b])
    assert stats.kstest(z, "norm").pvalue > ALPHA
    assert stats.kstest(1.03 * z, "norm").pvalue < ALPHA
    for t in (3.0, 4.0):
        p = 2 * stats.norm.sf(t)
        assert abs((np.abs(z) > t).mean() - p) < 4.5 * (p * (1 - p) / z.size) ** 0.5, t
    assert stats.kstest(a * a + b * b, "chi2", args=(2,)).pvalue > ALPHA
    edges = stats.norm.ppf(np.linspace(0, 1, 11)[1:-1])
    table = np.histogram2d(np.digitize(a, edges), np.digitize(b, edges), bins=10)[0]
    assert stats.chi2_contingency(table)[1] > ALPHA


def test_bulk_normal_transform_matches_numpy():
    # closed-form reference: the same (float32) uniforms through NumPy's float64 log, sqrt,
    # cos and sin; the float32 polynomial transform within 1e-6 (1 + r) on random words and
    # the extreme ones
    f32 = np.float32
    hv = np.random.default_rng(1).integers(0, 2**32 - 1, (2, 20_000), dtype=np.uint32,
                                           endpoint=True)
    hv[:, :4] = [[0, 2**32 - 1, 0, 2**32 - 1], [0, 2**32 - 1, 2**32 - 1, 0]]
    got = np.array([bulk_normals.pair(j, k) for j, k in hv.T], np.float64)
    u1 = (hv[0].astype(f32) * f32(2.0**-32) + f32(2.0**-33)).astype(np.float64)
    kk = (hv[1] & np.uint32(2**30 - 1)).astype(f32).astype(np.float64)
    th = (hv[1] >> 30) * (np.pi / 2) + kk * float(f32(np.pi / 2 * 2.0**-30)) \
        + float(f32(np.pi / 2 * 2.0**-31 - np.pi / 4))
    r = np.sqrt(-2 * np.log(u1))
    ref = np.stack([r * np.cos(th), r * np.sin(th)], 1)
    assert np.all(np.abs(got - ref) <= 1e-6 * (1 + r[:, None]))
    assert r.max() > 6.7  # the extreme word reached the end of the support


@pytest.mark.parametrize("io", [IOParameters(), IOParameters(out_noise=0.0),
                                IOParameters(noise_management="none", inp_bits=7, out_bits=0),
                                IOParameters(inp_bound=0.5, out_bound=2.0, out_bits=6)])
@pytest.mark.parametrize("n", [1, 33])
def test_fused_periphery_equals_torch_periphery(io, n):
    # same noise draws, same float32 arithmetic in the same order: identical outputs, and
    # the case is not degenerate (outputs span several ADC codes, some rows all zero)
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 300, generator=g) * 0.7
    x[0, :5] = 0
    if n > 1:
        x[1] = 0
    w = torch.randn(100, 300, generator=g) * 0.1
    a = analog_mvm(x, w, io, torch.Generator().manual_seed(1), fused=True)
    b = analog_mvm(x, w, io, torch.Generator().manual_seed(1), fused=False)
    assert torch.unique(b).numel() > 10
    assert torch.equal(a, b)
