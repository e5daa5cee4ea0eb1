"""The regression's statistical checks (verif/stats.py) against samples of known law."""

import numpy as np

from cimflow.verif.stats import binomial_gof, pooled_bins


def test_pooled_bins_keep_totals_and_reach_the_least_expectation():
    rng = np.random.default_rng(3)
    expected = rng.exponential(2.0, 40)
    observed = rng.poisson(expected).astype(float)
    obs, exp = pooled_bins(observed, expected, least=5.0)
    assert obs.sum() == observed.sum() and np.isclose(exp.sum(), expected.sum())
    assert np.all(exp[:-1] >= 5.0)
    # merging is of neighbours only: the cumulative sums of the merged bins are a subset
    assert np.all(np.isin(np.round(np.cumsum(exp)[:-1], 9), np.round(np.cumsum(expected), 9)))


def test_binomial_gof_accepts_the_true_law_and_rejects_a_wrong_p():
    """alpha 1e-3 family-wise: the true law passes; p 15 % too high fails (power ~1 here)."""
    rng = np.random.default_rng(7)
    bl, p = 10, np.array([0.05, 0.3, 0.5, 0.8])
    counts = rng.binomial(bl, p, size=(20_000, p.size))
    assert binomial_gof(counts, p, bl)["passed"]
    assert not binomial_gof(counts, p * 1.15, bl)["passed"]
