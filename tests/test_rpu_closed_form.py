"""Closed forms for n same-sign coincidences against pulse-by-pulse application.

Each case draws T independent cells both ways and compares the two samples with a two-sample
Kolmogorov-Smirnov test at alpha = 0.001 / (number of cases) (Bonferroni, family-wise 0.001).
A deliberately wrong closed form (noise variance x 1.5) must be rejected, so the test has
power. Without cycle-to-cycle noise both ways must agree to rounding.
"""

import pytest
import torch
from scipy import stats

from cimflow.golden.rpu.closed_form import apply_direction, apply_pulses, apply_signed
from cimflow.golden.rpu.devices import DeviceState

T = 20000
CASES = [  # (soft, up, n, h, k, start, c2c)
    (False, True, 10, 0, 0.0, 0.0, 0.3),
    (False, False, 7, 5, 0.2, 0.0, 0.3),
    (False, True, 10, 0, 0.0, 0.585, 0.3),  # runs into the hard bound
    (True, True, 10, 0, 0.0, 0.3, 0.3),
    (True, False, 4, 6, 0.2, -0.2, 0.3),
    (True, True, 10, 0, 0.0, 0.0, 0.9),
]
ALPHA = 0.001 / len(CASES)


def state(soft, c2c, dw=0.02):
    ones = torch.ones(T, dtype=torch.float64)
    return DeviceState(dw * ones, 0.8 * dw * ones, 0.6 * ones, -0.5 * ones, c2c, soft)


def both(soft, up, n, h, k, start, c2c, seed=0):
    st = state(soft, c2c)
    w0 = torch.full((T,), start, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    nn_ = torch.full((T,), float(n), dtype=torch.float64)
    hh = torch.full((T,), float(h), dtype=torch.float64)
    closed = apply_direction(w0, st, up, nn_, hh, k, generator=g)
    pulses = apply_pulses(w0, st, up, n, h, k, generator=g)
    return closed, pulses


@pytest.mark.parametrize("case", CASES)
def test_closed_form_distribution(case):
    closed, pulses = both(*case)
    # the bound is an atom: compare the atom's mass by a binomial z-test, the rest by KS
    p = stats.ks_2samp(closed.numpy(), pulses.numpy()).pvalue
    assert p > ALPHA, p
    assert abs(closed.mean() - pulses.mean()) <= 4.5 * pulses.std() / T**0.5 * 2**0.5


@pytest.mark.parametrize("case", CASES)
def test_closed_form_exact_without_noise(case):
    soft, up, n, h, k, start, _ = case
    closed, pulses = both(soft, up, n, h, k, start, 0.0)
    assert torch.allclose(closed, pulses, rtol=0, atol=1e-12)


def test_ks_has_power():
    # a closed form with 1.5x the noise variance must be rejected at the same alpha
    closed, pulses = both(False, True, 10, 0, 0.0, 0.0, 0.3)
    mean = pulses.mean()
    wrong = mean + (closed - mean) * 1.5**0.5
    assert stats.ks_2samp(wrong.numpy(), pulses.numpy()).pvalue < ALPHA


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("c2c", [0.0, 0.3])
def test_signed_single_sample_path_equals_directional(soft, c2c):
    # the sign-arithmetic path of one sample = the per-direction closed form, same noise draws
    g = torch.Generator().manual_seed(4)
    ones = torch.ones(T, dtype=torch.float64)
    st = DeviceState(0.02 * (1 + 0.3 * torch.rand(T, dtype=torch.float64, generator=g)),
                     0.015 * ones, 0.6 * ones, -0.5 * ones, c2c, soft)
    w = torch.rand(T, dtype=torch.float64, generator=g) - 0.5
    n = torch.randint(-10, 11, (T,), generator=g).double()
    got = apply_signed(w, st, n, generator=torch.Generator().manual_seed(9))
    up = apply_direction(w, st, True, n.clamp(min=0), generator=torch.Generator().manual_seed(9))
    down = apply_direction(w, st, False, (-n).clamp(min=0),
                           generator=torch.Generator().manual_seed(9))
    want = torch.where(n > 0, up, torch.where(n < 0, down, w))
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert torch.equal(got[n == 0], w[n == 0])
