"""MVM engine: neuron sequencer, line-driver control and the digital half of every neuron.

Implements ``docs/cycle_interface.md``: from ``start`` it emits one control word per clock,
exactly the sequence of the golden ``mvm_program`` for the mode inputs and line registers

    PRECHARGE; per magnitude bit m = 1..M (LSB first): WL_PULSE, 2^(m-1) x (SAMPLE,
    INTEGRATE); INJECT x T, INTEGRATE (stochastic); COMPARE_SIGN; binary: K x (DECREMENT m,
    COMPARE m), counting: (2^K - 1) x (DECREMENT K-1, COMPARE K-1); READOUT

and keeps each neuron's sign latch, magnitude shift register / counter and ``active`` flag,
so the analog macro only has to return one comparator bit per neuron.

Timing (pinned in docs/core_architecture.md):

* The control word is a register (the word register): the sequencer decides the word of the
  next clock, so the analog side sees no logic between the engine's state and its inputs
  and an MVM's first word comes ``WORD_DELAY`` = 1 clock later than the sequencer state
  (golden ``cycle.WORD_DELAY``, ``cycle.mvm_clocks``).
* ``cmp`` is sampled at the clock edge that ends a COMPARE_SIGN or COMPARE cycle: the macro
  presents the result of that cycle's comparison during the same cycle (as the golden
  ``CycleCore.step`` followed by ``bank.cmp`` does). In other cycles ``cmp`` is ignored.
* ``hold`` (or the controller's ``clk_gate``) high in a clock is a stall: the word of the
  next clock is the no-op IDLE word (phase 0, every driver 0, every ``wl_en`` 0, ``nrn_in``
  0, no ``lfsr_en``/``wb_en``) and the sequencer does not advance at the edge, so the
  sequence of non-IDLE words is unchanged. The word of the clock with ``hold`` high is
  executed: the macro asks for the stall while it executes a WL_PULSE.
* ``start`` is accepted in the idle state only (also while ``hold`` is high); ``start`` while
  ``busy`` is ignored (the controller flags it). ``busy`` is high from the cycle after the
  accepted ``start`` through READOUT; ``done`` pulses for one cycle right after READOUT.
* The V_decr DAC settles for two clocks: every word through COMPARE_SIGN carries the DAC
  code of the first DECREMENT (binary 0, counting K-1), each DECREMENT and the COMPARE
  after it the next DECREMENT's (binary: the next bit; counting: K-1), READOUT the first
  again; the macro's step is the code of the word before the previous (a register).
* Reset (the core holds the engine in reset while power gated) clears the sequencer, its
  counters and the word register's phase and strobes. The registers of every line and
  neuron (the driver and word-line words, the phase-flag, bit-select and readout-mode
  copies, the ``in_len`` compares, the neurons' sign, magnitude and ``active``) are
  reset-less: each MVM sets them from PRECHARGE on, and the engine is idle whenever the
  reset comes (POWER is refused while busy), so no reset net reaches every line and neuron.
* A stochastic MVM (``act`` STOCHASTIC, ``inject_steps`` > 0) started while ``lfsr_ready`` is low
  waits in a busy IDLE-word state until it rises, then runs: the LFSR never advances before
  its warm-up is over, and the word sequence is unchanged, only delayed.

Mode inputs (the ``mode`` port, ``MvmModeSignature`` of hdl/interfaces.py) must stay
constant during an MVM (the controller's registers); the limits the sequencer derives from
them (a strobe width of one clock and its width - 2, the last bit, ADC pair and INJECT
step, each line's ``in_len`` compare) are registered, and so is the stochastic decision
(``act`` and ``inject_steps``) that ``start`` reads: a mode must be set at least a clock
before ``start`` (the controller's commands guarantee it). ``mode.neuron_test`` keeps
every ``wl_en`` at 0 (the neurons see the drivers directly); ``mode.clk_gate`` holds the
engine exactly like ``analog.hold``.
``in_m`` 0 behaves as 1; ``out_k`` above 9 behaves as 9 in the sequencer; magnitudes are
``W - 1`` bits wide, so ``out_k`` must not exceed ``W - 1``. ``direction`` 3 behaves as
recurrent.

Line registers are sign-magnitude with the neurons' convention: sign bit W-1 is 1 for
positive, magnitude right-aligned. The driver of line r in the pulse of magnitude bit m
(LSB first, m = 0..M-1 here) takes s = bit m of the magnitude, negated when the sign bit is
0: code 3 / 1 / 2 for s = +1 / -1 / 0. An ``in_bits`` = 1 input x = 1 is therefore written as
sign 1, magnitude 1; with W = 1 the single bit is both sign and magnitude bit 0 (s in {0, 1}).
A 1-bit register cannot hold -1, so forward and recurrent MVMs (+x on BL 2r, -x on
BL 2r+1) need W >= 2; ``in_m`` = 1 serves both 1-bit and 2-bit inputs.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig
from cimflow.modes import Activation, AdcMode, Direction

from .interfaces import (
    LINE_GROUP_BITS,
    NEURON_GROUP,
    AnalogSignature,
    ConfiguredComponent,
    MvmModeSignature,
    NeuronFlag,
    NeuronInput,
    Phase,
    corelet_sl_line,
    group_copy,
    lines,
)

__all__ = ["Phase", "MvmEngine", "MAX_K", "MAX_M"]

MAX_K = 9
"""Largest ADC magnitude width the sequencer counts for (10-bit outputs)."""
MAX_M = 7
"""Largest number of input magnitude bits (8-bit inputs)."""


_GROUP = 1 << LINE_GROUP_BITS
"""Lines (and neurons) per copy of the registered bit select, phase flags and readout mode."""


class MvmEngine(ConfiguredComponent):
    """Sequencer + WL/BL/SL driver control + digital neurons of one core (see module doc).

    ``nrn_flags``: the control word also carries the neuron phase flags (``nrn_flags`` of
    ``AnalogSignature``), one register per flag and group of `NEURON_GROUP` neurons, for
    the behavioural macro's neurons; without it (the default) they are not built."""

    def __init__(self, config: CoreConfig, *, nrn_flags: bool = False):
        cfg = self._take_config(config)
        w = cfg.line_bits
        super().__init__({
            # mode registers, neuron test, clock gate, start / done (from the controller)
            "mode": In(MvmModeSignature()),
            # the control word out, cmp and hold back (to the array and neurons); with
            # ``nrn_flags`` also the neuron phase flags, for the behavioural macro
            "analog": Out(AnalogSignature(cfg.rows, cfg.cols, nrn_flags=nrn_flags)),
            # data
            "bl_values": In(cfg.rows * w),
            "sl_values": In(cfg.cols * w),
            "lfsr_ready": In(1),
            "lfsr_en": Out(1),
            # results
            "wb_en": Out(1),
            "wb_bank": Out(1),
            "wb_data": Out(cfg.rows * w),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        w = cfg.line_bits
        km = max(w - 1, 1)  # magnitude register width of a neuron
        n_nrn = cfg.rows
        mode, ana = self.mode, self.analog

        # ---------------------------------------------------------------- mode decode
        bwd = Signal()
        stochastic = Signal()
        counting = Signal()
        k_eff = Signal(4)
        hold = Signal()  # stall: the macro's hold, or the controller's clock gate
        m.d.comb += [
            bwd.eq(mode.direction == Direction.BACKWARD),
            counting.eq(mode.adc_mode == AdcMode.COUNTING),
            k_eff.eq(Mux(mode.out_k > MAX_K, MAX_K, mode.out_k)),
            hold.eq(ana.hold | mode.clk_gate),
        ]
        # Limits derived from the mode, registered: the sequencer compares against them
        # from WL_PULSE on, two edges after ``start`` at the earliest, and the mode changes
        # only while idle and at least a clock before ``start`` (the controller takes one
        # command per clock and ``start`` is a register), so the registers are current when
        # read. The subtractions and clamps are then off the sequencer's transitions (and
        # off the per-group phase flags that load its next phase). ``stochastic`` is read
        # in the clock of ``start`` (wait for the LFSR or not): it relies on the mode being
        # set at least a clock before ``start``.
        last_b = Signal(3)  # the last input magnitude bit
        adc_last = Signal(MAX_K)  # the last DECREMENT/COMPARE pair
        k_zero = Signal()  # K = 0: no ADC pairs
        k_last = Signal(4)  # the DAC code of a counting DECREMENT
        inj_last = Signal(16)
        # the pulse generator's strobes: a width of one clock, and the clock before the
        # last of a wider one (``width - 2``)
        t_wl_one, t_sample_one, t_integ_one = Signal(), Signal(), Signal()
        t_wl_pen = Signal(4)
        t_sample_pen = Signal(4)
        t_integ_pen = Signal(8)
        m.d.sync += [
            last_b.eq(Mux(mode.in_m == 0, 0, mode.in_m - 1)),
            adc_last.eq(Mux(
                counting,
                Array(C(max((1 << k) - 2, 0), MAX_K) for k in range(MAX_K + 1))[k_eff],
                k_eff - 1)),
            k_zero.eq(k_eff == 0),
            k_last.eq(Mux(k_eff == 0, 0, k_eff - 1)),
            inj_last.eq(mode.inject_steps - 1),
            stochastic.eq((mode.act == Activation.STOCHASTIC) & (mode.inject_steps != 0)),
        ]
        for one, pen, width in ((t_wl_one, t_wl_pen, mode.t_wl),
                                (t_sample_one, t_sample_pen, mode.t_sample),
                                (t_integ_one, t_integ_pen, mode.t_integ)):
            m.d.sync += [one.eq(width <= 1), pen.eq(Mux(width <= 1, 0, width - 2))]

        # ---------------------------------------------------------------- sequencer
        ph = Signal(Phase)  # phase of this cycle (IDLE while held or idle)
        run = ~hold
        b = Signal(3)  # current input magnitude bit
        rep = Signal(MAX_M)  # SAMPLE/INTEGRATE repetition within a bit
        inj = Signal(16)
        adc = Signal(MAX_K)  # DECREMENT/COMPARE pair index
        # ``rep`` is at the bit's last repetition (2^b - 1), a register: loaded at the edge
        # that sets ``rep`` to 0 (b = 0: one repetition) and at each step of ``rep``, with
        # the compare of the step's old value; no compare in front of the transitions
        rep_end = Signal()
        reps_pen = Array(C(max((1 << i) - 2, 0), MAX_M) for i in range(8))[b]
        busy = Signal()
        b_zero = Signal()  # the edge that sets b to 0 (PRECHARGE)
        b_step = Signal()  # the edge that steps b to the next magnitude bit
        word_ph = Signal(Phase)  # phase of the word register (see "word register" below)
        # the sequencer's phase after the next edge: ``ph`` unless a transition (``goto``)
        # names another state; the per-group phase flags below load it
        ph_next = Signal(Phase)
        m.d.comb += ph_next.eq(ph)

        # the pulse generator: a WL/SAMPLE/INTEGRATE strobe stays on for its width in
        # clocks; the state's transition (the body) happens in its last clock only.
        # ``strobe_end`` (this is the strobe's last clock) is a register: loaded with the
        # new strobe's width of one clock when a transition enters a strobe state, and
        # with ``strobe == width - 2`` at each count, so the transitions (and the phase
        # flags that load the next phase) start at a flip-flop, not at a width compare
        strobe = Signal(8)
        strobe_end = Signal()
        one = {"WL_PULSE": t_wl_one, "SAMPLE": t_sample_one, "INTEGRATE": t_integ_one}
        # the states whose word is not the phase of their name; INJECT_END is the one
        # INTEGRATE word (one clock, not t_integ) after the last INJECT: each INJECT adds
        # the previous one's pulse, and this word adds the last (docs/cycle_interface.md)
        state_phase = {"IDLE": Phase.IDLE, "WAIT_LFSR": Phase.IDLE,
                       "INJECT_END": Phase.INTEGRATE}

        def goto(state):
            m.next = state
            m.d.comb += ph_next.eq(state_phase[state] if state in state_phase
                                   else Phase[state])
            if state in one:
                m.d.sync += strobe_end.eq(one[state])

        @contextmanager
        def held(pen):
            with m.If(~strobe_end):
                m.d.sync += [strobe.eq(strobe + 1), strobe_end.eq(strobe == pen)]
            with m.Else():
                m.d.sync += strobe.eq(0)
                yield

        with m.FSM(name="mvm_fsm") as fsm:
            with m.State("IDLE"):
                with m.If(mode.start & (word_ph == Phase.IDLE)):
                    with m.If(stochastic & ~self.lfsr_ready):
                        goto("WAIT_LFSR")
                    with m.Else():
                        goto("PRECHARGE")
            with m.State("WAIT_LFSR"):
                m.d.comb += busy.eq(1)
                with m.If(run & self.lfsr_ready):
                    goto("PRECHARGE")
            with m.State("PRECHARGE"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.PRECHARGE)
                with m.If(run):
                    m.d.sync += b.eq(0)
                    m.d.comb += b_zero.eq(1)
                    goto("WL_PULSE")
            with m.State("WL_PULSE"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.WL_PULSE)
                with m.If(run):
                    with held(t_wl_pen):
                        m.d.sync += [rep.eq(0), rep_end.eq(b == 0)]
                        goto("SAMPLE")
            with m.State("SAMPLE"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.SAMPLE)
                with m.If(run):
                    with held(t_sample_pen):
                        goto("INTEGRATE")
            with m.State("INTEGRATE"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.INTEGRATE)
                with m.If(run), held(t_integ_pen):
                    m.d.sync += [rep.eq(rep + 1), rep_end.eq(rep == reps_pen)]
                    with m.If(~rep_end):
                        goto("SAMPLE")
                    with m.Elif(b != last_b):
                        m.d.sync += b.eq(b + 1)
                        m.d.comb += b_step.eq(1)
                        goto("WL_PULSE")
                    with m.Elif(stochastic):
                        m.d.sync += inj.eq(0)
                        goto("INJECT")
                    with m.Else():
                        goto("COMPARE_SIGN")
            with m.State("INJECT"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.INJECT)
                with m.If(run):
                    m.d.sync += inj.eq(inj + 1)
                    with m.If(inj == inj_last):
                        goto("INJECT_END")
            with m.State("INJECT_END"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.INTEGRATE)
                with m.If(run):
                    goto("COMPARE_SIGN")
            with m.State("COMPARE_SIGN"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.COMPARE_SIGN)
                with m.If(run):
                    m.d.sync += adc.eq(0)
                    with m.If(k_zero):
                        goto("READOUT")
                    with m.Else():
                        goto("DECREMENT")
            with m.State("DECREMENT"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.DECREMENT)
                with m.If(run):
                    goto("COMPARE")
            with m.State("COMPARE"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.COMPARE)
                with m.If(run):
                    m.d.sync += adc.eq(adc + 1)
                    with m.If(adc == adc_last):
                        goto("READOUT")
                    with m.Else():
                        goto("DECREMENT")
            with m.State("READOUT"):
                m.d.comb += busy.eq(1)
                m.d.comb += ph.eq(Phase.READOUT)
                with m.If(run):
                    goto("IDLE")

        # ``ph_next == WL_PULSE`` written out per transition (enter from PRECHARGE or from
        # a bit's last INTEGRATE, stay while the strobe runs or the engine is held), for the
        # WL_PULSE flag copies of the drivers and word lines: a few gates of registers, not
        # the priority of every state's transitions behind ``hold`` (``hold`` -> the next
        # phase -> a ``bl_pulse{g}`` / ``sl_pulse{g}`` copy limited core medium, docs/fpga.md)
        wl_next = Signal()
        m.d.comb += wl_next.eq(
            (run & (fsm.ongoing("PRECHARGE")
                    | (fsm.ongoing("INTEGRATE") & strobe_end & rep_end & (b != last_b))))
            | (fsm.ongoing("WL_PULSE") & ~(run & strobe_end)))
        ph_next_wl = Mux(wl_next, Phase.WL_PULSE, Phase.IDLE)  # equals ph_next for WL_PULSE

        # ---------------------------------------------------------------- next word
        # ``ph`` and the fields below are the word the sequencer emits for its state; the
        # word register loads it at every edge without hold, so the analog side sees a
        # register (no path from the sequencer's decode or from ``hold`` back into it)
        active_word = ph != Phase.IDLE
        out_bl = mode.direction != Direction.FORWARD  # backward and recurrent: BL registers
        # the V_decr DAC settles for two clocks: the words through COMPARE_SIGN (and
        # READOUT) carry the first DECREMENT's code, each DECREMENT and the COMPARE after it
        # the next one's (docs/cycle_interface.md); an idle sequencer sends 0
        dac_next = Signal(4)
        with m.Switch(ph):
            with m.Case(Phase.IDLE):
                pass
            with m.Case(Phase.DECREMENT, Phase.COMPARE):
                m.d.comb += dac_next.eq(Mux(counting, k_last, adc + 1))
            with m.Default():
                m.d.comb += dac_next.eq(Mux(counting, k_last, 0))
        nrn_next = Mux(active_word, Mux(bwd, NeuronInput.BL, NeuronInput.SL), NeuronInput.NONE)

        # ---------------------------------------------------------------- phase flags
        # the word register's next phase: a stall loads the IDLE word
        word_ph_next = Signal(Phase)
        m.d.comb += word_ph_next.eq(Mux(hold, Phase.IDLE, ph))

        def phase_flag(name, phase, gate, own, nxt=ph_next, now=ph):
            """``(now == phase) & gate`` as a register per group (``group_copy``).

            ``nxt`` is ``now`` after the next edge: the sequencer's phase (``ph_next``,
            ``ph``) for the drivers of the next word, the word's (``word_ph_next``,
            ``ex``) for the neurons. The copy loads at every edge that enters or leaves
            ``phase`` (a phase or a tuple of phases); ``gate`` is a mode decode (constant
            during an MVM), so the flag is the decode of this clock without a decoder in
            front of the lines.
            """
            phases = phase if isinstance(phase, tuple) else (phase,)
            at_nxt = Cat(*(nxt == p for p in phases)).any()
            at_now = Cat(*(now == p for p in phases)).any()
            return group_copy(m, name, at_nxt & gate, at_nxt | at_now, own, reset_less=True)

        # ---------------------------------------------------------------- line drivers
        # ``in_len > r`` per line, registered in two stages: per group of _GROUP lines the
        # length past the group's first line (clamped to 0.._GROUP), then per line the
        # compare with that. Read from WL_PULSE on (the drivers, word lines, bit select),
        # two edges after ``start`` at the earliest, so a mode set in the clock of
        # ``start`` is current; no mode register's net then reaches every line's driver
        n_lines = max(cfg.rows, cfg.cols)
        in_range = [Signal(name=f"in_range{r}", reset_less=True) for r in range(n_lines)]
        for first in range(0, n_lines, _GROUP):
            rest = Signal(range(_GROUP + 1), name=f"len_rest{first // _GROUP}",
                          reset_less=True)
            m.d.sync += rest.eq(Mux(mode.in_len >= first + _GROUP, _GROUP,
                                    Mux(mode.in_len > first, mode.in_len - first, 0)))
            for r in range(first, min(first + _GROUP, n_lines)):
                m.d.sync += in_range[r].eq(rest > r - first)

        n_sel = min(km, MAX_M)

        def bit_select(first, enable, side):
            """The one-hot select of magnitude bit ``b`` (``1 << b``) for lines ``first`` on.

            A register stepped at the edges that step ``b``, one per _GROUP lines and
            bank, so no single net from ``b``'s decode reaches every line's driver (nextpnr
            does not replicate drivers). A copy steps only while its bank drives and its
            first line is in range (its lines drive nothing otherwise); that gives every
            copy its own clock enable, so synthesis keeps them apart. PRECHARGE resets all.
            """
            sel = Signal(n_sel, init=1, name=f"{side}_bitsel{first // _GROUP}",
                         reset_less=True)
            with m.If(b_zero):
                m.d.sync += sel.eq(1)
            with m.Elif(b_step & enable & in_range[first]):
                m.d.sync += sel.eq(sel << 1)
            return sel

        def drivers(values, count, side, bank_on):
            """Per-line driver codes of one bank; the bus is split into lines once.

            The bit select and the phase flags (PRECHARGE; WL_PULSE while this bank
            drives) are one copy per _GROUP lines, with the group's own condition as for
            the bit select: its bank drives and its first line is in range.
            """
            regs = lines(m, values, count, w, f"{side}_regs")
            codes = []
            for r in range(count):
                if r % _GROUP == 0:
                    g, own = r // _GROUP, bank_on & in_range[r]
                    sel = bit_select(r, bank_on, side)
                    pre = phase_flag(f"{side}_pre{g}", Phase.PRECHARGE, 1, own)
                    drive = phase_flag(f"{side}_pulse{g}", Phase.WL_PULSE, bank_on, own,
                                       nxt=ph_next_wl)
                v = regs[r]
                mag = v[:w - 1] if w > 1 else v
                mb = Signal(name=f"{side}_bit{r}")
                m.d.comb += mb.eq((mag[:len(sel)] & sel[:len(mag)]).any())
                en = drive & in_range[r]
                # code 2 + s: bit 0 = driven & |s|, bit 1 = precharge | driven & (s >= 0)
                codes.append(Cat(en & mb, pre | (en & (~mb | v[w - 1]))))
            return Cat(*codes)

        # ---------------------------------------------------------------- word register
        word_drv_bl = Signal.like(ana.drv_bl, reset_less=True)
        word_drv_sl = Signal.like(ana.drv_sl, reset_less=True)
        word_wl = Signal.like(ana.wl_en, reset_less=True)
        word_nrn = Signal(NeuronInput)
        word_out_bl = Signal()
        word_dac = Signal(4)
        word_inj = Signal()  # the word is INJECT: the LFSR advances (a register, no decode)
        # a stall (``hold`` or the clock gate) loads the IDLE word and freezes the sequencer,
        # so the word it would have sent comes one clock later, unchanged
        # word lines: WL_PULSE on every row (backward) or on the rows in range; neuron test
        # mode keeps every WL at ground, the neurons see the drivers
        wl = []
        for r in range(cfg.rows):
            if r % _GROUP == 0:
                g = r // _GROUP
                wl_all = phase_flag(f"wl_all{g}", Phase.WL_PULSE, bwd & ~mode.neuron_test,
                                    in_range[r], nxt=ph_next_wl)
                wl_in = phase_flag(f"wl_in{g}", Phase.WL_PULSE, ~bwd & ~mode.neuron_test,
                                   in_range[r], nxt=ph_next_wl)
            wl.append(wl_all | (wl_in & in_range[r]))
        m.d.sync += [
            word_ph.eq(word_ph_next),
            word_drv_bl.eq(Mux(hold, 0, drivers(self.bl_values, cfg.rows, "bl", ~bwd))),
            word_drv_sl.eq(Mux(hold, 0, drivers(self.sl_values, cfg.cols, "sl", bwd))),
            word_wl.eq(Mux(hold, 0, Cat(*wl))),
            word_nrn.eq(Mux(hold, NeuronInput.NONE, nrn_next)),
            word_out_bl.eq(~hold & active_word & out_bl),
            word_dac.eq(Mux(hold, 0, dac_next)),
            word_inj.eq(~hold & (ph == Phase.INJECT)),
        ]
        ex = word_ph  # the word the analog side executes in this clock
        m.d.comb += [
            ana.phase.eq(word_ph),
            ana.drv_bl.eq(word_drv_bl),
            ana.drv_sl.eq(word_drv_sl),
            ana.wl_en.eq(word_wl),
            ana.nrn_in.eq(word_nrn),
            ana.out_bl.eq(word_out_bl),
            ana.dac_code.eq(word_dac),
            self.busy.eq(busy | (word_ph != Phase.IDLE)),
            self.lfsr_en.eq(word_inj),
            self.wb_en.eq(ex == Phase.READOUT),
            self.wb_bank.eq(out_bl),
        ]
        m.d.sync += mode.done.eq(ex == Phase.READOUT)

        # ---------------------------------------------------------------- digital neurons
        cmp = lines(m, ana.cmp, n_nrn, 1, "cmp_bits")
        sign = [Signal(name=f"sign{n}", reset_less=True) for n in range(n_nrn)]
        mag = [Signal(km, name=f"mag{n}", reset_less=True) for n in range(n_nrn)]
        active = [Signal(init=1, name=f"active{n}", reset_less=True) for n in range(n_nrn)]

        # the phase decode of the executed word, one copy per _GROUP neurons (its own
        # condition: the group's first neuron is active)
        at_pre = []
        for first in range(0, n_nrn, _GROUP):
            g, own = first // _GROUP, active[first]
            flags = [phase_flag(f"nrn_{name}{g}", phase, gate, own, word_ph_next, ex)
                     for name, phase, gate in (("pre", Phase.PRECHARGE, 1),
                                               ("sign", Phase.COMPARE_SIGN, 1),
                                               ("count", Phase.COMPARE, counting),
                                               ("shift", Phase.COMPARE, ~counting))]
            at_pre.append(flags[0])
            group = range(first, min(first + _GROUP, n_nrn))
            with m.If(flags[0]):
                for n in group:
                    m.d.sync += [sign[n].eq(0), mag[n].eq(0), active[n].eq(1)]
            with m.Elif(flags[1]):
                for n in group:
                    m.d.sync += sign[n].eq(cmp[n])
            with m.Elif(flags[2]):
                for n in group:
                    same = active[n] & (cmp[n] == sign[n])
                    m.d.sync += [mag[n].eq(mag[n] + same), active[n].eq(same)]
            with m.Elif(flags[3]):
                for n in group:
                    m.d.sync += mag[n].eq(Cat(cmp[n], mag[n][:km - 1]))
        # a DECREMENT moves every neuron (binary) or the active ones (counting): the mode
        # decode as one copy per NEURON_GROUP neurons (``group_copy``), loaded at the edge
        # into PRECHARGE and while the group's last neuron is active (the mode is constant
        # from ``start`` through READOUT), so no one net from ``counting`` reaches every
        # neuron's integrator enable
        pre_next = word_ph_next == Phase.PRECHARGE
        count_copy = [group_copy(m, f"ana_counting{first // NEURON_GROUP}", counting,
                                 pre_next, active[min(first + NEURON_GROUP, n_nrn) - 1],
                                 reset_less=True)
                      for first in range(0, n_nrn, NEURON_GROUP)]
        m.d.comb += ana.dec_en.eq(Cat(active[n] | ~count_copy[n // NEURON_GROUP]
                                      for n in range(n_nrn)))

        def neuron_flags():
            """The analog side's neuron phase flags (``nrn_flags``), one copy per group.

            The executed word's phase decoded for the neurons, one register per flag and
            NEURON_GROUP neurons, so that neither the word's phase register nor a decoder
            sits in front of the macro's sample and integrator loads. Each copy has D logic
            of its own, so that nextpnr can place it by its group's loads: a first stage
            per group and flag (``phase_flag`` on the sequencer's ``ph_next``, ``ph``) is
            this clock's sequencer phase decoded, and the flag takes it at the next edge
            unless ``hold`` stalls the word (the word register's IDLE word then; no flag is
            an IDLE one). So the flag is the decode of ``word_ph`` as before, in the same
            clock, with no net of one register or LUT to all groups' loads. A first stage's
            own condition is its group's last neuron being active (the digital neurons'
            copies above use the first neuron; copies with the same data and enable would
            be merged); the second stages differ in their first stages.
            """
            flag_phases = {
                NeuronFlag.PRECHARGE: (Phase.PRECHARGE, 1),
                NeuronFlag.SAMPLE_SL: (Phase.SAMPLE, ~bwd),
                NeuronFlag.SAMPLE_BL: (Phase.SAMPLE, bwd),
                NeuronFlag.INTEGRATE: (Phase.INTEGRATE, 1),
                NeuronFlag.INJECT: (Phase.INJECT, 1),
                NeuronFlag.DECREMENT: (Phase.DECREMENT, 1),
                NeuronFlag.COMPARE: ((Phase.COMPARE_SIGN, Phase.COMPARE), 1),
            }
            flags = []
            for first in range(0, n_nrn, NEURON_GROUP):
                g = first // NEURON_GROUP
                own = active[min(first + NEURON_GROUP, n_nrn) - 1]
                for flag in NeuronFlag:
                    phase, gate = flag_phases[flag]
                    name = f"ana_{flag.name.lower()}{g}"
                    seq = phase_flag(f"{name}_seq", phase, gate, own)
                    reg = Signal(name=name, reset_less=True)
                    m.d.sync += reg.eq(seq & ~hold)
                    flags.append(reg)
            return Cat(*flags)

        if "nrn_flags" in ana.signature.members:  # only where the macro reads them
            m.d.comb += ana.nrn_flags.eq(neuron_flags())

        # readout codes: binary magnitudes inverted for sign 0; ReLU zeroes sign-0 magnitudes.
        # What the codes take from the mode (the inversion mask, ReLU, the bank order) is
        # registered: the mode is constant from PRECHARGE through READOUT, and every
        # neuron's code (and the register file's write-back behind it) then starts at a
        # flip-flop instead of the out_k clamp and decode fanned out to every neuron
        inv_next = Mux(counting, 0, Array(C((1 << k) - 1, km) for k in range(MAX_K + 1))[k_eff])
        relu_next = mode.act == Activation.RELU

        def readout_mode(first):
            """The mode bits read by the write-back of lines ``first`` on.

            One ``group_copy`` per _GROUP lines, so no single register's net reaches all
            lines (nextpnr does not replicate drivers). A copy loads at the PRECHARGE edge
            (its group's PRECHARGE flag) and while neuron ``first`` is ``active``: always
            the same value from PRECHARGE through READOUT (the mode is constant then). The
            codes matter only at READOUT.
            """
            g = first // _GROUP
            load, own = at_pre[g], active[first]
            # inv_mask is 0 when counting; ro_bl: the write-back goes to the BL bank
            return (group_copy(m, f"inv_mask{g}", inv_next, load, own, reset_less=True),
                    group_copy(m, f"relu{g}", relu_next, load, own, reset_less=True),
                    group_copy(m, f"ro_bl{g}", out_bl, load, own, reset_less=True))

        # BL line l carries neuron l, SL line l the neuron of corelet_sl_line (its own
        # inverse; rows == cols). Line l first picks its neuron's sign and magnitude with
        # its group's bank order, then forms the code with its group's mask and ReLU: every
        # copy's nets stay within its 16 lines. (Codes formed per neuron with the neuron's
        # group copy would send each copy to every SL group, as the corelet order takes one
        # neuron of each group into 16 adjacent SL lines at corelet 16.)
        groups = [readout_mode(first) for first in range(0, n_nrn, _GROUP)]
        codes = [Signal(w, name=f"code{l}") for l in range(cfg.rows)]
        for l in range(cfg.rows):
            inv_mask, relu, ro_bl = groups[l // _GROUP]
            n_sl = corelet_sl_line(cfg.corelet, l)
            sgn = Mux(ro_bl, sign[l], sign[n_sl])
            mg = Mux(ro_bl, mag[l], mag[n_sl])
            inv = Mux(sgn, 0, inv_mask)
            mag_out = Mux(relu & ~sgn, 0, mg ^ inv)
            if w > 1:
                m.d.comb += codes[l].eq(Cat(mag_out[:w - 1], sgn))
            else:
                m.d.comb += codes[l].eq(sgn)
        m.d.comb += self.wb_data.eq(Cat(*codes))
        return m
