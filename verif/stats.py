"""Statistical checks of stochastic pulse trains against the ideal Bernoulli model.

Each check returns a dict of figures plus ``passed``; the significance levels are stated in
the figures so that a regression report shows what was tested. Inputs are pulse arrays
captured from the RTL (or produced by the golden model) for one phase of many updates.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["binomial_gof", "pooled_bins", "coincidence_means", "neighbour_correlation",
           "CORR_Z_BOUND"]

CORR_Z_BOUND = 4.5
"""Neighbouring lines count as uncorrelated when |rho| * sqrt(N) <= 4.5 at every lag checked.
Under independence sqrt(N)*rho is ~N(0, 1), so one comparison exceeds 4.5 with probability
7e-6; over a few hundred (pair, lag) comparisons the family-wise false-alarm rate is < 0.5 %."""


def pooled_bins(observed, expected, least: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring bins merged, in the given order, until each expects >= ``least`` (the
    chi-square approximation's rule); a short remainder joins the last bin. Returns
    (observed, expected) of the merged bins."""
    obs, exp = [], []
    ao = ae = 0.0
    for o, e in zip(observed, expected, strict=True):
        ao, ae = ao + o, ae + e
        if ae >= least:
            obs.append(ao)
            exp.append(ae)
            ao = ae = 0.0
    if obs:
        obs[-1] += ao
        exp[-1] += ae
    return np.array(obs), np.array(exp)


def binomial_gof(counts: np.ndarray, p: np.ndarray, bl: int, alpha: float = 1e-3) -> dict:
    """Chi-square goodness of fit of per-line pulse counts to Binomial(BL, p_line).

    ``counts`` has shape (trials, lines). Bins with small expectation are pooled so that every
    expected count is >= 5. Each line is tested at alpha / lines (Bonferroni), so the whole
    check has family-wise significance level ``alpha``.
    """
    trials, lines = counts.shape
    pvals = []
    for k in range(lines):
        pk = float(p[k])
        if pk in (0.0, 1.0):
            ok = np.all(counts[:, k] == (0 if pk == 0.0 else bl))
            pvals.append(1.0 if ok else 0.0)
            continue
        expect = stats.binom.pmf(np.arange(bl + 1), bl, pk) * trials
        observed = np.bincount(counts[:, k], minlength=bl + 1).astype(float)
        o_bins, e_bins = pooled_bins(observed, expect)
        if len(e_bins) < 2:
            pvals.append(1.0)
            continue
        chi2 = float(np.sum((o_bins - e_bins) ** 2 / e_bins))
        pvals.append(float(stats.chi2.sf(chi2, len(e_bins) - 1)))
    pvals = np.array(pvals)
    level = alpha / lines
    return {"test": "chi-square GOF to Binomial(BL, p)", "alpha_family": alpha,
            "alpha_per_line": level, "min_p_value": float(pvals.min()),
            "lines": lines, "trials": trials, "passed": bool(np.all(pvals > level))}


def coincidence_means(row_counts_per_trial: np.ndarray, px: np.ndarray, pd: np.ndarray,
                      bl: int, z_bound: float = 4.5) -> dict:
    """Mean coincidences per (row, column) pair vs BL * p_x * p_delta.

    ``row_counts_per_trial`` has shape (trials, rows, cols). Each pair's mean is compared with
    the expectation in units of its standard error; the bound is |z| <= ``z_bound``.
    """
    trials = row_counts_per_trial.shape[0]
    mean = row_counts_per_trial.mean(axis=0)
    expect = bl * np.outer(px, pd)
    var = bl * np.outer(px, pd) * (1 - np.outer(px, pd))  # Binomial(BL, px*pd)
    se = np.sqrt(np.maximum(var, 1e-12) / trials)
    z = np.where(var > 0, (mean - expect) / se, np.where(mean == expect, 0.0, np.inf))
    return {"test": "mean coincidences = BL*p_x*p_delta", "z_bound": z_bound,
            "max_abs_z": float(np.max(np.abs(z))), "pairs": int(z.size), "trials": trials,
            "passed": bool(np.max(np.abs(z)) <= z_bound)}


def neighbour_correlation(trains: np.ndarray, max_lag: int = 3,
                          z_bound: float = CORR_Z_BOUND) -> dict:
    """Largest |Pearson rho| * sqrt(N) between lines k and k+1 over lags -max_lag..max_lag.

    ``trains`` has shape (slots, lines): consecutive slots of each line's pulse train.
    """
    x = trains.astype(float)
    n_slots, lines = x.shape
    worst, worst_at = 0.0, None
    for lag in range(-max_lag, max_lag + 1):
        a = x[max(0, lag) : n_slots + min(0, lag), :-1]
        b = x[max(0, -lag) : n_slots + min(0, -lag), 1:]
        a = a - a.mean(axis=0)
        b = b - b.mean(axis=0)
        denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
        rho = np.where(denom > 0, (a * b).sum(axis=0) / np.where(denom > 0, denom, 1), 0.0)
        z = np.abs(rho) * np.sqrt(a.shape[0])
        k = int(np.argmax(z))
        if z[k] > worst:
            worst, worst_at = float(z[k]), {"line": k, "lag": lag, "rho": float(rho[k])}
    return {"test": "neighbour-line correlation", "z_bound": z_bound, "max_lag": max_lag,
            "max_abs_z": worst, "worst": worst_at, "slots": n_slots,
            "passed": worst <= z_bound}
