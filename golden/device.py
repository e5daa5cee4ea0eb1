"""Stochastic RRAM pulse-response model used by write-verify programming.

Why a model at all: the NeuRRAM papers give the write-verify *procedure* and its *outcome*
(mean 8.52 pulses per cell, 99 % of cells within +-1 uS; docs/model.md#write-verify), but not the
device's response to one pulse. To run the procedure we need one, so this module proposes a
behavioural model (ours) with few, physically meaningful parameters, two of which are fitted to
the paper's outcome (see ``DeviceParams`` and docs/write_verify.md).

Model, per pulse of amplitude V (volts) on a cell of conductance G (uS), all cells at once:

* Threshold: a pulse changes G only by its overdrive ``u = max(V - V_th, 0)``; per-cell
  thresholds ``V_th`` vary device to device (Gaussian, ``v_th_d2d``). Pulses below threshold
  are why write-verify wastes its first weak pulses (1.2, 1.3, ... V).
* SET grows the filament towards a per-cell ceiling ``G_c`` (the largest conductance the
  cell reaches under its compliance):  ``G' = G_c - (G_c - G) exp(-k_set u L / G_c)``, i.e.
  ``dG ~ k_set u L (1 - G/G_c)`` for small steps: linear in overdrive, slowing near the top.
* RESET dissolves it in proportion to its size:  ``G' = G exp(-k_reset u L)``.
* Cycle-to-cycle randomness: ``L`` is a fresh unit-mean log-normal factor per pulse
  (``c2c_sigma``), because filament growth and rupture are stochastic.
* Device-to-device randomness: ``k_set``/``k_reset`` per cell (log-normal, ``gain_d2d``) and
  ``G_c`` per cell (Gaussian, ``ceiling_d2d``). Cells whose ceiling lies below a high target
  cannot reach it and fail at the end-voltage cap; this is the model's failure mechanism.
* Bounds: G stays in ``[g_floor, G_c]`` with ``G_c <= g_hard`` (g_max plus a margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["ParameterError", "check_range", "DeviceParams", "RramArray"]


class ParameterError(ValueError):
    """A model parameter is out of its allowed range (the message names the field)."""


def check_range(owner: str, name: str, value: float, lo: float, hi: float) -> None:
    """Raise ParameterError unless ``lo <= value <= hi`` (and value is a finite number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{owner}.{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ParameterError(f"{owner}.{name} = {value!r} is out of range [{lo}, {hi}]")


@dataclass(frozen=True)
class DeviceParams:
    """Parameters of the pulse-response model (conductances in uS, voltages in V).

    Assumed (typical of HfOx 1T1R cells, not fitted): the gains and their spread, the
    cycle-to-cycle spread, the SET-RESET threshold gap, the ceiling's mean. Fitted to the
    paper's write-verify statistics by ``device_fit.fit_device`` (experiment
    ``write-verify-fit``, 128x128 cells, seed 1): the threshold *level* (SET and RESET moved
    together), because the sub-threshold pulses each ramp wastes pin the mean pulse count
    (8.52); and ``ceiling_d2d``, because it sets how many cells cannot reach high targets,
    pinning the pass fraction (99 %). Two numbers, two parameters: the fit matches them by
    construction; the pulse-count distribution, reversals, failure modes and every other
    target distribution are predictions.
    """

    v_set_th: float = 1.2806
    """Mean SET threshold (fitted level): the first 1.2 V pulse does nothing on most cells."""
    v_reset_th: float = 1.2306
    """Mean RESET threshold (fitted level; assumed 0.05 V below SET)."""
    v_th_d2d: float = 0.08
    """Device-to-device std of both thresholds."""
    k_set: float = 10.0
    """SET gain, uS per volt of overdrive per pulse (assumed)."""
    reset_ratio: float = 0.12
    """k_reset = reset_ratio * k_set, in 1/V per uS of k_set: RESET is relative (1/V)."""
    gain_d2d: float = 0.3
    """Log-normal sigma of the per-cell gains."""
    c2c_sigma: float = 0.5
    """Log-normal sigma of the per-pulse factor L (cycle-to-cycle randomness)."""
    ceiling: float = 52.0
    """Mean per-cell SET ceiling G_c (above g_max = 40 uS so typical cells reach it)."""
    ceiling_d2d: float = 9.993
    """Device-to-device std of the ceiling (fitted)."""
    g_floor: float = 0.1
    """Lowest conductance (a fully RESET cell)."""
    g_hard: float = 60.0
    """Hard upper bound of any ceiling: g_max plus a margin."""

    def __post_init__(self) -> None:
        o = "DeviceParams"
        check_range(o, "v_set_th", self.v_set_th, 0.1, 5.0)
        check_range(o, "v_reset_th", self.v_reset_th, 0.1, 5.0)
        check_range(o, "v_th_d2d", self.v_th_d2d, 0.0, 1.0)
        check_range(o, "k_set", self.k_set, 1e-6, 1e4)
        check_range(o, "reset_ratio", self.reset_ratio, 1e-6, 10.0)
        check_range(o, "gain_d2d", self.gain_d2d, 0.0, 3.0)
        check_range(o, "c2c_sigma", self.c2c_sigma, 0.0, 3.0)
        check_range(o, "g_floor", self.g_floor, 0.0, 10.0)
        check_range(o, "g_hard", self.g_hard, self.g_floor + 1e-3, 1e4)
        check_range(o, "ceiling", self.ceiling, self.g_floor + 1e-3, self.g_hard)
        check_range(o, "ceiling_d2d", self.ceiling_d2d, 0.0, 1e3)

    def replace(self, **changes: float) -> DeviceParams:
        known = {f.name for f in fields(self)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ParameterError(f"DeviceParams has no field(s): {', '.join(bad)}")
        return DeviceParams(**{**{f.name: getattr(self, f.name) for f in fields(self)},
                               **changes})


class RramArray:
    """An array of cells with frozen per-cell (device-to-device) parameters.

    ``pulse`` applies one pulse to a subset of cells at once, so the write-verify loop steps
    every unfinished cell together with no per-cell Python loop.
    """

    def __init__(self, shape: tuple[int, ...] | int, params: DeviceParams | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.params = p = params or DeviceParams()
        rng = rng if rng is not None else np.random.default_rng()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(self.shape))
        self.v_set = p.v_set_th + p.v_th_d2d * rng.standard_normal(n)
        self.v_reset = p.v_reset_th + p.v_th_d2d * rng.standard_normal(n)
        gain = np.exp(p.gain_d2d * rng.standard_normal(n) - p.gain_d2d**2 / 2)
        self.k_set = p.k_set * gain
        self.k_reset = p.reset_ratio * p.k_set * gain
        self.g_ceil = np.clip(p.ceiling + p.ceiling_d2d * rng.standard_normal(n),
                              p.g_floor + 1e-3, p.g_hard)

    @property
    def size(self) -> int:
        return self.v_set.size

    def pulse(self, g: np.ndarray, idx: np.ndarray, volts: np.ndarray, polarity: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """Conductances of cells ``idx`` (flat indices) after one pulse each.

        ``g`` is the flat conductance array (read only here), ``volts`` the amplitudes and
        ``polarity`` +1 for SET, -1 for RESET, both aligned with ``idx``.
        """
        p = self.params
        gi = g[idx]
        is_set = polarity > 0
        u = np.maximum(volts - np.where(is_set, self.v_set[idx], self.v_reset[idx]), 0.0)
        s = p.c2c_sigma
        lfac = np.exp(s * rng.standard_normal(idx.size) - s * s / 2)
        gc = self.g_ceil[idx]
        # A SET pulse never lowers G, even on a cell that starts above its ceiling.
        g_set = np.maximum(gc - (gc - gi) * np.exp(-self.k_set[idx] * u * lfac / gc), gi)
        g_reset = gi * np.exp(-self.k_reset[idx] * u * lfac)
        return np.clip(np.where(is_set, g_set, g_reset), p.g_floor, np.maximum(gc, gi))
