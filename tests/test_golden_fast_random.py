"""The raw-bit samplers against their distributions (KS tests, moments, support, seeds)."""

import numpy as np
import pytest
from scipy import stats

from cimflow.golden import fast_random
from cimflow.golden.fast_random import logistic, standard_normal, uniform_words

N = 400_000


def test_logistic_matches_the_distribution():
    x = logistic(np.random.default_rng(1), N, 3.0).astype(np.float64)
    assert stats.kstest(x, stats.logistic(scale=3.0).cdf).pvalue > 1e-3
    assert abs(x.mean()) < 5 * 3.0 * np.pi / np.sqrt(3 * N)
    assert x.var() == pytest.approx(np.pi**2 * 9.0 / 3, rel=0.02)
    assert np.abs(x).max() <= 3.0 * np.log(2.0**24)  # the documented cut at 16.6 scale


@pytest.mark.parametrize("n", [N, fast_random.SMALL_NORMAL // 2])
def test_standard_normal_both_paths(n):
    rng = np.random.default_rng(2)
    z = np.concatenate([standard_normal(rng, n) for _ in range(N // n)]).astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and z.var() == pytest.approx(1.0, rel=0.02)


def test_box_muller_pairs_are_uncorrelated():
    z = standard_normal(np.random.default_rng(3), N).astype(np.float64)
    h = N // 2  # the cos and sin outputs of one pair of uniforms
    assert abs(np.corrcoef(z[:h], z[h:])[0, 1]) * np.sqrt(h) < 4
    assert abs(np.corrcoef(z[:h] ** 2, z[h:] ** 2)[0, 1]) * np.sqrt(h) < 4


def test_shapes_seeds_and_bad_counts():
    a = logistic(np.random.default_rng(4), (3, 5, 7), 1.0)
    b = logistic(np.random.default_rng(4), (3, 5, 7), 1.0)
    assert a.shape == (3, 5, 7) and a.dtype == np.float32 and np.array_equal(a, b)
    z = standard_normal(np.random.default_rng(5), (5, 4099))  # odd count, Box-Muller path
    assert z.shape == (5, 4099) and np.isfinite(z).all()
    assert standard_normal(np.random.default_rng(5), 0).shape == (0,)
    assert uniform_words(np.random.default_rng(6), 7).dtype == np.uint32
    with pytest.raises(ValueError, match="sample count"):
        uniform_words(np.random.default_rng(6), -1)
