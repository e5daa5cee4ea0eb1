"""Conductance relaxation after programming, and its spread over programming rounds.

After a write-verify pulse train the filament rearranges: within about a second G moves by
a Gaussian amount whose std depends on G (docs/model.md#relaxation). We model one relaxation
event per programming as ``G' = max(G + sigma(G) * s * xi, g_floor)`` with ``xi ~ N(0, 1)``:

* ``sigma(G)`` is a published fit to the NeuRRAM data: Sandia CrossSim's ``RRAM_Wan``
  cubic (default; valid to G = 39.26 uS, held constant above) or IBM aihwkit's
  ``ReRamWan2022NoiseModel`` quartic in G / 40 uS (at 1 s, 1 day or 2 days).
* The floor makes the distribution one-sided near g_min, as measured ("Gaussian at all
  states except near g_min").
* ``s = scale * reprogram_factor ** (k - 1)`` for a cell programmed k times. ``scale``
  lets a study rescale the fit; ``reprogram_factor`` < 1 would model re-programmed cells
  relaxing less. Both default to 1: the paper gives no number for either.

Why the spread shrinks over rounds, in this model: after each round the cells whose
relaxation carried them outside +-tol are re-programmed and draw a *fresh*, independent
relaxation, while cells that relaxed little are kept. Selection alone therefore narrows the
error distribution round by round (no parameter is tuned for it); ``relaxation_spread``
measures it the way the paper reports it, as a std per programmed state averaged over states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .device import ParameterError, check_range

__all__ = [
    "CROSSSIM_COEFFS", "AIHWKIT_WAN2022_COEFFS", "sigma_crosssim", "sigma_aihwkit",
    "Relaxation", "relaxation_spread",
]

CROSSSIM_COEFFS = (1.053, 0.2374, -1.167e-2, 1.536e-4)
"""sigma_G(G) in uS, G in uS, constant term first (CrossSim ``RRAM_Wan``)."""
CROSSSIM_G_MAX = 39.26
"""Upper end of the range the CrossSim fit was made on."""

AIHWKIT_WAN2022_COEFFS = {
    "1s": (0.348, 16.030, -43.853, 45.393, -16.815),
    "1d": (0.701, 22.086, -50.773, 47.095, -16.458),
    "2d": (0.782, 20.274, -43.507, 37.062, -11.934),
}
"""aihwkit ReRamWan2022NoiseModel: sigma in uS vs G / 40 uS, constant term first."""
AIHWKIT_G_REF = 40.0


def sigma_crosssim(g: np.ndarray) -> np.ndarray:
    """CrossSim fit 1.536e-4 G^3 - 1.167e-2 G^2 + 0.2374 G + 1.053 (uS)."""
    x = np.clip(np.asarray(g, dtype=float), 0.0, CROSSSIM_G_MAX)
    return np.polynomial.polynomial.polyval(x, CROSSSIM_COEFFS)


def sigma_aihwkit(g: np.ndarray, t: str = "1s") -> np.ndarray:
    """aihwkit ReRamWan2022 polynomial at time ``t`` ('1s', '1d' or '2d'), in uS."""
    if t not in AIHWKIT_WAN2022_COEFFS:
        raise ParameterError(f"sigma_aihwkit t = {t!r}; choose one of "
                             f"{', '.join(AIHWKIT_WAN2022_COEFFS)}")
    x = np.clip(np.asarray(g, dtype=float) / AIHWKIT_G_REF, 0.0, 1.0)
    return np.maximum(np.polynomial.polynomial.polyval(x, AIHWKIT_WAN2022_COEFFS[t]), 0.0)


_MODELS = ("crosssim", "aihwkit-1s", "aihwkit-1d", "aihwkit-2d")


@dataclass(frozen=True)
class Relaxation:
    """Post-programming relaxation; call it as ``relax(g, cells, rng, times_programmed)``."""

    model: str = "crosssim"
    """'crosssim' or 'aihwkit-1s' / 'aihwkit-1d' / 'aihwkit-2d'."""
    scale: float = 1.0
    reprogram_factor: float = 1.0
    g_floor: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ParameterError(f"Relaxation.model = {self.model!r}; choose one of "
                                 f"{', '.join(_MODELS)}")
        check_range("Relaxation", "scale", self.scale, 0.0, 100.0)
        check_range("Relaxation", "reprogram_factor", self.reprogram_factor, 0.0, 10.0)
        check_range("Relaxation", "g_floor", self.g_floor, 0.0, 100.0)

    def sigma(self, g: np.ndarray) -> np.ndarray:
        """Relaxation std (uS) of a cell programmed once to conductance ``g``."""
        base = (sigma_crosssim(g) if self.model == "crosssim"
                else sigma_aihwkit(g, self.model.split("-")[1]))
        return self.scale * base

    def __call__(self, g: np.ndarray, cells: np.ndarray | None = None,
                 rng: np.random.Generator | None = None,
                 times_programmed: np.ndarray | None = None) -> np.ndarray:
        """Relax the cells in mask ``cells`` (default all); others are returned unchanged."""
        rng = rng if rng is not None else np.random.default_rng()
        g = np.asarray(g, dtype=float)
        cells = np.ones(g.shape, bool) if cells is None else np.asarray(cells, bool)
        s = self.sigma(g)
        if times_programmed is not None:
            k = np.maximum(np.asarray(times_programmed), 1)
            s = s * self.reprogram_factor ** (k - 1)
        moved = np.maximum(g + s * rng.standard_normal(g.shape), self.g_floor)
        return np.where(cells, moved, g)


def relaxation_spread(g: np.ndarray, target: np.ndarray, edges: np.ndarray,
                      keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Std of ``g - target`` per target bin (``edges``), and its mean over the bins.

    ``keep`` excludes cells (e.g. those that failed write-verify, whose error is not
    relaxation). Bins with fewer than 2 cells are NaN and left out of the mean.
    """
    err = (np.asarray(g, float) - np.asarray(target, float)).ravel()
    t = np.asarray(target, float).ravel()
    keep = np.ones(err.size, bool) if keep is None else np.asarray(keep, bool).ravel()
    b = np.digitize(t, edges) - 1
    per = np.full(len(edges) - 1, np.nan)
    for i in range(len(edges) - 1):  # one pass per bin, vectorized within it
        e = err[keep & (b == i)]
        if e.size >= 2:
            per[i] = e.std()
    return float(np.nanmean(per)), per
