"""Core controller: command decoder, mode registers, sequencing of the working units.

A command is one cycle with ``cmd_valid`` high, an opcode ``cmd_op`` (5 bits) and an
argument ``cmd_arg`` (16 bits); the table is in docs/command_set.md (``Op`` below). The
controller holds the mode registers of docs/cycle_interface.md (they drive the MvmEngine
directly and stay constant while it runs because a command while busy is refused), the
LFSR seed assembly registers, the programming pulse settings and the control bits, and it
starts the units that do the work by pulsing a ``*_start`` output for one cycle and
waiting for their ``done`` input:

* MVM: ``mode.start``, wait ``mode.done`` (MvmEngine, which reads the mode registers
  through the same ``mode`` interface, ``MvmModeSignature``).
* RPU update: ``rpu_start`` with ``rpu_bl``, wait ``rpu_done`` (StochasticTranslatorBank);
  its ``error`` (``rpu_error``) ends the wait with cause UNIT (and a ``done`` pulse).
* Seed load: ``seed_load`` with ``seed_a``/``seed_b``, wait until ``rpu_ready`` (the LFSR
  warm-up is over).
* Programming one cell: the pulse generator holds ``prog_op`` (``ProgOp``: SET, RESET, READ)
  and raises ``prog_pulse`` for exactly ``width`` cycles (or one trigger cycle when a
  delay-line tap is selected, ``prog_tap`` != 0); ``prog_amp`` is the amplitude DAC code.
  The selection check (``prog_sel_ok``) is registered in ``ProgDrivers``; while it has not
  seen the last line register write (``prog_sel_valid`` low) a PROGRAM waits in SELECT
  (busy) and is decided when it has, so the check is off the command decode's path.

A command is decided ``COMMAND_LATENCY`` = 1 edge after its cycle (the port and its
argument checks are registered first). Every accepted command pulses ``done`` once:
register commands the cycle after the decision, operations when they finish
(CLEAR_ERROR accepted while busy is the only exception, so ``done`` while busy always
means the running operation finished). A refused command changes no
state except ``error`` (sticky until CLEAR_ERROR) and the cause field of ``status``.
Refusal order: power-gated, busy, unknown opcode, bad argument, then the state checks
(selection for PROGRAM, LFSR not ready for RPU_UPDATE and a stochastic MVM).

``status`` = {clk_gate, pwr_gate, cause[2:0], error, done, busy} (bit 7 .. bit 0);
``done`` there is sticky: set when an operation finishes, cleared when a command is
accepted.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig, input_pulses
from cimflow.modes import Activation, AdcMode, Direction

from .commands import MAX_TAP, Cause, Op, ProgOp
from .interfaces import ARG_BITS, ConfiguredComponent, MvmModeSignature


def above(x, n: int):
    """``x > n`` for a constant ``n`` >= 1: any bit above ``n``'s width set (an OR tree), or
    the low bits above ``n`` (a compare only as wide as ``n``). A full-width ``>`` becomes a
    carry chain across the whole argument, in front of the command's acceptance."""
    k = n.bit_length()
    high = (x[k:] != 0) if len(x) > k else 0
    return high | (x[:k] > n) if n < (1 << k) - 1 else high

__all__ = ["Controller", "Op", "Cause", "ProgOp", "MAX_TAP", "ModeArg", "COMMAND_LATENCY"]

COMMAND_LATENCY = 1
"""Clock edges between a command's cycle and its decision: the command port and its
argument checks are registered first, then the command is accepted or refused at the next
edge (with the state of that clock). The decode of the port fanned out to every register's
enable and to the sequencing was the longest path of ``core`` medium (docs/fpga.md)."""

ModeArg = data.StructLayout({
    "direction": 2, "adc_mode": 1, "act": 2, "neuron_test": 1, "reserved": ARG_BITS - 6,
})
"""The SET_MODE argument; the field codes are those of :mod:`cimflow.modes`."""


class Controller(ConfiguredComponent):
    """Command decoder and sequencer; ports listed in docs/command_set.md."""

    def __init__(self, config: CoreConfig):
        cfg = self._take_config(config)
        da, db = max(cfg.lfsr_a_taps), max(cfg.lfsr_b_taps)
        super().__init__({
            # command port and status
            "cmd_valid": In(1),
            "cmd_op": In(Op),
            "cmd_arg": In(ARG_BITS),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "status": Out(8),
            # mode registers, neuron test, clock gate and start / done (to the MvmEngine)
            "mode": Out(MvmModeSignature()),
            # RPU update (StochasticTranslatorBank)
            "rpu_start": Out(1),
            "rpu_bl": Out(cfg.bl_bits, init=cfg.bl),
            "rpu_done": In(1),
            "rpu_error": In(1),
            "rpu_ready": In(1),
            "str_gain": Out(cfg.str_gain_bits, init=1 << cfg.str_gain_frac_bits),
            # LFSR seeds
            "seed_a": Out(da, init=1),
            "seed_b": Out(db, init=1),
            "seed_load": Out(1),
            # programming pulse generator
            "prog_op": Out(ProgOp),
            "prog_amp": Out(8),
            "prog_tap": Out(4),
            "prog_width": Out(16, init=1),
            "prog_pulse": Out(1),
            "prog_sel_ok": In(1),
            "prog_sel_valid": In(1, init=1),
            # a CLEAR_ERROR is accepted in this clock (the core clears its host errors too)
            "clear_error": Out(1),
            # gating
            "clk_gate": Out(1),
            "pwr_gate": Out(1),
        })

    @property
    def max_in_m(self) -> int:
        return input_pulses(self._config.input_bits)

    @property
    def max_out_k(self) -> int:
        return self._config.output_bits - 1

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # The command port and its argument checks are registered first (COMMAND_LATENCY):
        # ``op`` / ``arg`` / ``valid`` / ``unknown`` / ``bad_arg`` below are the command of
        # the clock before, so no register's enable or start pulse decodes the port itself.
        raw_op, raw_arg = self.cmd_op, self.cmd_arg
        raw_mode = data.View(ModeArg, raw_arg)
        valid = Signal()
        op = Signal(Op)
        arg = Signal(ARG_BITS)
        mode_arg = data.View(ModeArg, arg)
        m.d.sync += [valid.eq(self.cmd_valid), op.eq(raw_op), arg.eq(raw_arg)]

        # ---------------------------------------------------------------- mode registers
        # held here with their reset values, driven to the engine through ``mode``
        reg = {
            "direction": Signal(Direction, name="direction"),
            "adc_mode": Signal(AdcMode, init=cfg.adc_mode, name="adc_mode"),
            "out_k": Signal(4, init=self.max_out_k, name="out_k"),
            "in_m": Signal(3, init=self.max_in_m, name="in_m"),
            "act": Signal(Activation, name="act"),
            "inject_steps": Signal(16, name="inject_steps"),
            "t_wl": Signal(4, init=1, name="t_wl"),
            "t_sample": Signal(4, init=1, name="t_sample"),
            "t_integ": Signal(8, init=1, name="t_integ"),
            "in_len": Signal(9, init=cfg.rows, name="in_len"),
            "neuron_test": Signal(name="neuron_test"),
        }
        mode = self.mode
        m.d.comb += [getattr(mode, name).eq(r) for name, r in reg.items()]
        m.d.comb += mode.clk_gate.eq(self.clk_gate)

        # ---------------------------------------------------------------- decode
        # stage 1: the argument checks of the command on the port
        unknown_c = Signal()
        bad_c = Signal()
        with m.Switch(raw_op):
            with m.Case(Op.NOP, Op.MVM, Op.SEED_LOAD, Op.CLEAR_ERROR):
                m.d.comb += bad_c.eq(raw_arg != 0)
            with m.Case(Op.SET_MODE):
                # codes 3 of the 2-bit fields name no Direction / Activation
                m.d.comb += bad_c.eq((raw_mode.direction > max(d.value for d in Direction))
                                     | (raw_mode.act > max(a.value for a in Activation))
                                     | (raw_mode.reserved != 0))
            with m.Case(Op.SET_PRECISION):
                # (no `> max_in_m` test when every 3-bit value is legal: lint CMPCONST)
                in_m_bad = (raw_arg[4:7] > self.max_in_m) if self.max_in_m < 7 else 0
                m.d.comb += bad_c.eq((raw_arg[0:4] > self.max_out_k) | (raw_arg[4:7] == 0)
                                     | in_m_bad | (raw_arg[7:] != 0))
            with m.Case(Op.SET_INJECT, Op.SEED_A, Op.SEED_B):
                pass
            with m.Case(Op.SET_IN_LEN):
                m.d.comb += bad_c.eq((raw_arg == 0) | above(raw_arg, cfg.rows))
            with m.Case(Op.RPU_UPDATE):
                m.d.comb += bad_c.eq((raw_arg == 0) | above(raw_arg, cfg.bl_max))
            with m.Case(Op.SET_PULSE):
                m.d.comb += bad_c.eq((raw_arg[8:12] > MAX_TAP) | (raw_arg[12:] != 0))
            with m.Case(Op.SET_WIDTH):
                m.d.comb += bad_c.eq(raw_arg == 0)
            with m.Case(Op.PROGRAM):
                m.d.comb += bad_c.eq((raw_arg[0:2] == ProgOp.NONE) | (raw_arg[2:] != 0))
            with m.Case(Op.POWER):
                m.d.comb += bad_c.eq(raw_arg[2:] != 0)
            with m.Case(Op.SET_GAIN):
                m.d.comb += bad_c.eq((raw_arg >> cfg.str_gain_bits) != 0)
            with m.Case(Op.SET_TIMING):
                m.d.comb += bad_c.eq((raw_arg[0:4] == 0) | (raw_arg[4:8] == 0)
                                     | (raw_arg[8:16] == 0))
            with m.Default():
                m.d.comb += unknown_c.eq(1)
        unknown = Signal()
        bad_arg = Signal()
        m.d.sync += [unknown.eq(unknown_c), bad_arg.eq(bad_c)]
        # every opcode decoded here with its argument check: ``ok[op]`` is "the registered
        # command is ``op`` and its argument is good", so the operations' starts, the state
        # register's enable and the register commands' write enables are a few gates of
        # registers, not the opcode compares and the whole refusal chain (the command ->
        # argument refusal -> state or write enable paths limited core medium, docs/fpga.md)
        ok = {o: Signal(name=f"ok_{o.name.lower()}") for o in Op if o is not Op.NOP}
        m.d.sync += [r.eq((raw_op == o) & ~bad_c) for o, r in ok.items()]
        assert COMMAND_LATENCY == 1  # one register stage

        # stage 2: the state checks, on the registered command and the state of its decision
        state_err = Signal()
        state_cause = Signal(Cause)
        with m.Switch(op):
            with m.Case(Op.MVM):
                stochastic = reg["act"] == Activation.STOCHASTIC
                m.d.comb += [state_err.eq(stochastic & ~self.rpu_ready),
                             state_cause.eq(Cause.NOT_READY)]
            with m.Case(Op.RPU_UPDATE):
                m.d.comb += [state_err.eq(~self.rpu_ready), state_cause.eq(Cause.NOT_READY)]
            with m.Case(Op.PROGRAM):
                m.d.comb += [state_err.eq(self.prog_sel_valid & ~self.prog_sel_ok),
                             state_cause.eq(Cause.SELECTION)]

        busy = Signal()
        power_up = (op == Op.POWER) & ~arg[0]
        reject = Signal()
        cause = Signal(Cause)
        with m.If(self.pwr_gate & ~power_up):
            m.d.comb += [reject.eq(1), cause.eq(Cause.POWER_GATED)]
        with m.Elif(busy & (op != Op.CLEAR_ERROR)):
            m.d.comb += [reject.eq(1), cause.eq(Cause.BUSY)]
        with m.Elif(self.clk_gate & ((op == Op.MVM) | (op == Op.RPU_UPDATE)
                                     | (op == Op.SEED_LOAD) | (op == Op.PROGRAM))):
            # the array periphery's clock is off: no operation can run
            m.d.comb += [reject.eq(1), cause.eq(Cause.POWER_GATED)]
        with m.Elif(unknown):
            m.d.comb += [reject.eq(1), cause.eq(Cause.UNKNOWN_OPCODE)]
        with m.Elif(bad_arg):
            m.d.comb += [reject.eq(1), cause.eq(Cause.BAD_ARG)]
        # the state checks come last; they are kept off the register commands' enables
        # (state_err is 0 for those): the selection check is a long path from the line
        # registers, and only the operations and the error flag need it
        with m.Elif(state_err):
            m.d.comb += [reject.eq(1), cause.eq(state_cause)]

        accept = Signal()
        m.d.comb += accept.eq(valid & ~reject)

        # ---------------------------------------------------------------- state
        err = Signal()
        err_cause = Signal(Cause)
        done_sticky = Signal()
        prog_op = Signal(ProgOp)
        count = Signal(16)

        done_next = Signal()
        m.d.sync += [
            mode.start.eq(0),
            self.rpu_start.eq(0),
            self.seed_load.eq(0),
        ]
        with m.If(valid & reject):
            m.d.sync += [err.eq(1), err_cause.eq(cause)]

        go = {k: Signal(name=f"go_{k}") for k in ("mvm", "rpu", "seed", "pulse", "select")}
        # The register commands' write enables: the refusals that can apply to each opcode
        # (power gate, busy) and its ``ok``, not the refusal chain of every opcode, which
        # synthesis does not cut by itself (the argument -> the refusal chain -> a write
        # enable was a limiting path of core medium, docs/fpga.md). The same acceptance
        # as ``reject`` for these opcodes: POWER is refused while power-gated unless it
        # powers up, CLEAR_ERROR is accepted while busy; the clock gate refuses none.
        plain = valid & ~self.pwr_gate & ~busy
        with m.If(plain & ok[Op.SET_MODE]):
            m.d.sync += [reg[name].eq(mode_arg[name])
                         for name in ("direction", "adc_mode", "act", "neuron_test")]
        with m.If(plain & ok[Op.SET_PRECISION]):
            m.d.sync += [reg["out_k"].eq(arg[0:4]), reg["in_m"].eq(arg[4:7])]
        with m.If(plain & ok[Op.SET_IN_LEN]):
            m.d.sync += reg["in_len"].eq(arg)
        with m.If(plain & ok[Op.SET_PULSE]):
            m.d.sync += [self.prog_amp.eq(arg[0:8]), self.prog_tap.eq(arg[8:12])]
        with m.If(plain & ok[Op.SET_WIDTH]):
            m.d.sync += [self.prog_width.eq(arg)]
        with m.If(valid & ~busy & ok[Op.POWER] & (~self.pwr_gate | ~arg[0])):
            m.d.sync += [self.pwr_gate.eq(arg[0]), self.clk_gate.eq(arg[1])]
        with m.If(plain & ok[Op.SET_GAIN]):
            m.d.sync += self.str_gain.eq(arg)
        with m.If(plain & ok[Op.SET_TIMING]):
            m.d.sync += [reg["t_wl"].eq(arg[0:4]), reg["t_sample"].eq(arg[4:8]),
                         reg["t_integ"].eq(arg[8:16])]
        with m.If(valid & ~self.pwr_gate & ok[Op.CLEAR_ERROR]):
            m.d.sync += [err.eq(0), err_cause.eq(Cause.NONE)]
        # (SET_INJECT, SEED_A and SEED_B have no argument check: ``ok`` is the opcode)
        with m.If(plain & ok[Op.SET_INJECT]):
            m.d.sync += reg["inject_steps"].eq(arg)
        with m.If(plain & ok[Op.SEED_A]):
            m.d.sync += self.seed_a.eq(Cat(arg, self.seed_a))
        with m.If(plain & ok[Op.SEED_B]):
            m.d.sync += self.seed_b.eq(Cat(arg, self.seed_b))

        # The operations' starts: the acceptance of ``reject`` for these opcodes (not
        # power-gated, as POWER is not one of them; not busy; clock not gated; a known
        # opcode with a good argument: ``ok``), then the state checks of ``state_err``.
        # A PROGRAM whose selection check has not seen the last line register write waits
        # in SELECT for it.
        can_run = valid & ~self.pwr_gate & ~busy & ~self.clk_gate
        m.d.comb += [
            go["mvm"].eq(can_run & ok[Op.MVM]
                         & ~((reg["act"] == Activation.STOCHASTIC) & ~self.rpu_ready)),
            go["rpu"].eq(can_run & ok[Op.RPU_UPDATE] & self.rpu_ready),
            go["seed"].eq(can_run & ok[Op.SEED_LOAD]),
            go["pulse"].eq(can_run & ok[Op.PROGRAM] & self.prog_sel_valid
                           & self.prog_sel_ok),
            go["select"].eq(can_run & ok[Op.PROGRAM] & ~self.prog_sel_valid),
        ]
        with m.If(go["mvm"]):
            m.d.sync += mode.start.eq(1)
        with m.If(go["rpu"]):
            m.d.sync += [self.rpu_start.eq(1), self.rpu_bl.eq(arg)]
        with m.If(go["seed"]):
            m.d.sync += self.seed_load.eq(1)
        with m.If(go["pulse"] | go["select"]):
            m.d.sync += prog_op.eq(arg[0:2])

        finish = Signal()
        with m.FSM(name="ctrl_fsm") as fsm:
            with m.State("IDLE"):
                with m.If(go["mvm"]):
                    m.next = "MVM"
                with m.Elif(go["rpu"]):
                    m.next = "RPU"
                with m.Elif(go["seed"]):
                    m.next = "SEED"
                with m.Elif(go["pulse"]):
                    m.next = "PULSE"
                with m.Elif(go["select"]):
                    m.next = "SELECT"
            with m.State("MVM"):
                with m.If(mode.done):
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
            with m.State("RPU"):
                with m.If(self.rpu_error):
                    m.d.sync += [err.eq(1), err_cause.eq(Cause.UNIT)]
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
                with m.Elif(self.rpu_done):
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
            with m.State("SEED"):
                # seed_load is high in this state's first cycle; ready drops with it
                with m.If(~self.seed_load & self.rpu_ready):
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
            with m.State("SELECT"):
                # PROGRAM within SEL_LATENCY clocks of a line register write (hdl/
                # prog_drivers.py): decided once the selection check has seen the flags
                with m.If(self.prog_sel_valid):
                    with m.If(self.prog_sel_ok):
                        m.next = "PULSE"
                    with m.Else():
                        m.d.sync += [err.eq(1), err_cause.eq(Cause.SELECTION)]
                        m.next = "IDLE"
            with m.State("PULSE"):
                m.d.comb += [self.prog_pulse.eq(1), self.prog_op.eq(prog_op)]
                m.d.sync += count.eq(count - 1)
                with m.If(count == 1):
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
        # the pulse counter loads in every clock outside PULSE (the widths cannot change
        # while PULSE is entered: a PROGRAM is the clock's one command, or busy), so its
        # clock enable is the state, not the command decode
        with m.If(~fsm.ongoing("PULSE")):
            m.d.sync += count.eq(Mux(self.prog_tap != 0, 1, self.prog_width))
        operation = go["mvm"] | go["rpu"] | go["seed"] | go["pulse"] | go["select"]
        m.d.comb += done_next.eq(finish | (accept & ~busy & ~operation))
        m.d.sync += self.done.eq(done_next)
        with m.If(done_next):
            m.d.sync += done_sticky.eq(1)
        with m.Elif(accept & ~busy):
            m.d.sync += done_sticky.eq(0)

        m.d.comb += [
            self.clear_error.eq(accept & (op == Op.CLEAR_ERROR)),
            busy.eq(~fsm.ongoing("IDLE")),
            self.busy.eq(busy),
            self.error.eq(err),
            self.status.eq(Cat(busy, done_sticky, err, err_cause, self.pwr_gate,
                               self.clk_gate)),
        ]
        return m
