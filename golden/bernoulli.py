"""The ideal RPU update the stochastic translators approximate (docs/model.md#rpu-update).

Independent Bernoulli bits with P(A_i = 1) = min(C|x_i|, 1) and P(B_j = 1) = min(C|delta_j|, 1)
per time slot, coincidences counted with the sign of x_i * delta_j. Used as the statistical
reference for the LFSR-driven translators, never for bit-exact checks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pulse_probability", "bernoulli_counts", "expected_coincidences"]


def pulse_probability(values, gain: float) -> np.ndarray:
    return np.clip(gain * np.abs(np.asarray(values, dtype=float)), 0.0, 1.0)


def bernoulli_counts(px, pd, bl: int, trials: int, rng: np.random.Generator) -> np.ndarray:
    """Coincidence counts of (trials, rows, cols) independent ideal updates."""
    px, pd = np.asarray(px, float), np.asarray(pd, float)
    a = rng.random((trials, bl, px.size)) < px
    b = rng.random((trials, bl, pd.size)) < pd
    return np.einsum("nti,ntj->nij", a.astype(np.int64), b.astype(np.int64))


def expected_coincidences(px, pd, bl: int) -> np.ndarray:
    """E[coincidences at (i, j)] = BL * p_x,i * p_delta,j (Eq. 1.3 without Delta w_min)."""
    return bl * np.outer(px, pd)
