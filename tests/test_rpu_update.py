"""RPU stochastic pulse update against the closed-form moments (Gokmen & Vlasov 2016).

Significance: every statistical assertion states its false-alarm rate for a correct model;
seeds are fixed, so a run is deterministic.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cimflow.golden.rpu.devices import ConstantStepDevice, IdealDevice
from cimflow.golden.rpu.pulses import BernoulliSource, gain_for, phases
from cimflow.golden.rpu.update import pulsed_update

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
X = torch.tensor([[0.9, -0.5, 0.3, 0.0]], dtype=torch.float64)
D = torch.tensor([[0.8, -0.6, 0.2]], dtype=torch.float64)


def trial_counts(x, d, bl, gain, trials, device, seed=1):
    """Signed coincidence counts of ``trials`` independent single-sample updates."""
    g = torch.Generator(device=device).manual_seed(seed)
    src = BernoulliSource()
    xs, ds = x.to(device), d.to(device)
    return torch.stack([src.counts(xs, ds, bl, gain, generator=g).signed
                        for _ in range(trials)]).cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_mean_update_matches_eq_1_3(device):
    # Ideal device: E[dw] = BL dw_min C^2 x d = lr x d; |z| <= 4 per cell, 12 cells:
    # family-wise false alarm 12 * 6.3e-5 = 7.6e-4.
    bl, dw, lr, trials = 10, 0.001, 0.01, 3000
    st = IdealDevice(dw).sample((3, 4), device=device, dtype=torch.float64)
    g = torch.Generator(device=device).manual_seed(3)
    dws = []
    for _ in range(trials):
        w = torch.zeros(3, 4, dtype=torch.float64, device=device)
        dws.append(pulsed_update(w, st, X.to(device), D.to(device), lr, bl=bl, dw_min=dw,
                                 source=BernoulliSource(), generator=g))
    dws = torch.stack(dws).cpu().numpy()
    p = np.outer(D[0].abs().numpy(), X[0].abs().numpy())  # C = 1
    se = dw * np.sqrt(bl * p * (1 - p) / trials)
    expect = lr * np.outer(D[0].numpy(), X[0].numpy())
    z = np.where(se > 0, (dws.mean(0) - expect) / np.where(se > 0, se, 1), 0)
    assert np.abs(z).max() <= 4.0, z
    assert np.all(dws[:, :, 3] == 0)  # x = 0: no coincidence ever (1.9.3)


def test_counts_binomial_chi2():
    # |count| per cell ~ Binomial(BL, p_ij): chi-square per cell, Bonferroni over 9 cells,
    # family-wise alpha = 0.001.
    bl, trials = 10, 4000
    c = np.abs(trial_counts(X, D, bl, 1.0, trials, "cpu"))
    p = np.outer(D[0].abs().numpy(), X[0].abs().numpy())
    for j in range(3):
        for i in range(3):
            pmf = stats.binom.pmf(np.arange(bl + 1), bl, p[j, i])
            obs = np.bincount(c[:, j, i].astype(int), minlength=bl + 1)
            keep = pmf * trials >= 5  # pool the sparse tail into the last kept bin
            e = np.append(pmf[keep] * trials, trials - (pmf[keep] * trials).sum())
            o = np.append(obs[keep], trials - obs[keep].sum())
            e, o = (e, o) if e[-1] > 1e-9 else (e[:-1], o[:-1])
            pval = stats.chisquare(o, e * o.sum() / e.sum()).pvalue
            assert pval > 0.001 / 9, (j, i, pval)


def test_disjoint_cells_uncorrelated():
    # Cells sharing no line: |rho| sqrt(N) <= 4 (false alarm 6e-5 per pair, 3 pairs).
    c = trial_counts(X, D, 10, 1.0, 4000, "cpu", seed=5)
    for (a, b) in [((0, 0), (1, 1)), ((0, 1), (2, 2)), ((1, 0), (2, 2))]:
        rho = np.corrcoef(c[:, a[0], a[1]], c[:, b[0], b[1]])[0, 1]
        assert abs(rho) * math.sqrt(len(c)) <= 4.0


def test_sign_and_zero():
    c = trial_counts(X, D, 10, 1.0, 300, "cpu")
    sgn = np.sign(np.outer(D[0].numpy(), X[0].numpy()))
    assert np.all(c * sgn >= 0)  # every coincidence has the sign of x_i d_j
    assert np.all(c[:, :, 3] == 0)
    assert np.any(c != 0)


def test_gain_and_phases():
    assert gain_for(0.01, 0.001, 10) == pytest.approx(1.0)  # 1.9.4
    assert phases(torch.tensor([0.0, 0.5]), None) == 2  # 1.9.5
    assert phases(torch.tensor([-0.1, 0.5]), None) == 4
    with pytest.raises(ValueError, match="dw_min"):
        gain_for(0.01, 0.0, 10)


@pytest.mark.parametrize("device", DEVICES)
def test_bounds_hold_and_states(device):
    dev = ConstantStepDevice()
    assert dev.states == pytest.approx(1200)  # 1.9.6
    st = dev.sample((3, 4), generator=torch.Generator().manual_seed(0))
    st = st.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    w = torch.zeros(3, 4, device=device)
    for _ in range(50):  # lr 100x the paper's: bounds are reached and must hold
        w = pulsed_update(w, st, X.float().to(device), D.float().to(device), 1.0, bl=10,
                          dw_min=0.001, source=BernoulliSource(), generator=g)
        assert torch.all(w <= st.b_max) and torch.all(w >= st.b_min)
    assert torch.any(w == st.b_max) or torch.any(w == st.b_min)


def test_half_select_bias():
    # x = (1, 0), d = (1): w_2 changes only with k > 0 (1.9.7); its mean matches
    # E = dw BL k C|d| (z <= 4, false alarm 6e-5).
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    d = torch.tensor([[0.5]], dtype=torch.float64)
    st = IdealDevice().sample((1, 2), dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    for k in (0.0, 0.1):
        ws = torch.stack([pulsed_update(torch.zeros(1, 2, dtype=torch.float64), st, x, d,
                                        0.01, bl=10, dw_min=0.001, source=BernoulliSource(),
                                        half_select=k, generator=g) for _ in range(2000)])
        w2 = ws[:, 0, 1].numpy()
        if k == 0:
            assert np.all(w2 == 0)
        else:
            mean = 0.001 * 10 * k * 0.5  # k * (C|x_2| + C|d| - 2 p) with x_2 = 0
            se = 0.001 * k * math.sqrt(10 * 0.5 * 0.5 / 2000)
            assert abs(w2.mean() - mean) <= 4 * se
            # the driven cell: p + k (C|x| + C|d| - 2p) with p = 0.5
            w1 = ws[:, 0, 0].numpy()
            m1 = 0.001 * 10 * (0.5 + k * (1 + 0.5 - 1.0))
            assert abs(w1.mean() - m1) <= 4 * w1.std() / math.sqrt(2000)


@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_bits_every_lane_unbiased(device):
    # each 64-bit word feeds three consecutive bits: the frequency at every lane position
    # matches p within 4.5 standard errors (3 lanes x 3 p values, family-wise 6e-5)
    from cimflow.golden.rpu.pulses import bernoulli_bits

    g = torch.Generator(device=device).manual_seed(11)
    for p in (0.05, 0.5, 0.93):
        bits = bernoulli_bits(torch.full((1, 3), p, device=device), 60000, g).cpu()
        freq = bits.reshape(-1, 3).double().mean(0)  # lane = position mod 3
        se = math.sqrt(p * (1 - p) / 60000)
        assert torch.all((freq - p).abs() <= 4.5 * se), (p, freq)


@pytest.mark.parametrize("fused", [True, False])
def test_saturated_gain_clips_the_mean_and_breaks_the_zero_sum(fused):
    # BL dw_min < lr: C = sqrt(lr / (BL dw_min)) = 3.16 > 1, so lines with C|v| > 1 pulse in
    # every slot and the mean change is BL dw_min min(C|x|, 1) min(C|d|, 1) sign(x d), not
    # lr x d. For a softmax error (d sums to zero) the large error of the true class is cut
    # and the nine small ones are not: the summed change of a column with x > 0 is negative
    # where lr x sum(d) = 0 (why rpu-sensitivity's BL <= 5 and dw_min 0.0003 collapse).
    # |z| <= 4.5 per cell, 30 cells: family-wise false alarm 30 * 6.8e-6 = 2e-4.
    bl, dw, lr, trials = 1, 0.001, 0.01, 4000
    c = gain_for(lr, dw, bl)
    x = torch.tensor([[1.0, 0.5, 0.1]])
    d = torch.tensor([[0.9] + [-0.1] * 9])
    st = IdealDevice(dw).sample((10, 3))
    g = torch.Generator().manual_seed(5)
    dws = np.stack([pulsed_update(torch.zeros(10, 3), st, x, d, lr, bl=bl, dw_min=dw,
                                  source=BernoulliSource(), generator=g, fused=fused).numpy()
                    for _ in range(trials)])
    p = np.outer(np.minimum(c * d[0].abs().numpy(), 1), np.minimum(c * x[0].numpy(), 1))
    expect = bl * dw * p * np.sign(np.outer(d[0].numpy(), x[0].numpy()))
    se = dw * np.sqrt(bl * p * (1 - p) / trials)
    z = np.where(se > 0, (dws.mean(0) - expect) / np.where(se > 0, se, 1), 0)
    assert np.abs(z).max() <= 4.5, z
    assert np.all(dws[:, 0, 0] == dw)  # C x = 3.2 and C d = 2.8: a coincidence in every slot
    col = dws[:, :, 0].sum(1)  # the bias column: lr * sum(d) = 0 unsaturated
    assert abs(float(lr * d.sum())) < 1e-6
    assert col.mean() + 4.5 * col.std(ddof=1) / math.sqrt(trials) < 0
    assert abs(col.mean() - expect[:, 0].sum()) <= 4.5 * col.std(ddof=1) / math.sqrt(trials)
