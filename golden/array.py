"""The TNSA conductance array of one core (docs/model.md#core-organisation).

Conductances are kept in microsiemens, rows (BL/WL) x cols (SL). Both model levels read the
array through :meth:`Crossbar.codes`: conductances on a fixed-point grid of ``2**-G_FRAC_BITS``
uS. The grid is far finer than any device noise, and makes every settled-line numerator and
denominator an exact integer, so the algorithmic and cycle levels cannot disagree through
floating-point summation order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimflow.config import CoreConfig
from cimflow.modes import Direction

__all__ = [
    "G_FRAC_BITS", "Direction", "Crossbar", "Mapping",
    "corelet_map", "neuron_of_line", "encode_differential",
]

G_FRAC_BITS = 10
"""Conductance grid: one code step is 2**-10 uS (~1 nS)."""


def corelet_map(config: CoreConfig) -> tuple[np.ndarray, np.ndarray]:
    """(bl, sl) of every neuron; neuron n = c*i + j of corelet (i, j) sits on BL c*i + j and
    SL c*j + i, so each BL and each SL has exactly one neuron."""
    c = config.corelet
    i, j = np.divmod(np.arange(c * c), c)
    return c * i + j, c * j + i


def neuron_of_line(config: CoreConfig, on_sl: bool) -> np.ndarray:
    """Neuron index serving each BL (``on_sl`` False) or each SL (True)."""
    bl, sl = corelet_map(config)
    line = sl if on_sl else bl
    inv = np.empty_like(line)
    inv[line] = np.arange(line.size)
    return inv


def encode_differential(w: np.ndarray, g_min: float, g_max: float, w_max: float | None = None):
    """G+ = max(g_max W/w_max, g_min), G- = max(-g_max W/w_max, g_min) (not an offset map).

    Returns ``(g_plus, g_minus, w_max)``; ``w_max`` defaults to max|W|.
    """
    w = np.asarray(w, dtype=np.float64)
    if not 0 < g_min < g_max:
        raise ValueError(f"need 0 < g_min < g_max, got g_min={g_min}, g_max={g_max}")
    if w_max is None:
        w_max = float(np.max(np.abs(w))) if w.size else 0.0
    if not w_max > 0:
        raise ValueError(f"w_max must be > 0, got {w_max} (an all-zero weight matrix?)")
    if np.any(np.abs(w) > w_max * (1 + 1e-12)):
        raise ValueError(f"|W| exceeds w_max = {w_max}")
    scaled = g_max * w / w_max
    return np.maximum(scaled, g_min), np.maximum(-scaled, g_min), float(w_max)


@dataclass(frozen=True)
class Mapping:
    """Where a weight matrix W (n_in x n_out) sits: W[r, k] on rows 2r (G+) and 2r+1 (G-)
    of column k; the digital side keeps the target conductances for normalisation.

    ``n_in``/``n_out`` are the shape of W, named for the forward MVM y = x W. A backward MVM
    computes W delta: its input has n_out entries and its output n_in (see
    :meth:`Crossbar.vector_lengths`)."""

    n_in: int
    """Rows of W: forward/recurrent input length, backward output length."""
    n_out: int
    """Columns of W: forward/recurrent output length, backward input length."""
    w_max: float
    g_min: float
    g_max: float


class Crossbar:
    """Conductance state of one core's array. Unused cells are unformed (0 uS)."""

    def __init__(self, config: CoreConfig, g_min: float = 1.0, g_max: float = 40.0):
        if not 0 < g_min < g_max:
            raise ValueError(f"need 0 < g_min < g_max, got g_min={g_min}, g_max={g_max}")
        self.config = config
        self.g_min, self.g_max = float(g_min), float(g_max)
        self.target = np.zeros((config.rows, config.cols))
        """Programmed target conductances (uS): what the digital side believes."""
        self.g = np.zeros((config.rows, config.cols))
        """Actual conductances (uS) after non-idealities; equals ``target`` when ideal.
        Replaced, never written in place (read-only), so its codes can be cached."""
        self.g.flags.writeable = False
        self.mapping: Mapping | None = None
        self._codes_cache: tuple[np.ndarray, dict] | None = None

    def program(self, w: np.ndarray, w_max: float | None = None) -> Mapping:
        """Write W (n_in x n_out) differentially; rows 2r/2r+1 hold G+/G- of input r."""
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"weight matrix must be 2-D (n_in, n_out), got shape {w.shape}")
        n_in, n_out = w.shape
        if not (1 <= 2 * n_in <= self.config.rows and 1 <= n_out <= self.config.cols):
            raise ValueError(
                f"weight matrix {w.shape} does not fit: need 2*n_in <= rows = "
                f"{self.config.rows} and n_out <= cols = {self.config.cols}"
            )
        gp, gm, w_max = encode_differential(w, self.g_min, self.g_max, w_max)
        self.target[:] = 0.0
        self.target[0:2 * n_in:2, :n_out] = gp
        self.target[1:2 * n_in:2, :n_out] = gm
        self.g = self.target.copy()
        self.g.flags.writeable = False
        self.mapping = Mapping(n_in, n_out, w_max, self.g_min, self.g_max)
        return self.mapping

    def load(self, target: np.ndarray, mapping: Mapping) -> None:
        """Take compiled target conductances (uS, rows x cols, 0 = unformed) and the
        mapping they encode, as a compiler's image holds them; the actual conductances
        start equal to the targets (:meth:`set_conductances` replaces them)."""
        target = np.asarray(target, dtype=np.float64)
        if target.shape != self.target.shape:
            raise ValueError(f"targets must have shape {self.target.shape}, got {target.shape}")
        if not (1 <= 2 * mapping.n_in <= self.config.rows
                and 1 <= mapping.n_out <= self.config.cols and mapping.w_max > 0):
            raise ValueError(f"mapping {mapping} does not fit a {self.config.rows} x "
                             f"{self.config.cols} array")
        self.target = target.copy()
        self.set_conductances(self.target)
        self.mapping = mapping

    def set_conductances(self, g: np.ndarray) -> None:
        """Replace the actual conductances (e.g. with a non-ideal draw); clipped at 0."""
        g = np.asarray(g, dtype=np.float64)
        if g.shape != self.target.shape:
            raise ValueError(f"conductances must have shape {self.target.shape}, got {g.shape}")
        self.g = np.maximum(g, 0.0)
        self.g.flags.writeable = False

    def codes(self, target: bool = False) -> np.ndarray:
        """Conductances as int64 codes of 2**-G_FRAC_BITS uS (round to nearest).

        The codes of the actual conductances are cached (every MVM needs them); ``g`` is
        replaced, never written in place, so the cache is valid while ``g`` is the same
        array. The returned array is read-only.
        """
        if target:
            return np.rint(self.target * (1 << G_FRAC_BITS)).astype(np.int64)
        return self._cached()["codes"]

    def cached(self, key, build):
        """``build(self)``, memoised under ``key`` until ``g`` is replaced (e.g. the
        operands of an MVM direction, which every MVM on this array reuses)."""
        cache = self._cached()
        if key not in cache:
            cache[key] = build(self)
        return cache[key]

    def _cached(self) -> dict:
        cached = self._codes_cache
        if cached is None or cached[0] is not self.g:
            codes = np.rint(self.g * (1 << G_FRAC_BITS)).astype(np.int64)
            codes.flags.writeable = False
            self._codes_cache = cached = (self.g, {"codes": codes})
        return cached[1]

    def weights(self) -> np.ndarray:
        """W as represented by the actual conductances, (G+ - G-) w_max / g_max."""
        m = self.require_mapping()
        d = self.g[0:2 * m.n_in:2, :m.n_out] - self.g[1:2 * m.n_in:2, :m.n_out]
        return d * m.w_max / m.g_max

    def require_mapping(self) -> Mapping:
        """The mapping of the programmed W; every MVM and recovery needs one."""
        if self.mapping is None:
            raise RuntimeError("no weight matrix programmed; call Crossbar.program(W) first")
        return self.mapping

    def vector_lengths(self, direction: Direction) -> tuple[int, int]:
        """(input length, output length) of an MVM of the programmed W in ``direction``:
        (n_in, n_out) forward and recurrent (x W), (n_out, n_in) backward (W delta)."""
        m = self.require_mapping()
        if direction is Direction.BACKWARD:
            return m.n_out, m.n_in
        return m.n_in, m.n_out
