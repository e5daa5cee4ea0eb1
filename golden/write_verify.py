"""Incremental-pulse SET/RESET write-verify programming, vectorized over an array.

Procedure (docs/model.md#write-verify, with the board's parameters): read
each cell; while it is outside ``target +- tol``, apply a SET pulse if it is below the
target, else a RESET pulse, each pulse 0.1 V stronger than the last of its polarity, from
1.2 V (SET) or the board's target-dependent RESET start (1.2 V in range, 1.5 V above g_max,
2.5 V below g_min) up to the end voltage 4.0 V, then at most ``end_pulses`` (30) more at the
end voltage. A change of polarity is a reversal; after ``max_reversals`` (20) the cell fails.
On a reversal both amplitudes restart at their start values: that rule is ours (the paper
says only "the same procedure as with set"), so it is a parameter.

Every unfinished cell takes one step per loop iteration (one pulse, one read), so the cost
is one NumPy pass per pulse *round*, not per cell. ``program_rounds`` adds the paper's
iterative programming: after relaxation, cells outside the acceptance range are
re-programmed, three rounds in all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .device import ParameterError, check_range

__all__ = [
    "WriteVerifyParams", "PulseDevice", "ProgramReport", "RoundsReport",
    "PASS", "FAIL_REVERSALS", "FAIL_CAP", "write_verify", "program_rounds",
]

ACTIVE, PASS, FAIL_REVERSALS, FAIL_CAP = 0, 1, 2, 3
"""Per-cell outcome codes in ``ProgramReport.status``."""


class PulseDevice(Protocol):
    """What write-verify needs from a device model (golden.device.RramArray is one)."""

    def pulse(self, g: np.ndarray, idx: np.ndarray, volts: np.ndarray,
              polarity: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class WriteVerifyParams:
    """Write-verify settings; defaults are the NeuRRAM board's (conductance in uS, V)."""

    g_min: float = 1.0
    g_max: float = 40.0
    tol: float = 1.0
    """Acceptance half-width: a cell passes when |G - target| <= tol."""
    set_start: float = 1.2
    set_step: float = 0.1
    reset_start: float = 1.2
    """RESET start for targets in [g_min, g_max] (the board; the paper states 1.5 V)."""
    reset_start_above: float = 1.5
    """RESET start for targets above g_max."""
    reset_start_below: float = 2.5
    """RESET start for targets below g_min."""
    reset_step: float = 0.1
    v_end: float = 4.0
    """Last amplitude of a ramp; pulses then repeat at this voltage."""
    end_pulses: int = 30
    """At most this many pulses at v_end per ramp (board ``max_pulse_limit``)."""
    max_reversals: int = 20
    """SET/RESET polarity reversals allowed (board ``iteration_limit``; the paper says 30)."""
    restart_on_reversal: bool = True
    """Ours: restart both amplitudes at their start values on a reversal."""

    def __post_init__(self) -> None:
        o = "WriteVerifyParams"
        check_range(o, "g_min", self.g_min, 0.0, 1e3)
        check_range(o, "g_max", self.g_max, self.g_min, 1e3)
        check_range(o, "tol", self.tol, 1e-6, 1e3)
        check_range(o, "v_end", self.v_end, 0.01, 20.0)
        for name in ("set_start", "reset_start", "reset_start_above", "reset_start_below"):
            check_range(o, name, getattr(self, name), 0.0, self.v_end)
        check_range(o, "set_step", self.set_step, 1e-4, 10.0)
        check_range(o, "reset_step", self.reset_step, 1e-4, 10.0)
        for name, hi in (("end_pulses", 100_000), ("max_reversals", 100_000)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ParameterError(f"{o}.{name} must be an integer, got {v!r}")
            check_range(o, name, v, 0, hi)
        if not isinstance(self.restart_on_reversal, bool):
            raise ParameterError(f"{o}.restart_on_reversal must be a bool, "
                                 f"got {self.restart_on_reversal!r}")

    def reset_starts(self, target: np.ndarray) -> np.ndarray:
        """The board's target-dependent RESET start voltage, per cell."""
        return np.where(target > self.g_max, self.reset_start_above,
                        np.where(target < self.g_min, self.reset_start_below,
                                 self.reset_start))

    def max_steps(self) -> int:
        """Upper bound on loop iterations: every ramp ends, and ramps are counted."""
        lo = min(self.set_start, self.reset_start, self.reset_start_above,
                 self.reset_start_below)
        ramp = math.ceil((self.v_end - lo) / min(self.set_step, self.reset_step)) + 1
        return (self.max_reversals + 2) * 2 * (ramp + self.end_pulses) + 2


@dataclass
class ProgramReport:
    """Outcome of one write-verify pass (arrays are flat, one entry per cell)."""

    target: np.ndarray
    g: np.ndarray
    """Conductance right after programming (before relaxation)."""
    pulses: np.ndarray
    reversals: np.ndarray
    status: np.ndarray
    """PASS, FAIL_REVERSALS or FAIL_CAP per cell."""
    programmed: np.ndarray
    """Mask of the cells this pass was asked to program."""

    @property
    def pass_fraction(self) -> float:
        return float(np.mean(self.status[self.programmed] == PASS))

    @property
    def mean_pulses(self) -> float:
        return float(np.mean(self.pulses[self.programmed]))

    @property
    def final_error(self) -> np.ndarray:
        return self.g - self.target

    def summary(self) -> dict:
        m = self.programmed
        err = np.abs(self.final_error[m])
        return {
            "cells": int(m.sum()),
            "mean_pulses": self.mean_pulses,
            "median_pulses": float(np.median(self.pulses[m])),
            "p99_pulses": float(np.percentile(self.pulses[m], 99)),
            "max_pulses": int(self.pulses[m].max(initial=0)),
            "pass_fraction": self.pass_fraction,
            "fail_reversals": int(np.sum(self.status[m] == FAIL_REVERSALS)),
            "fail_end_cap": int(np.sum(self.status[m] == FAIL_CAP)),
            "mean_reversals": float(np.mean(self.reversals[m])),
            "max_reversals": int(self.reversals[m].max(initial=0)),
            "mean_abs_error_uS": float(err.mean()) if err.size else 0.0,
        }


def _ramp_volts(start: np.ndarray, step: float, n: np.ndarray, v_end: float) -> np.ndarray:
    # Rounded so that 1.2 + 3 * 0.1 is exactly the 1.5 a person would write.
    return np.minimum(np.round(start + n * step, 9), v_end)


def write_verify(g0: np.ndarray, target: np.ndarray, device: PulseDevice,
                 params: WriteVerifyParams | None = None,
                 rng: np.random.Generator | None = None,
                 cells: np.ndarray | None = None) -> ProgramReport:
    """Program cells (flat mask ``cells``, default all) from ``g0`` towards ``target``.

    ``g0``/``target`` are conductances in uS of any shape (flattened inside); ``device`` is
    indexed by the same flat order. Cells outside ``cells`` keep ``g0`` and no pulses.
    """
    p = params or WriteVerifyParams()
    rng = rng if rng is not None else np.random.default_rng()
    g = np.asarray(g0, dtype=float).ravel().copy()
    t = np.asarray(target, dtype=float).ravel()
    if g.shape != t.shape:
        raise ParameterError(f"g0 has {g.size} cells but target has {t.size}")
    todo = np.ones(g.size, bool) if cells is None else np.asarray(cells, bool).ravel()
    n = g.size
    status = np.full(n, PASS, np.int8)
    status[todo & (np.abs(g - t) > p.tol)] = ACTIVE
    mode = np.zeros(n, np.int8)  # last polarity: +1 SET, -1 RESET, 0 none yet
    n_set = np.zeros(n, np.int32)  # pulses in the current SET ramp
    n_rst = np.zeros(n, np.int32)
    end_set = np.zeros(n, np.int32)  # pulses at v_end in the current SET ramp
    end_rst = np.zeros(n, np.int32)
    rev = np.zeros(n, np.int32)
    pulses = np.zeros(n, np.int32)
    rst_start = p.reset_starts(t)
    set_start = np.full(n, p.set_start)

    for _ in range(p.max_steps()):
        idx = np.flatnonzero(status == ACTIVE)
        if idx.size == 0:
            break
        want = np.where(g[idx] < t[idx], 1, -1).astype(np.int8)
        flip = (mode[idx] != 0) & (want != mode[idx])
        rev[idx] += flip
        status[idx[rev[idx] > p.max_reversals]] = FAIL_REVERSALS
        if p.restart_on_reversal:
            fi = idx[flip]
            n_set[fi] = n_rst[fi] = end_set[fi] = end_rst[fi] = 0
        is_set = want > 0
        nn = np.where(is_set, n_set[idx], n_rst[idx])
        start = np.where(is_set, set_start[idx], rst_start[idx])
        volts = _ramp_volts(start, np.where(is_set, p.set_step, p.reset_step), nn, p.v_end)
        at_end = volts >= p.v_end
        n_end = np.where(is_set, end_set[idx], end_rst[idx])
        capped = at_end & (n_end >= p.end_pulses) & (status[idx] == ACTIVE)
        status[idx[capped]] = FAIL_CAP
        go = status[idx] == ACTIVE
        idx, want, volts, is_set, at_end = idx[go], want[go], volts[go], is_set[go], at_end[go]
        if idx.size == 0:
            continue
        g[idx] = device.pulse(g, idx, volts, want, rng)
        pulses[idx] += 1
        mode[idx] = want
        n_set[idx[is_set]] += 1
        n_rst[idx[~is_set]] += 1
        end_set[idx[is_set & at_end]] += 1
        end_rst[idx[~is_set & at_end]] += 1
        status[idx[np.abs(g[idx] - t[idx]) <= p.tol]] = PASS
    else:  # pragma: no cover - max_steps bounds every ramp, so this cannot happen
        raise RuntimeError("write_verify exceeded its step bound")
    return ProgramReport(target=t, g=g, pulses=pulses, reversals=rev, status=status,
                         programmed=todo)


@dataclass
class RoundsReport:
    """Iterative programming: one ProgramReport and one relaxed state per round."""

    rounds: list[ProgramReport] = field(default_factory=list)
    relaxed: list[np.ndarray] = field(default_factory=list)
    """Conductance after the relaxation that follows each round."""
    times_programmed: np.ndarray | None = None
    """How many rounds programmed each cell."""

    @property
    def total_pulses(self) -> np.ndarray:
        return np.sum([r.pulses for r in self.rounds], axis=0)


Relax = Callable[[np.ndarray, np.ndarray, np.random.Generator, np.ndarray], np.ndarray]
"""relax(g, cells_mask, rng, times_programmed) -> g after relaxation of the masked cells."""


def program_rounds(g0: np.ndarray, target: np.ndarray, device: PulseDevice, relax: Relax,
                   params: WriteVerifyParams | None = None, rounds: int = 3,
                   rng: np.random.Generator | None = None) -> RoundsReport:
    """The paper's iterative programming: write-verify, let the cells relax, then sweep the
    array and re-program (from the relaxed state) every cell outside ``target +- tol``.

    Only the cells programmed in a round relax after it; cells left alone already relaxed
    (most relaxation happens within a second, docs/model.md#relaxation).
    """
    p = params or WriteVerifyParams()
    check_range("program_rounds", "rounds", rounds, 1, 100)
    rng = rng if rng is not None else np.random.default_rng()
    t = np.asarray(target, dtype=float).ravel()
    g = np.asarray(g0, dtype=float).ravel().copy()
    times = np.zeros(g.size, np.int32)
    out = RoundsReport()
    cells = np.ones(g.size, bool)
    for _ in range(rounds):
        rep = write_verify(g, t, device, p, rng, cells=cells)
        times += cells
        out.rounds.append(rep)
        g = relax(rep.g, cells, rng, times)
        out.relaxed.append(g.copy())
        cells = np.abs(g - t) > p.tol
    out.times_programmed = times
    return out
