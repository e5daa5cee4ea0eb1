"""The LFSR-driven stochastic translators against the ideal RPU update they approximate:
independent Bernoulli pulses (golden.bernoulli), checked statistically, never bit for bit."""

import numpy as np
import pytest

from cimflow.config import PRESETS
from cimflow.golden.bernoulli import bernoulli_counts, expected_coincidences, pulse_probability
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.stochastic_translator import signed_coincidences, str_update, thresholds

CFG = PRESETS["small"]
BL, UPDATES = 10, 2000


@pytest.mark.parametrize("gain_code", [0, 3, 16, 37, 255])
def test_thresholds_are_the_ideal_probability_floored_to_the_word_grid(gain_code):
    """thr / 2^n = floor(2^n min(C |v|, 1)) / 2^n with v = mag / 2^n, C = gain / 2^frac."""
    n = CFG.str_bits
    mags = np.arange(1 << n)
    c = gain_code / (1 << CFG.str_gain_frac_bits)
    p = pulse_probability(mags / (1 << n), c)
    assert np.array_equal(thresholds(CFG, mags, gain_code), np.floor(p * (1 << n)))


def _lines(seed):
    rng = np.random.default_rng(seed)
    r, c, n = CFG.rows, CFG.cols, CFG.str_bits
    thr = rng.integers(0, (1 << n) + 1, r + c)
    thr[0], thr[r] = 1 << n, 1 << n  # a row and a column that always pulse
    sign = rng.integers(0, 2, r + c)
    return thr[:r], sign[:r], thr[r:], sign[r:]


@pytest.mark.parametrize("seeds", [(0x1234, 0x567), (0x7FFF, 0x3)])
def test_lfsr_update_matches_the_ideal_bernoulli_update(seeds):
    """Over many updates each cell's signed coincidence count has the ideal mean
    sign(x_i delta_j) BL p_i p_j and the ideal binomial spread; the same checks pass for
    the ideal sampler itself, so the bounds are calibrated, not loose."""
    tr, sr, tc, sc = _lines(seeds[0])
    n = 1 << CFG.str_bits
    chains = LfsrChains(CFG, *seeds)
    got = np.array([signed_coincidences(str_update(CFG, chains, tr, sr, tc, sc, BL))
                    for _ in range(UPDATES)])
    sign = np.where(sr[:, None] == sc[None, :], 1, -1)
    # every coincidence has the sign of x_i * delta_j
    assert np.all(got * sign >= 0)
    px, pd = tr / n, tc / n
    ideal = bernoulli_counts(px, pd, BL, UPDATES, np.random.default_rng(seeds[1]))
    mean = expected_coincidences(px, pd, BL)
    p = np.outer(px, pd)
    var = BL * p * (1 - p)
    for counts in (np.abs(got), ideal):
        sd = np.sqrt(var / UPDATES)
        z = np.abs(counts.mean(axis=0) - mean) / np.where(sd > 0, sd, 1)
        assert z.max() < 4.5  # 256 cells: a 4.5-sigma excursion has p < 2e-3
        assert np.all(counts[:, sd == 0] == mean[sd == 0])  # p = 0 or 1: no spread
        busy = (p > 0.1) & (p < 0.9)
        assert busy.sum() > 50
        ratio = counts.var(axis=0)[busy] / var[busy]
        assert np.all(np.abs(ratio - 1) < 0.25) and abs(ratio.mean() - 1) < 0.03
