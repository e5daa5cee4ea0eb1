"""Random stimulus for the stochastic-translator bank and its golden expectation.

Shared by the Amaranth-simulator unit tests and the cocotb testbenches, so both drive the
RTL the same way and judge it by the same golden model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimflow.config import CoreConfig
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.stochastic_translator import StrTrace, str_update, thresholds

__all__ = ["StrUpdate", "random_update", "GoldenStrBank"]


@dataclass
class StrUpdate:
    """One update command: values written to every line, then start with BL."""

    mags: np.ndarray  # (lines,) n-bit magnitudes, rows first
    signs: np.ndarray  # (lines,) 0 = positive, 1 = negative
    gain: int
    bl: int


def random_update(cfg: CoreConfig, rng: np.random.Generator, *, bl: int | None = None,
                  nonneg_rows: bool = False) -> StrUpdate:
    n = cfg.str_bits
    mags = rng.integers(0, 1 << n, cfg.lines)
    mags[rng.random(cfg.lines) < 0.1] = 0
    signs = rng.integers(0, 2, cfg.lines)
    if nonneg_rows:
        signs[: cfg.rows] = 0
    gain = int(rng.integers(0, 1 << cfg.str_gain_bits))
    if bl is None:
        bl = int(rng.integers(1, min(cfg.bl_max, 64) + 1))
    return StrUpdate(mags, signs, gain, bl)


class GoldenStrBank:
    """Golden mirror of the RTL bank: thresholds per line and the LFSR state."""

    def __init__(self, cfg: CoreConfig, seed_a: int, seed_b: int):
        self.cfg = cfg
        self.chains = LfsrChains(cfg, seed_a or 1, seed_b or 1)  # RTL maps seed 0 to 1
        self.thr = np.zeros(cfg.lines, dtype=np.int64)
        self.sign = np.zeros(cfg.lines, dtype=np.int64)

    def write(self, upd: StrUpdate) -> None:
        self.thr = thresholds(self.cfg, upd.mags, upd.gain)
        self.sign = np.asarray(upd.signs, dtype=np.int64)

    def run(self, bl: int) -> StrTrace:
        r = self.cfg.rows
        return str_update(self.cfg, self.chains, self.thr[:r], self.sign[:r], self.thr[r:],
                          self.sign[r:], bl)
