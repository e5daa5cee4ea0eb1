"""Fit of the device model to the NeuRRAM paper's write-verify statistics.

Model code, not an experiment: golden.device's threshold level and ceiling spread are the
two parameters this fit pins (mean pulses per cell and pass fraction); the experiment
``write-verify-fit`` (cimflow.experiments.programming) re-runs it and checks the result.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .device import DeviceParams, RramArray
from .write_verify import WriteVerifyParams, write_verify

__all__ = ["PAPER", "initial_state", "write_verify_stats", "fit_device"]

PAPER = {"mean_pulses": 8.52, "pass_fraction": 0.99, "sigma_round1_uS": 2.8,
         "sigma_round3_uS": 2.0}
"""The NeuRRAM paper's figures (docs/model.md#write-verify) that the model is compared with."""


def initial_state(n: int, wv: WriteVerifyParams, rng: np.random.Generator):
    """Targets uniform over [g_min, g_max]; cells start from an earlier random weight set
    (also uniform), i.e. the array is being re-programmed."""
    target = rng.uniform(wv.g_min, wv.g_max, n)
    g0 = rng.uniform(wv.g_min, wv.g_max, n)
    return g0, target


def write_verify_stats(dp: DeviceParams, n: int, seed: int) -> tuple[float, float]:
    """Mean pulses per cell and pass fraction of one write-verify of ``n`` cells."""
    # Common random numbers (same seed for every candidate) keep the fit's objective smooth.
    rng = np.random.default_rng(seed)
    wv = WriteVerifyParams()
    dev = RramArray(n, dp, rng)
    g0, t = initial_state(n, wv, rng)
    rep = write_verify(g0, t, dev, wv, rng)
    return rep.mean_pulses, rep.pass_fraction


def fit_device(mean_pulses: float = PAPER["mean_pulses"],
               pass_fraction: float = PAPER["pass_fraction"], n: int = 128 * 128,
               seed: int = 1, base: DeviceParams | None = None) -> DeviceParams:
    """Fit two parameters of DeviceParams to the write-verify statistics.

    * A common shift of the SET and RESET thresholds sets how many weak pulses each ramp
      wastes, so it pins the mean pulse count (monotone: higher threshold, more pulses).
    * ``ceiling_d2d`` sets how many cells cannot reach high targets, so it pins the pass
      fraction. Alternating 1-D root finds converge in a few sweeps (the two barely couple).
    """
    dp = base or DeviceParams()
    for _ in range(3):
        def f_mean(shift: float, d: DeviceParams = dp) -> float:
            p = d.replace(v_set_th=d.v_set_th + shift, v_reset_th=d.v_reset_th + shift)
            return write_verify_stats(p, n, seed)[0] - mean_pulses

        shift = brentq(f_mean, -0.5, 0.8, xtol=1e-4)
        dp = dp.replace(v_set_th=round(dp.v_set_th + shift, 4),
                        v_reset_th=round(dp.v_reset_th + shift, 4))

        def f_pass(sd: float, d: DeviceParams = dp) -> float:
            return write_verify_stats(d.replace(ceiling_d2d=sd), n, seed)[1] - pass_fraction

        dp = dp.replace(ceiling_d2d=round(brentq(f_pass, 0.5, 40.0, xtol=1e-3), 3))
    return dp
