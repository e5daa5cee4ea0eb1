"""Golden model of the stochastic translator (STR) bank for the RPU parallel update.

docs/model.md#rpu-update. Every row i holds x_i and every column j holds delta_j as an n-bit
magnitude and a sign bit (n = config.str_bits). Writing a value stores its threshold

    thr = min((mag * gain_code) >> str_gain_frac_bits, 2^n)

so P(pulse) = thr / 2^n = min(C*|v|, 1) with |v| = mag / 2^n and C = gain_code /
2^str_gain_frac_bits (floored to a multiple of 2^-n, at most 2^-n below the ideal). A line
pulses in a time slot when its LFSR word is below its threshold.

One update runs up to four phases of BL slots, in this order (docs/model.md#rpu-update):

    phase 0: rows with x > 0, up    (columns with delta > 0)
    phase 1: rows with x > 0, down  (columns with delta < 0)
    phase 2: rows with x < 0, up    (columns with delta < 0)
    phase 3: rows with x < 0, down  (columns with delta > 0)

A row fires only in the phases of its sign; a column fires when its sign equals
row_sign XOR down. A phase whose row set (rows of that sign with thr > 0) is empty is
skipped, so an all-non-negative x takes 2 phases. "Up" coincidences raise the weight, so
every coincidence at cell (i, j) has the sign of x_i * delta_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimflow.config import CoreConfig

from .lfsr import LfsrChains

__all__ = ["StrTrace", "thresholds", "line_thresholds", "enabled_phases", "str_update",
           "signed_coincidences"]


@dataclass
class StrTrace:
    """The pulse slots of one update: one entry per emitted time slot, in order."""

    phase: np.ndarray  # (T,) 0..3
    row_pulse: np.ndarray  # (T, rows) bool
    col_pulse: np.ndarray  # (T, cols) bool

    @property
    def up(self) -> np.ndarray:
        return (self.phase & 1) == 0


def _check_vector(name: str, v, size: int, hi: int) -> np.ndarray:
    a = np.asarray(v)
    if a.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() > hi):
        raise ValueError(f"{name} values must lie in [0, {hi}]")
    return a.astype(np.int64)


def thresholds(config: CoreConfig, mags, gain_code: int) -> np.ndarray:
    """Threshold stored when writing magnitudes ``mags`` with gain register ``gain_code``."""
    n = config.str_bits
    if not 0 <= gain_code < (1 << config.str_gain_bits):
        raise ValueError(f"gain_code = {gain_code} out of range [0, {2**config.str_gain_bits - 1}]")
    m = np.asarray(mags, dtype=np.int64)
    if m.size and (m.min() < 0 or m.max() >= (1 << n)):
        raise ValueError(f"magnitudes must lie in [0, {2**n - 1}] for str_bits = {n}")
    return np.minimum((m * gain_code) >> config.str_gain_frac_bits, 1 << n)


def line_thresholds(config: CoreConfig, words, gain_code: int) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, sign bits) an ``RPU_UPDATE`` loads from the line registers ``words``.

    ``words`` are the W-bit register words of every line, rows (BL registers) first, then
    columns (SL registers): sign-magnitude with sign 1 = positive, as the neurons write
    them. The core scales the W-1 magnitude bits to ``str_bits`` by a shift (truncating
    when W-1 > str_bits) and gives the translators sign 1 for a negative, non-zero value
    (docs/core_architecture.md), so an update can be replayed from what the registers hold.
    """
    w, n = config.line_bits, config.str_bits
    a = np.asarray(words)
    if a.shape != (config.lines,):
        raise ValueError(f"words must have shape ({config.lines},) (rows, then columns), "
                         f"got {a.shape}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= (1 << w)):
        raise ValueError(f"line register words must lie in [0, {2**w - 1}] (W = {w} bits)")
    mag = a & ((1 << (w - 1)) - 1)
    shift = n - (w - 1)
    mags = mag << shift if shift >= 0 else mag >> -shift
    sign = (((a >> (w - 1)) & 1) == 0) & (mag != 0)
    return thresholds(config, mags, gain_code), sign.astype(np.int64)


def enabled_phases(thr_rows, sign_rows) -> list[int]:
    thr_rows, sign_rows = np.asarray(thr_rows), np.asarray(sign_rows)
    out = []
    for p in range(4):
        if np.any((sign_rows == (p >> 1)) & (thr_rows > 0)):
            out.append(p)
    return out


def str_update(config: CoreConfig, chains: LfsrChains, thr_rows, sign_rows, thr_cols,
               sign_cols, bl: int) -> StrTrace:
    """Emit the slots of one update; the LFSR advances once per slot."""
    rows, cols, n = config.rows, config.cols, config.str_bits
    thr_rows = _check_vector("thr_rows", thr_rows, rows, 1 << n)
    thr_cols = _check_vector("thr_cols", thr_cols, cols, 1 << n)
    sign_rows = _check_vector("sign_rows", sign_rows, rows, 1)
    sign_cols = _check_vector("sign_cols", sign_cols, cols, 1)
    if not 1 <= bl <= config.bl_max:
        raise ValueError(f"bl = {bl} out of range [1, {config.bl_max}]")
    phases = enabled_phases(thr_rows, sign_rows)
    T = bl * len(phases)
    words = chains.words(T).astype(np.int64)
    phase = np.repeat(np.asarray(phases, dtype=np.int64), bl)
    row_sign, down = (phase >> 1)[:, None], (phase & 1)[:, None]
    row_pulse = (words[:, :rows] < thr_rows) & (sign_rows[None, :] == row_sign)
    col_pulse = (words[:, rows:] < thr_cols) & (sign_cols[None, :] == (row_sign ^ down))
    return StrTrace(phase, row_pulse, col_pulse)


def signed_coincidences(trace: StrTrace) -> np.ndarray:
    """Net coincidences per cell: +1 per up-phase coincidence, -1 per down-phase one."""
    sgn = np.where(trace.up, 1, -1)
    return np.einsum("t,ti,tj->ij", sgn, trace.row_pulse.astype(np.int64),
                     trace.col_pulse.astype(np.int64))
