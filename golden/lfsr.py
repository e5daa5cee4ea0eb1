"""Golden model of the two counter-propagating LFSR chains (docs/model.md#lfsr-chains).

Each chain is a Fibonacci LFSR whose shift register is extended to ``L =
config.lfsr_chain_length`` stages: stage q holds the chain's m-sequence delayed by q, so
stage q at cycle c is ``x(n*c - q)`` where ``n = config.str_bits`` (the chain advances n
steps per clock, giving every line n fresh bits per cycle). Chain A shifts towards higher
positions, chain B towards lower ones (position p of B is its stage L-1-p). The word of
line k is ``A[k*n + j] XOR B[k*n + j]`` for bit j (LSB first); the line's single random bit
is bit 0 of its word. XORing two chains moving in opposite directions breaks the shift
relation "line k+1 now = line k one cycle ago" that a single chain has.

Seed load (mirrors the RTL): stages 0..d-1 take the seed (stage q = seed bit q), the other
stages are cleared, and the chain runs ``config.lfsr_warmup_cycles`` cycles before it is
ready, so every stage then holds sequence bits. Cycle 0 of this model is that ready cycle.

The sequence is generated in blocks of ``min(taps)`` bits with NumPy (no per-bit loop).
"""

from __future__ import annotations

import numpy as np

from cimflow.config import CoreConfig

__all__ = ["MSequence", "LfsrChains", "chain_stages", "check_seed"]


def check_seed(name: str, seed: int, degree: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {seed!r}")
    if not 0 < int(seed) < (1 << degree):
        raise ValueError(
            f"{name} = {seed} is out of range [1, 2^{degree} - 1] (0 locks the LFSR up)"
        )


class MSequence:
    """The bit sequence x(tau) of one LFSR, produced on demand and kept in a sliding window.

    x(-q) = seed bit q for q in 0..d-1; x(tau) = XOR_{k in taps} x(tau - k) afterwards.
    """

    def __init__(self, taps: tuple[int, ...], seed: int):
        self.taps = tuple(taps)
        self.degree = max(self.taps)
        check_seed("seed", seed, self.degree)
        d = self.degree
        self._block = min(self.taps)
        # _buf[i] = x(self._tau0 + i)
        self._tau0 = -(d - 1)
        self._buf = np.array([(seed >> (d - 1 - i)) & 1 for i in range(d)], dtype=np.uint8)

    def _extend(self, tau_hi: int) -> None:
        """Make x(tau) available for tau <= tau_hi."""
        have = self._tau0 + len(self._buf) - 1
        if tau_hi <= have:
            return
        n_new = tau_hi - have
        old = len(self._buf)
        buf = np.concatenate([self._buf, np.zeros(n_new, dtype=np.uint8)])
        b = self._block
        for i in range(old, old + n_new, b):
            j = min(i + b, old + n_new)
            acc = buf[i - self.taps[0] : j - self.taps[0]].copy()
            for k in self.taps[1:]:
                acc ^= buf[i - k : j - k]
            buf[i:j] = acc
        self._buf = buf

    def window(self, tau_lo: int, tau_hi: int) -> tuple[np.ndarray, int]:
        """Return (array, offset) with array[tau - offset] = x(tau) for tau_lo <= tau <= tau_hi.

        Bits before ``tau_lo`` may be discarded afterwards: callers move forward in time.
        """
        if tau_lo < self._tau0:
            raise ValueError("MSequence only moves forward in time")
        self._extend(tau_hi)
        # keep d bits of history before tau_lo for the recurrence
        drop = tau_lo - self._tau0 - self.degree
        if drop > 0:
            self._buf = self._buf[drop:]
            self._tau0 += drop
        return self._buf, self._tau0


def chain_stages(taps: tuple[int, ...], seed: int, length: int, step: int, cycle: int):
    """Stages 0..length-1 of one chain ``cycle`` clocks after a seed load (warm-up included).

    Stage q holds x(step*cycle - q), or 0 where that bit predates the seed.
    """
    seq = MSequence(taps, seed)
    d = seq.degree
    q = np.arange(length)
    tau = step * cycle - q
    lo = max(int(tau.min()), -(d - 1))
    buf, off = seq.window(lo, max(int(tau.max()), lo))
    out = np.zeros(length, dtype=np.uint8)
    valid = tau >= -(d - 1)
    out[valid] = buf[tau[valid] - off]
    return out


class LfsrChains:
    """Both chains of one core, stepped from the ready cycle on.

    ``single_chain=True`` drops chain B (a reference design used to show why two chains are
    XORed; not what the hardware does).
    """

    def __init__(self, config: CoreConfig, seed_a: int, seed_b: int, *, single_chain=False):
        self.config = config
        check_seed("seed_a", seed_a, max(config.lfsr_a_taps))
        check_seed("seed_b", seed_b, max(config.lfsr_b_taps))
        self._a = MSequence(config.lfsr_a_taps, seed_a)
        self._b = None if single_chain else MSequence(config.lfsr_b_taps, seed_b)
        self.cycle = 0  # cycles since ready
        n, L = config.str_bits, config.lfsr_chain_length
        p = np.arange(config.lines * n)
        self._pos_a = -p  # A position p = stage p
        self._pos_b = -(L - 1 - p)  # B position p = stage L-1-p

    def words(self, n_cycles: int) -> np.ndarray:
        """Random words, shape (n_cycles, lines), for the next ``n_cycles`` cycles; advances."""
        cfg = self.config
        n, lines = cfg.str_bits, cfg.lines
        if n_cycles == 0:
            return np.zeros((0, lines), dtype=np.uint64)
        base = n * (cfg.lfsr_warmup_cycles + self.cycle + np.arange(n_cycles, dtype=np.int64))
        bits = self._gather(self._a, base, self._pos_a)
        if self._b is not None:
            bits ^= self._gather(self._b, base, self._pos_b)
        self.cycle += n_cycles
        weights = (np.uint64(1) << np.arange(n, dtype=np.uint64))
        return (bits.reshape(n_cycles, lines, n).astype(np.uint64) * weights).sum(
            axis=2, dtype=np.uint64
        )

    def bits(self, n_cycles: int) -> np.ndarray:
        """One pseudo-random bit per line per cycle (bit 0 of each word); advances."""
        return (self.words(n_cycles) & np.uint64(1)).astype(np.uint8)

    @staticmethod
    def _gather(seq: MSequence, base: np.ndarray, pos: np.ndarray) -> np.ndarray:
        tau = base[:, None] + pos[None, :]
        buf, off = seq.window(int(tau.min()), int(tau.max()))
        return buf[tau - off]
