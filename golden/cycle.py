"""Cycle level: the control words the RTL drives, one phase per clock (docs/cycle_interface.md).

:func:`mvm_program` is the sequencer: it yields one :class:`Control` per cycle for one input
vector. :class:`CycleCore` executes them on the array and a :class:`~.neuron.NeuronBank`,
settling the lines from the per-line driver codes, routing each neuron to its BL or SL
through the corelet map, and writing the codes into the BL or SL registers. The arithmetic
is the integer charge of :mod:`.neuron`, so with no dynamic non-ideality the codes equal
:func:`.mvm.mvm`'s exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cimflow.config import input_pulses
from cimflow.modes import Activation, AdcMode

from .array import Crossbar, Direction, corelet_map
from .mvm import MvmResult, MvmSettings, bit_planes, drive_lines
from .neuron import CHARGE_FRAC_BITS, NeuronBank, sample_units
from .nonideal import NonIdeal

__all__ = [
    "Phase", "NrnIn", "DRV_FLOAT", "DRV_LOW", "DRV_REF", "DRV_HIGH", "Control",
    "mvm_program", "CycleCore", "cycle_count", "inject_cycles", "mvm_clocks", "WORD_DELAY",
    "WRITEBACK_DELAY",
]

DRV_FLOAT, DRV_LOW, DRV_REF, DRV_HIGH = 0, 1, 2, 3
"""Per-line driver code: float, V_ref - V_read, V_ref, V_ref + V_read."""
_DRV_S = np.array([0, -1, 0, 1], dtype=np.int64)


class Phase(enum.IntEnum):
    """Neuron/array phase of one cycle; exactly one strobe is high per cycle."""

    IDLE = 0
    PRECHARGE = 1
    WL_PULSE = 2
    SAMPLE = 3
    INTEGRATE = 4
    INJECT = 5
    COMPARE_SIGN = 6
    DECREMENT = 7
    COMPARE = 8
    READOUT = 9


class NrnIn(enum.IntEnum):
    """Neuron input switch."""

    NONE = 0
    BL = 1
    SL = 2


@dataclass(frozen=True, eq=False)
class Control:
    """One cycle's control word (arrays are shared between cycles, never mutated)."""

    phase: Phase
    drv_bl: np.ndarray
    drv_sl: np.ndarray
    wl_en: np.ndarray
    nrn_in: NrnIn = NrnIn.NONE
    dac_code: int = 0
    out_bl: bool = False


def _drivers(xbar: Crossbar, st: MvmSettings, x: np.ndarray):
    """Per-pulse driver codes (bl, sl, wl_en) for one input vector."""
    cfg = xbar.config
    planes = bit_planes(x, st.in_bits)
    s, driven, _ = drive_lines(xbar, st.direction, planes)
    codes = np.where(driven, (s + 2).astype(np.uint8), DRV_FLOAT).astype(np.uint8)
    bl_float = np.zeros(cfg.rows, np.uint8)
    sl_float = np.zeros(cfg.cols, np.uint8)
    if st.direction is Direction.BACKWARD:
        return [(bl_float, c, np.ones(cfg.rows, bool)) for c in codes]
    return [(c, sl_float, driven) for c in codes]


def mvm_program(xbar: Crossbar, x: np.ndarray, st: MvmSettings) -> Iterator[Control]:
    """The sequencer: cycles of one MVM of integer input vector ``x``.

    PRECHARGE; per magnitude bit m (LSB first): WL_PULSE, 2^(m-1) x (SAMPLE, INTEGRATE)
    (each of these three held for ``t_wl`` / ``t_sample`` / ``t_integ`` clocks);
    INJECT x inject_steps, INTEGRATE (stochastic: one clock, which adds the last INJECT's
    pulse, see :meth:`CycleCore.step`); COMPARE_SIGN; binary: K x (DECREMENT m, COMPARE),
    counting: (2^K - 1) x (DECREMENT K-1, COMPARE); READOUT.
    """
    cfg = xbar.config
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"mvm_program takes one input vector, got shape {x.shape}")
    idle_bl = np.zeros(cfg.rows, np.uint8)
    idle_sl = np.zeros(cfg.cols, np.uint8)
    no_wl = np.zeros(cfg.rows, bool)
    nrn_in = NrnIn.BL if st.direction is Direction.BACKWARD else NrnIn.SL
    out_bl = st.direction is not Direction.FORWARD

    # the V_decr DAC settles for two clocks (CycleCore.step: a DECREMENT uses the code of
    # the word two before it): every word through COMPARE_SIGN carries the first
    # DECREMENT's code, each DECREMENT and the COMPARE after it the next DECREMENT's
    # (binary m + 1, the last ones K, unused; counting K - 1), READOUT the first again
    counting = st.adc_mode is AdcMode.COUNTING
    k_last = max(st.k - 1, 0)
    first = k_last if counting else 0

    def ctl(phase, **kw):
        kw.setdefault("drv_bl", idle_bl)
        kw.setdefault("drv_sl", idle_sl)
        kw.setdefault("wl_en", no_wl)
        kw.setdefault("dac_code", first)
        return Control(phase, nrn_in=nrn_in, out_bl=out_bl, **kw)

    yield ctl(Phase.PRECHARGE, drv_bl=np.full(cfg.rows, DRV_REF, np.uint8),
              drv_sl=np.full(cfg.cols, DRV_REF, np.uint8))
    for b, (bl, sl, wl) in enumerate(_drivers(xbar, st, x)):
        # a strobe held for t clocks is the same word t times: settling, sampling and
        # integrating (which empties C_sample) are idempotent, so only timing changes
        for _ in range(st.t_wl):
            yield ctl(Phase.WL_PULSE, drv_bl=bl, drv_sl=sl, wl_en=wl)
        for _ in range(1 << b):
            for _ in range(st.t_sample):
                yield ctl(Phase.SAMPLE)
            for _ in range(st.t_integ):
                yield ctl(Phase.INTEGRATE)
    if st.activation is Activation.STOCHASTIC and st.inject_steps:
        for _ in range(st.inject_steps):
            yield ctl(Phase.INJECT)
        yield ctl(Phase.INTEGRATE)  # the last pulse, waiting on C_sample
    yield ctl(Phase.COMPARE_SIGN)
    if not counting:
        for m in range(st.k):
            yield ctl(Phase.DECREMENT, dac_code=m + 1)
            yield ctl(Phase.COMPARE, dac_code=m + 1)
    else:
        for _ in range((1 << st.k) - 1 if st.k else 0):
            yield ctl(Phase.DECREMENT, dac_code=k_last)
            yield ctl(Phase.COMPARE, dac_code=k_last)
    yield ctl(Phase.READOUT)


WORD_DELAY = 1
"""Clocks between the sequencer's decision and the word on the analog interface: the RTL's
control word is a register, so the first word of an MVM (PRECHARGE) is applied
``WORD_DELAY + 1`` clocks after the cycle with ``start`` high."""


WRITEBACK_DELAY = 1
"""Clocks between the READOUT word and the clock at whose end its codes land in the line
registers: the RTL's register file registers the codes first, as it does a host write, so
they land at the end of the clock after READOUT, the clock of ``done`` (``mvm_clocks`` after
the cycle with ``start`` high). ``CycleCore`` holds them as pending until then."""


def mvm_clocks(st: MvmSettings) -> int:
    """Clocks from the cycle with ``start`` high to the cycle with ``done`` (no hold, no LFSR
    wait): the word delay, the words, and ``done`` the cycle after READOUT."""
    return WORD_DELAY + cycle_count(st) + 1


def inject_cycles(st: MvmSettings) -> int:
    """Clocks of the noise injection: T INJECT words and the INTEGRATE that adds the last
    pulse (stochastic, T = ``inject_steps`` > 0), else none."""
    t = st.inject_steps if st.activation is Activation.STOCHASTIC else 0
    return t + 1 if t else 0


def cycle_count(st: MvmSettings) -> int:
    """Cycles of one MVM: 1 + M t_wl + (t_sample + t_integ)(2^M - 1) + inject + 1 + ADC + 1,
    inject = T + 1 for a stochastic MVM with T > 0 injection steps (the INTEGRATE after the
    last INJECT), else 0."""
    m = input_pulses(st.in_bits)
    adc = 2 * (st.k if st.adc_mode is AdcMode.BINARY else (1 << st.k) - 1)
    inj = inject_cycles(st)
    return 1 + m * st.t_wl + (st.t_sample + st.t_integ) * ((1 << m) - 1) + inj + 1 + adc + 1


class CycleCore:
    """Array + neurons + registers of one core, advanced one :class:`Control` at a time."""

    def __init__(self, xbar: Crossbar, nonideal: NonIdeal | None = None,
                 offsets: np.ndarray | None = None, lfsr=None):
        ni = nonideal or NonIdeal()
        if ni.dynamic:
            raise ValueError(
                "the cycle level models static and integer non-idealities only; turn off "
                "read_noise_v, line_noise_v, ir_drop_ohm and cmp_noise_v"
            )
        cfg = xbar.config
        self.xbar, self.nonideal, self.lfsr = xbar, ni, lfsr
        self.g = xbar.codes()
        self.bl_of, self.sl_of = corelet_map(cfg)
        self.offsets = offsets
        self.bl_sign = np.zeros(cfg.rows, np.uint8)
        self.bl_mag = np.zeros(cfg.rows, np.int64)
        self.sl_sign = np.zeros(cfg.cols, np.uint8)
        self.sl_mag = np.zeros(cfg.cols, np.int64)
        self.cycles = 0
        # READOUT's codes (out_bl, sign, mag), landing WRITEBACK_DELAY clocks later
        self.pending: tuple[bool, np.ndarray, np.ndarray] | None = None
        # the V_decr DAC's codes of the last two words: a DECREMENT uses the older one (the
        # DAC settles for two clocks)
        self.dac = (0, 0)
        self.trace: list[tuple[Phase, int, np.ndarray]] | None = None
        self.configure(MvmSettings.from_config(cfg))

    def configure(self, st: MvmSettings) -> None:
        """Load the mode registers (ADC mode, K, activation, V_decr and V_inject codes)."""
        st.check_config(self.xbar.config)
        self.st = st
        n = self.xbar.config.rows
        off = self.offsets if self.offsets is not None else self.nonideal.offsets(
            n, st.v_read, np.random.default_rng(0))
        self.bank = NeuronBank(n, clip=self.nonideal.clip_units(st.v_read), offset=off)
        self.line_bl = np.zeros(self.xbar.config.rows, np.int64)
        self.line_sl = np.zeros(self.xbar.config.cols, np.int64)

    def land(self) -> None:
        """The clock after READOUT (the clock of ``done``, word IDLE) ends: the pending
        codes land in the BL or SL registers (``WRITEBACK_DELAY``)."""
        if self.pending is None:
            return
        out_bl, sign, mag = self.pending
        if out_bl:
            self.bl_sign[self.bl_of], self.bl_mag[self.bl_of] = sign, mag
        else:
            self.sl_sign[self.sl_of], self.sl_mag[self.sl_of] = sign, mag
        self.pending = None

    def step(self, c: Control) -> None:
        st, bank = self.st, self.bank
        p = c.phase
        self.land()  # a later word: the clock after READOUT is over
        if p is Phase.PRECHARGE:
            bank.precharge()
            self.line_bl[:] = 0
            self.line_sl[:] = 0
        elif p is Phase.WL_PULSE:
            self._settle(c)
        elif p is Phase.SAMPLE:
            if c.nrn_in is NrnIn.SL:
                bank.sample(self.line_sl[self.sl_of])
            elif c.nrn_in is NrnIn.BL:
                bank.sample(self.line_bl[self.bl_of])
        elif p is Phase.INTEGRATE:
            bank.integrate()
        elif p is Phase.INJECT:
            # the pulse goes onto C_sample and reaches C_integ with the next word (INJECT or
            # the INTEGRATE after the last): the RTL adds registers only, never the LFSR
            # bit; the sums and saturations are those of NeuronBank.inject, in order
            if self.lfsr is None:
                raise ValueError("INJECT needs an lfsr (stochastic activation)")
            bits = self.lfsr.bits(1)[0, :bank.n]
            bank.integrate()
            bank.q_sample = np.where(bits == 1, st.inject_units, -st.inject_units)
        elif p is Phase.COMPARE_SIGN:
            bank.compare_sign()
        elif p is Phase.DECREMENT:
            counting = st.adc_mode is AdcMode.COUNTING
            bank.decrement(st.d_units >> self.dac[0], bank.active if counting else None)
        elif p is Phase.COMPARE:
            bank.compare(st.adc_mode is AdcMode.COUNTING)
        elif p is Phase.READOUT:
            sign, mag = bank.readout(st.k, st.adc_mode is AdcMode.COUNTING, st.activation)
            self.pending = (c.out_bl, sign, mag)
        self.dac = (self.dac[1], c.dac_code)
        self.cycles += 1
        if self.trace is not None:
            self.trace.append((p, c.dac_code, bank.cmp.copy()))

    def _settle(self, c: Control) -> None:
        """Lines settle to sum V_i G / sum G over conducting cells (voltage mode)."""
        bl_drv, sl_drv = c.drv_bl != DRV_FLOAT, c.drv_sl != DRV_FLOAT
        if bl_drv.any() and sl_drv.any():
            raise ValueError("WL_PULSE with both BLs and SLs driven: one side must float")
        s_bl, s_sl = _DRV_S[c.drv_bl], _DRV_S[c.drv_sl]
        if bl_drv.any():
            act = bl_drv & c.wl_en
            g = self.g[act]
            self.line_sl = sample_units(s_bl[act] @ g, g.sum(axis=0))
            self.line_bl = s_bl << CHARGE_FRAC_BITS
        else:
            g = np.where(c.wl_en[:, None], self.g[:, sl_drv], 0)
            self.line_bl = sample_units(g @ s_sl[sl_drv], g.sum(axis=1))
            self.line_sl = s_sl << CHARGE_FRAC_BITS

    def run(self, x: np.ndarray, st: MvmSettings) -> MvmResult:
        """Run every input vector of ``x`` (..., n) through the sequencer; codes as in mvm()."""
        self.configure(st)
        x = np.asarray(x)
        flat = x.reshape(-1, x.shape[-1])
        out_bl = st.direction is not Direction.FORWARD
        signs, mags, charges = [], [], []
        for vec in flat:
            for c in mvm_program(self.xbar, vec, st):
                if c.phase is Phase.COMPARE_SIGN:
                    charges.append(self.bank.q_integ.copy())
                self.step(c)
            self.land()  # the clock of done
            signs.append((self.bl_sign if out_bl else self.sl_sign).copy())
            mags.append((self.bl_mag if out_bl else self.sl_mag).copy())
        lead = x.shape[:-1]
        sign = np.array(signs).reshape(lead + (-1,))
        mag = np.array(mags).reshape(lead + (-1,))
        # the charge of neuron n, reported on the line its code is written to
        q = np.array(charges).reshape(lead + (-1,))
        line_of = self.bl_of if out_bl else self.sl_of
        q_line = np.empty_like(q)
        q_line[..., line_of] = q
        return MvmResult(st, sign, mag, q_line)
