"""The digital core: every control block of one NeuRRAM core, wired together.

``NeurramCore(config)`` joins the line registers (host port + SPI), the controller and its
command set, the MVM engine (sequencer, WL/BL/SL drivers, digital neurons), the
programming-mode cell selection and pulse generator, and the stochastic translators with
the shared LFSR chains. Its analog side is the cycle interface of docs/cycle_interface.md
as the ``analog`` port (``AnalogSignature``, hdl/interfaces.py): the control word out, the
comparator bits ``cmp`` and ``hold`` in; the controller hands the engine its modes through
one ``MvmModeSignature``. Both are joined with ``wiring.connect``. A testbench
closes that loop with the golden cycle-level model; ``NeurramCoreFpga`` (hdl/core_fpga.py)
closes it with the synthesizable behavioural macro.

Integration rules (docs/core_architecture.md):

* RPU_UPDATE: the core first copies every line register into the translators, one line
  per clock through the register file's load port (its ``ld_data`` is the register stage
  before the translators' shared multiplier, whose product is a register too; rows = BL
  registers, then columns = SL registers; ``lines + READ_LATENCY + WRITE_LATENCY`` =
  ``lines + 6`` clocks from ``rpu_start`` to the translators' ``start`` (a register file
  read takes ``READ_LATENCY`` edges, a translator write ``WRITE_LATENCY``), one more for each host
  read in those clocks: the load port
  shares the host's read multiplexer and yields to it), scaling the W-1 magnitude
  bits to the translators' ``str_bits`` and applying the controller's ``str_gain``
  (register sign 1 = positive; the translators' sign 1 = negative), then starts the
  update. ``row_pulse``/``col_pulse`` with ``rpu_valid``/``rpu_up`` drive the row and column
  drivers; coincidences at the cells are the macro's business. The update is ``done`` once
  the last slot is out and the analog side's ``hold`` is low: a macro that needs clocks
  after the last slot to settle the coincidences (the FPGA macro writes its array row by
  row) stalls the update's end, as it stalls an MVM.
* Neuron test mode (``neuron_test``): the engine keeps all WLs at ground (``wl_en`` 0), so the
  neurons see the driver levels directly.
* Clock gating (``clk_gate``) is a clock enable: the engine holds on it as on ``hold``.
  Power gating (``pwr_gate``) keeps the engine's sequencer in reset (its per-line and
  per-neuron registers are reset-less and set by every MVM, hdl/mvm_engine.py); the
  controller refuses every command but POWER_UP meanwhile. Register contents are retained.
* ``error`` is the controller's sticky command error OR a sticky host-access error (a
  malformed SPI frame, or a register address out of range); CLEAR_ERROR clears both.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, ResetInserter, Signal
from amaranth.lib.wiring import In, Out, connect, flipped

from cimflow.config import CoreConfig

from .commands import Op, ProgOp
from .controller import Controller
from .interfaces import AnalogSignature, ConfiguredComponent, HostSignature
from .mvm_engine import MvmEngine
from .prog_drivers import ProgDrivers
from .regfile import LINE_ADDR_BITS, READ_LATENCY, LineRegisters
from .spi import SpiTarget
from .stochastic_translator import WRITE_LATENCY, StochasticTranslatorBank

__all__ = ["NeurramCore"]


class NeurramCore(ConfiguredComponent):
    """Control of one core; the analog side is a port bundle (see module docstring).

    Ports: ``host`` (``HostSignature``, flipped), ``analog`` (``AnalogSignature``: the MVM
    engine's control word, ``cmp`` and ``hold``), and the flat ports of the other analog
    units: ``noise_bits``, the programming pulse (``prog_*``, ``g_read``), the RPU pulses
    (``rpu_*``, ``row_pulse``, ``col_pulse``) and the control bits.

    ``nrn_flags``: the control word also carries the neuron phase flags (``nrn_flags``),
    which only the behavioural macro reads (``NeurramCoreFpga`` asks for them); the core for
    the chip's macro, and the ``core`` top, leave them out.
    """

    def __init__(self, config: CoreConfig, *, nrn_flags: bool = False):
        self._take_config(config)
        self._nrn_flags = nrn_flags
        rows, cols = config.rows, config.cols
        super().__init__({
            "host": In(HostSignature(config.line_bits, Op)),
            "analog": Out(AnalogSignature(rows, cols, nrn_flags=nrn_flags)),
            "noise_bits": Out(rows),
            "prog_op": Out(ProgOp), "prog_amp": Out(8), "prog_tap": Out(4),
            "prog_pulse": Out(1), "prog_sel_bl": Out(rows), "prog_sel_sl": Out(cols),
            "g_read": In(16),
            "rpu_valid": Out(1), "rpu_up": Out(1), "row_pulse": Out(rows),
            "col_pulse": Out(cols),
            "neuron_test": Out(1), "clk_gate": Out(1), "pwr_gate": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        w = cfg.line_bits
        regs = m.submodules.regs = LineRegisters(cfg)
        spi = m.submodules.spi = SpiTarget(cfg)
        ctrl = m.submodules.ctrl = Controller(cfg)
        engine = MvmEngine(cfg, nrn_flags=self._nrn_flags)
        m.submodules.engine = ResetInserter(ctrl.pwr_gate)(engine)
        strb = m.submodules.str_bank = StochasticTranslatorBank(cfg)
        prog = m.submodules.prog = ProgDrivers(cfg)

        host = self.host
        # --- host access: SPI has priority over the parallel port (hdl/spi.py)
        m.d.comb += [
            spi.sck.eq(host.sck), spi.cs_n.eq(host.cs_n), spi.mosi.eq(host.mosi),
            host.miso.eq(spi.miso), host.miso_oe.eq(spi.miso_oe),
            spi.status.eq(host.status),
            spi.p_addr.eq(host.p_addr), spi.p_wdata.eq(host.p_wdata),
            spi.p_we.eq(host.p_we), spi.p_re.eq(host.p_re),
            host.p_ready.eq(spi.p_ready), host.p_rdata.eq(spi.p_rdata),
            regs.addr.eq(spi.addr), regs.wdata.eq(spi.wdata), regs.we.eq(spi.we),
            regs.re.eq(spi.re), spi.rdata.eq(regs.rdata),
        ]

        # --- controller, status and errors
        host_err = Signal()
        with m.If(regs.error | spi.error):
            m.d.sync += host_err.eq(1)
        with m.Elif(ctrl.clear_error):
            m.d.sync += host_err.eq(0)
        m.d.comb += [
            ctrl.cmd_valid.eq(host.cmd_valid), ctrl.cmd_op.eq(host.cmd_op),
            ctrl.cmd_arg.eq(host.cmd_arg),
            host.busy.eq(ctrl.busy), host.done.eq(ctrl.done),
            host.error.eq(ctrl.error | host_err),
            host.status.eq(ctrl.status | (host_err << 2)),
            self.neuron_test.eq(ctrl.mode.neuron_test), self.clk_gate.eq(ctrl.clk_gate),
            self.pwr_gate.eq(ctrl.pwr_gate),
        ]

        # --- MVM engine: modes from the controller, control word to the analog side
        connect(m, ctrl.mode, engine.mode)
        connect(m, flipped(self.analog), engine.analog)
        m.d.comb += [
            engine.bl_values.eq(regs.bl_values), engine.sl_values.eq(regs.sl_values),
            engine.lfsr_ready.eq(strb.ready),
            # the engine's wb_bank is out_bl (1 = BL); the register file's bank bit is 0 = BL
            regs.wb_en.eq(engine.wb_en), regs.wb_bank.eq(~engine.wb_bank),
            regs.wb_data.eq(engine.wb_data),
            # INJECT words only (none while held): the noise LFSR advances with them
            strb.noise_en.eq(engine.lfsr_en),
            self.noise_bits.eq(strb.noise_bits),
        ]

        # --- programming: cell selection from the registers, pulse generator in ctrl
        read_data = Signal(16)
        m.d.comb += [
            prog.bl_is_one.eq(regs.bl_is_one), prog.sl_is_one.eq(regs.sl_is_one),
            # a write lands one edge after its request: both clocks count
            prog.lines_we.eq(regs.lines_we),
            ctrl.prog_sel_ok.eq(prog.sel_ok), ctrl.prog_sel_valid.eq(prog.sel_valid),
            self.prog_sel_bl.eq(prog.prog_sel_bl), self.prog_sel_sl.eq(prog.prog_sel_sl),
            self.prog_op.eq(ctrl.prog_op), self.prog_amp.eq(ctrl.prog_amp),
            self.prog_tap.eq(ctrl.prog_tap), self.prog_pulse.eq(ctrl.prog_pulse),
            host.read_data.eq(read_data),
        ]
        with m.If(ctrl.prog_pulse & (ctrl.prog_op == ProgOp.READ)):
            m.d.sync += read_data.eq(self.g_read)

        # --- RPU update: copy the line registers into the translators, then run
        for name, sig in self._rpu(m, cfg, w, ctrl, strb, regs, self.analog.hold):
            m.d.comb += getattr(self, name).eq(sig)
        return m

    @staticmethod
    def _rpu(m, cfg, w, ctrl, strb, regs, hold):
        n = cfg.str_bits
        lines = cfg.lines
        # the line being copied: ``k`` in the translators' order (rows, then columns), and
        # its register address (bank bit, line) on the register file's load port
        k = Signal(range(lines + 1))
        ld_bank = Signal()
        ld_line = Signal(LINE_ADDR_BITS)
        load = Signal()
        flush = READ_LATENCY + WRITE_LATENCY - 1  # clocks from the last LOAD to START
        drain = Signal(range(flush))
        m.d.comb += [regs.ld_en.eq(load), regs.ld_addr.eq(Cat(ld_line, ld_bank))]
        step = load & regs.ld_ok  # the register file performs the read in this clock
        # the load port's ``ld_data`` is the register stage before the translators' shared
        # multiplier: a line requested in a LOAD clock is there READ_LATENCY clocks later
        # and written then
        cur = regs.ld_data
        wr_addr, wr_en = k, step
        for stage in range(READ_LATENCY):
            addr_d = Signal.like(k, name=f"wr_addr_d{stage}")
            en_d = Signal(name=f"wr_en_d{stage}")
            m.d.sync += [addr_d.eq(wr_addr), en_d.eq(wr_en)]
            wr_addr, wr_en = addr_d, en_d
        mag = cur[: w - 1]
        shift = n - (w - 1)
        scaled = (mag << shift) if shift >= 0 else (mag >> -shift)
        m.d.comb += [
            strb.seed_a.eq(ctrl.seed_a), strb.seed_b.eq(ctrl.seed_b),
            strb.seed_load.eq(ctrl.seed_load), ctrl.rpu_ready.eq(strb.ready),
            strb.gain.eq(ctrl.str_gain), strb.bl.eq(ctrl.rpu_bl),
            strb.wr_en.eq(wr_en), strb.wr_addr.eq(wr_addr), strb.wr_mag.eq(scaled[:n]),
            strb.wr_sign.eq(~cur[w - 1] & (mag != 0)),
        ]
        rpu_done = Signal()
        with m.FSM(name="rpu_fsm"):
            with m.State("IDLE"):
                with m.If(ctrl.rpu_start):
                    m.d.sync += [k.eq(0), ld_bank.eq(0), ld_line.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += load.eq(1)
                with m.If(regs.ld_ok):  # a host read in this clock delays the copy
                    m.d.sync += [k.eq(k + 1), ld_line.eq(ld_line + 1)]
                    with m.If(~ld_bank & (ld_line == cfg.rows - 1)):
                        m.d.sync += [ld_bank.eq(1), ld_line.eq(0)]
                    with m.If(k == lines - 1):
                        m.next = "FLUSH"
            with m.State("FLUSH"):  # the last line's further read edges, then its write
                m.d.sync += drain.eq(drain + 1)  # pipeline (the translators' WRITE_LATENCY)
                with m.If(drain == flush - 1):
                    m.d.sync += drain.eq(0)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += strb.start.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(strb.done):
                    m.d.comb += rpu_done.eq(~hold)
                    with m.If(hold):
                        m.next = "SETTLE"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("SETTLE"):  # the last slot is out; the analog side still works
                with m.If(~hold):
                    m.d.comb += rpu_done.eq(1)
                    m.next = "IDLE"
        m.d.comb += [ctrl.rpu_done.eq(rpu_done), ctrl.rpu_error.eq(strb.error)]
        return [("rpu_valid", strb.valid), ("rpu_up", strb.up),
                ("row_pulse", strb.row_pulse), ("col_pulse", strb.col_pulse)]
