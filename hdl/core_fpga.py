"""The whole core for FPGA prototyping: the digital core plus the behavioural analog macro.

``NeurramCoreFpga(config)`` closes ``NeurramCore``'s analog interface with
``AnalogMacro`` (conductances in block RAM, fixed-point neuron charge), so the core runs
stand-alone in Verilator or on an FPGA with only the host ports: SPI, the register port
and the command port. The analog bias settings that live outside the digital core on the
chip (C_s V_decr, the injection step, the integrator swing; docs/cycle_interface.md) are
input ports here, in the macro's integer charge units.

Programming interface: a PROGRAM pulse acts on the cell selected by the line registers
(its BL and SL registers equal 1). The behavioural cell is deterministic: every clock of
a SET pulse raises the conductance code by the amplitude code ``prog_amp``, every clock of
a RESET pulse lowers it by ``prog_amp`` (clamped to [0, 2^16 - 1]); READ returns the code
in ``read_data``. A host loads a programming image with a write-verify loop of these
commands, as on the chip. The selected cell is read continuously while the engine is idle;
a SET/RESET pulse captures the cell's code in its first clock and writes the running value
in every later clock and in the clock after the pulse (a bypass covers the read latency,
``G_READ_CLOCKS``),
so any command, issued back to back after ``done``, sees the new value.

RPU update: the pulses of ``RPU_UPDATE`` are driven into the macro and, one clock later
(registered, for observation), to the ``row_pulse``/``col_pulse`` ports. The macro's
cells are deterministic constant-step devices: each coincidence (row i and column j pulse
in one slot) moves code (i, j) by ``rpu_step`` codes, up in an up phase (``rpu_up``) and
down otherwise, clamped to [0, 2^16 - 1] like a SET/RESET. The macro writes its array row
by row after the slots; the update's ``done`` waits for it, so the next command sees
every changed cell (docs/rpu_training.md, "The same step in the RTL", maps a signed
weight step to these codes).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out, connect, flipped

from cimflow.config import CoreConfig

from .analog_macro import (
    G_READ_CLOCKS,
    AnalogMacro,
    clip_bits,
    lane_operand,
    saturating_lanes,
)
from .commands import Op, ProgOp
from .core import NeurramCore
from .interfaces import ConfiguredComponent, HostSignature, Phase, flat_view
from .prog_drivers import SEL_LATENCY

__all__ = ["NeurramCoreFpga"]

G_BITS = 16
SEL_CLOCKS = 1
"""The cell index (row and column) is a register of the encoded selection flags: the array's
address sees a selection change this many clocks later."""
# a PROGRAM's pulse starts SEL_LATENCY + 1 clocks after its selection's last change at the
# earliest, so the read it sees (SEL_CLOCKS + G_READ_CLOCKS clocks after the change) is of
# that selection
assert SEL_CLOCKS + G_READ_CLOCKS <= SEL_LATENCY + 1


def _encode(m: Module, onehot, width: int, name: str) -> Signal:
    """Index of the set bit of a one-hot vector: bit b of the index is the OR of the lines
    whose number has bit b set (a log-depth OR tree, no priority chain). Defined only for
    exactly one set bit, the only case in which a PROGRAM runs (``sel_ok``); otherwise the
    index is the OR of the set lines' numbers."""
    idx = Signal(range(max(width, 2)), name=name)
    for b in range(len(idx)):
        terms = [onehot[k] for k in range(width) if k >> b & 1]
        if terms:
            m.d.comb += idx[b].eq(Cat(*terms).any())
    return idx


class NeurramCoreFpga(ConfiguredComponent):
    """Digital core + behavioural macro; ports: the members of ``HostSignature`` (flipped,
    flat), the bias codes, the RPU step per coincidence (codes) and the RPU pulses."""

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        cb = clip_bits(config)  # the bias code widths of AnalogMacro
        super().__init__({
            # the host ports stay flat (no wrapper module): testbenches also reach internals
            **HostSignature(config.line_bits, Op).flip().members,
            "d_units": In(cb - 1),
            "inject_units": In(cb),
            "clip_units": In(cb, init=(1 << cb) - 1),
            "rpu_step": In(G_BITS, init=1),
            "rpu_valid": Out(1), "rpu_up": Out(1),
            "row_pulse": Out(config.rows), "col_pulse": Out(config.cols),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        # the behavioural macro's neurons act on the engine's neuron phase flags
        core = m.submodules.core = NeurramCore(cfg, nrn_flags=True)
        macro = m.submodules.macro = AnalogMacro(cfg, g_bits=G_BITS)

        connect(m, flipped(flat_view(HostSignature(cfg.line_bits, Op).flip(), self)),
                core.host)
        connect(m, core.analog, macro.analog)
        # the comparator bits and hold at the core's boundary, under the core's port names
        cmp, hold = Signal(cfg.rows, name="cmp"), Signal(name="hold")
        m.d.comb += [cmp.eq(core.analog.cmp), hold.eq(core.analog.hold)]
        # the RPU pulses into the macro; the ports (observation only) one clock later, from
        # registers: the translators' comparisons are not pulled towards the pins. The
        # port registers are reset-less, so synthesis does not merge them with the macro's
        # own registers of the same pulses (reset to 0), which feed its queue's push
        # decision: merged, one flip-flop by the pins would drive that logic
        for name in ("rpu_valid", "rpu_up", "row_pulse", "col_pulse"):
            obs = Signal.like(getattr(core, name), name=f"{name}_obs", reset_less=True)
            m.d.sync += obs.eq(getattr(core, name))
            m.d.comb += [getattr(self, name).eq(obs),
                         getattr(macro, name).eq(getattr(core, name))]
        m.d.comb += macro.rpu_step.eq(self.rpu_step)
        m.d.comb += [
            macro.noise_bits.eq(core.noise_bits),
            macro.d_units.eq(self.d_units), macro.inject_units.eq(self.inject_units),
            macro.clip_units.eq(self.clip_units),
        ]

        # --- programming: read the selected cell while idle; SET/RESET write one clock late
        # The first clock of a SET/RESET pulse registers the cell's code (``base``, no
        # adder behind the array's read multiplexer); every later clock of the pulse, and
        # the clock after it, writes ``base`` plus (minus) the amplitude, saturated, and
        # keeps it in ``base``: the adder sits between two registers (``base`` -> the
        # array's write data). Saturating each step equals saturating the sum, because a
        # pulse only adds (SET) or only subtracts (RESET). Saturation comes from the carry /
        # borrow bit. The read path (selection -> read port) stays as it was.
        # the selected cell's index, registered (`SEL_CLOCKS`): the encoders' OR trees end
        # at flip-flops, not at the array's read and write addresses and write enables
        row = Signal(range(max(cfg.rows, 2)), name="prog_row_q")
        col = Signal(range(max(cfg.cols, 2)), name="prog_col_q")
        m.d.sync += [row.eq(_encode(m, core.prog_sel_bl, cfg.rows, "prog_row")),
                     col.eq(_encode(m, core.prog_sel_sl, cfg.cols, "prog_col"))]
        base = Signal(G_BITS)  # the code before this clock's step
        op_set = Signal()  # the pulse is a SET (else a RESET)
        # the clamp's operand (`lane_operand`), registered with ``op_set`` in the pulse's
        # first clock: the amplitude is constant (the controller refuses every command
        # while the pulse runs), so no mux or subtractor sits in front of the adder
        opd = Signal(G_BITS + 1)
        # the code written in this clock of the pulse: the clamp of the RPU queue's lanes,
        # one lane
        value, = saturating_lanes(m, [base], opd, op_set, G_BITS, "prog_value")
        w_row = Signal.like(row)  # the selection of the pulse, for its writes
        w_col = Signal.like(col)
        write = Signal()
        # bypass: ``g_rdata`` shows a write ``G_READ_CLOCKS + 1`` clocks later (a read in
        # the clock after the write, `G_READ_CLOCKS` clocks to ``g_rdata``); a back-to-back
        # command must already see it, so ``wr_val`` stands for the cell in the
        # `G_READ_CLOCKS` clocks after a write. A command sees ``g_rdata`` only after its
        # selection has been stable for `SEL_LATENCY` + 1 clocks (hdl/prog_drivers.py), so
        # the bypass decision compares the previous clock's selection with the write's, and
        # is a register (no encoder or comparator between the read multiplexer and ``base``).
        wr_val = Signal(G_BITS)
        wr_row = Signal.like(row)
        wr_col = Signal.like(col)
        recent = Signal(range(G_READ_CLOCKS + 1))
        hit = Signal()  # wr_val is the cell read in the previous clock
        cell_now = Mux(hit, wr_val, macro.g_rdata)

        m.d.comb += [
            macro.g_row.eq(Mux(write, w_row, row)), macro.g_col.eq(Mux(write, w_col, col)),
            macro.g_re.eq((core.analog.phase == Phase.IDLE) & ~macro.analog.hold & ~write),
            macro.g_we.eq(write), macro.g_wdata.eq(value),
            core.g_read.eq(cell_now),
        ]
        m.d.sync += [recent.eq(Mux(recent != 0, recent - 1, 0)),
                     hit.eq((recent > 1) & (row == wr_row) & (col == wr_col))]
        with m.If(write):
            m.d.sync += [wr_val.eq(value), wr_row.eq(w_row), wr_col.eq(w_col),
                         recent.eq(G_READ_CLOCKS), hit.eq((row == w_row) & (col == w_col))]
        is_set = core.prog_op == ProgOp.SET
        set_or_reset = is_set | (core.prog_op == ProgOp.RESET)
        with m.FSM(name="prog_fsm"):
            with m.State("IDLE"):
                with m.If(core.prog_pulse & set_or_reset):
                    m.d.sync += [base.eq(cell_now), w_row.eq(row), w_col.eq(col),
                                 op_set.eq(is_set),
                                 opd.eq(lane_operand(core.prog_amp, is_set, G_BITS))]
                    m.next = "PULSE"
            with m.State("PULSE"):
                # one step per clock of the pulse, each one clock late: the last step in
                # the clock after the pulse
                m.d.comb += write.eq(1)
                m.d.sync += base.eq(value)
                with m.If(~core.prog_pulse):
                    m.next = "IDLE"
        return m

