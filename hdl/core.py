"""The digital core: every control block of one NeuRRAM core, wired together.

``NeurramCore(config)`` joins the line registers (host port + SPI), the controller and its
command set, the MVM engine (sequencer, WL/BL/SL drivers, digital neurons), the
programming-mode cell selection and pulse generator, and the stochastic translators with
the shared LFSR chains. Its analog side is the cycle interface of docs/cycle_interface.md
as ports: the control word out, the comparator bits ``cmp`` and ``hold`` in. A testbench
closes that loop with the golden cycle-level model; ``NeurramCoreFpga`` (hdl/core_fpga.py)
closes it with the synthesizable behavioural macro.

Integration rules (docs/core_architecture.md):

* RPU_UPDATE: the core first copies every line register into the translators, one line
  per clock (rows = BL registers, then columns = SL registers), scaling the W-1 magnitude
  bits to the translators' ``str_bits`` and applying the controller's ``str_gain``
  (register sign 1 = positive; the translators' sign 1 = negative), then starts the
  update. ``row_pulse``/``col_pulse`` with ``rpu_valid``/``rpu_up`` drive the row and column
  drivers; coincidences at the cells are the macro's business.
* Neuron test mode (``neuron_test``): all WLs stay at ground (``wl_en`` forced to 0), so the
  neurons see the driver levels directly.
* Clock gating (``clk_gate``) is a clock enable: it holds the MVM engine like ``hold``.
  Power gating (``pwr_gate``) keeps the engine in reset; the controller refuses every
  command but POWER_UP meanwhile. Register contents are retained.
* ``error`` is the controller's sticky command error OR a sticky host-access error (a
  malformed SPI frame, or a register address out of range); CLEAR_ERROR clears both.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .controller import Controller, Op
from .mvm_engine import MvmEngine
from .prog_drivers import ProgDrivers
from .regfile import ADDR_BITS, LineRegisters
from .spi import SpiTarget
from .stochastic_translator import StochasticTranslatorBank

__all__ = ["NeurramCore", "host_signature", "analog_signature"]


def host_signature(config: CoreConfig) -> dict:
    """Ports a host (FPGA board controller) uses: SPI, register port, command port."""
    w = config.line_bits
    return {
        "sck": In(1), "cs_n": In(1, init=1), "mosi": In(1), "miso": Out(1),
        "p_addr": In(ADDR_BITS), "p_wdata": In(w), "p_we": In(1), "p_re": In(1),
        "p_ready": Out(1), "p_rdata": Out(w),
        "cmd_valid": In(1), "cmd_op": In(5), "cmd_arg": In(16),
        "busy": Out(1), "done": Out(1), "error": Out(1), "status": Out(8),
        "read_data": Out(16),
    }


def analog_signature(config: CoreConfig) -> dict:
    """The cycle interface towards the array and neurons (docs/cycle_interface.md)."""
    rows, cols = config.rows, config.cols
    return {
        "phase": Out(4), "drv_bl": Out(2 * rows), "drv_sl": Out(2 * cols),
        "wl_en": Out(rows), "nrn_in": Out(2), "out_bl": Out(1), "dac_code": Out(4),
        "dec_en": Out(rows), "noise_bits": Out(rows),
        "cmp": In(rows), "hold": In(1),
        "prog_op": Out(2), "prog_amp": Out(8), "prog_tap": Out(4), "prog_pulse": Out(1),
        "prog_sel_bl": Out(rows), "prog_sel_sl": Out(cols), "g_read": In(16),
        "rpu_valid": Out(1), "rpu_up": Out(1), "row_pulse": Out(rows), "col_pulse": Out(cols),
        "neuron_test": Out(1), "clk_gate": Out(1), "pwr_gate": Out(1),
    }


class NeurramCore(wiring.Component):
    """Control of one core; the analog side is a port bundle (see module docstring)."""

    def __init__(self, config: CoreConfig):
        self._config = config
        super().__init__({**host_signature(config), **analog_signature(config)})

    @property
    def config(self) -> CoreConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        w = cfg.line_bits
        regs = m.submodules.regs = LineRegisters(cfg)
        spi = m.submodules.spi = SpiTarget(cfg)
        ctrl = m.submodules.ctrl = Controller(cfg)
        engine = MvmEngine(cfg)
        m.submodules.engine = ResetInserter(ctrl.pwr_gate)(engine)
        strb = m.submodules.str_bank = StochasticTranslatorBank(cfg)
        prog = m.submodules.prog = ProgDrivers(cfg)

        # --- host access: SPI has priority over the parallel port (hdl/spi.py)
        m.d.comb += [
            spi.sck.eq(self.sck), spi.cs_n.eq(self.cs_n), spi.mosi.eq(self.mosi),
            self.miso.eq(spi.miso),
            spi.p_addr.eq(self.p_addr), spi.p_wdata.eq(self.p_wdata),
            spi.p_we.eq(self.p_we), spi.p_re.eq(self.p_re),
            self.p_ready.eq(spi.p_ready), self.p_rdata.eq(spi.p_rdata),
            regs.addr.eq(spi.addr), regs.wdata.eq(spi.wdata), regs.we.eq(spi.we),
            regs.re.eq(spi.re), spi.rdata.eq(regs.rdata),
        ]

        # --- controller, status and errors
        host_err = Signal()
        clear = ctrl.cmd_valid & (ctrl.cmd_op == Op.CLEAR_ERROR) & (ctrl.cmd_arg == 0) \
            & ~ctrl.pwr_gate
        with m.If(regs.error | spi.error):
            m.d.sync += host_err.eq(1)
        with m.Elif(clear):
            m.d.sync += host_err.eq(0)
        m.d.comb += [
            ctrl.cmd_valid.eq(self.cmd_valid), ctrl.cmd_op.eq(self.cmd_op),
            ctrl.cmd_arg.eq(self.cmd_arg),
            self.busy.eq(ctrl.busy), self.done.eq(ctrl.done),
            self.error.eq(ctrl.error | host_err),
            self.status.eq(ctrl.status | (host_err << 2)),
            self.neuron_test.eq(ctrl.neuron_test), self.clk_gate.eq(ctrl.clk_gate),
            self.pwr_gate.eq(ctrl.pwr_gate),
        ]

        # --- MVM engine
        m.d.comb += [
            engine.direction.eq(ctrl.direction), engine.adc_mode.eq(ctrl.adc_mode),
            engine.out_k.eq(ctrl.out_k), engine.in_m.eq(ctrl.in_m), engine.act.eq(ctrl.act),
            engine.inject_steps.eq(ctrl.inject_steps), engine.in_len.eq(ctrl.in_len),
            engine.t_wl.eq(ctrl.t_wl), engine.t_sample.eq(ctrl.t_sample),
            engine.t_integ.eq(ctrl.t_integ),
            engine.start.eq(ctrl.mvm_start), ctrl.mvm_done.eq(engine.done),
            engine.hold.eq(self.hold | ctrl.clk_gate),
            engine.bl_values.eq(regs.bl_values), engine.sl_values.eq(regs.sl_values),
            engine.cmp.eq(self.cmp), engine.lfsr_ready.eq(strb.ready),
            # the engine's wb_bank is out_bl (1 = BL); the register file's bank bit is 0 = BL
            regs.wb_en.eq(engine.wb_en), regs.wb_bank.eq(~engine.wb_bank),
            regs.wb_data.eq(engine.wb_data),
            self.phase.eq(engine.phase), self.drv_bl.eq(engine.drv_bl),
            self.drv_sl.eq(engine.drv_sl),
            self.wl_en.eq(engine.wl_en & ~ctrl.neuron_test.replicate(cfg.rows)),
            self.nrn_in.eq(engine.nrn_in), self.out_bl.eq(engine.out_bl),
            self.dac_code.eq(engine.dac_code), self.dec_en.eq(engine.dec_en),
            strb.noise_en.eq(engine.lfsr_en & ~engine.hold),
            self.noise_bits.eq(strb.noise_bits),
        ]

        # --- programming: cell selection from the registers, pulse generator in ctrl
        read_data = Signal(16)
        m.d.comb += [
            prog.bl_values.eq(regs.bl_values), prog.sl_values.eq(regs.sl_values),
            prog.check.eq(0), ctrl.prog_sel_ok.eq(prog.sel_ok),
            self.prog_sel_bl.eq(prog.prog_sel_bl), self.prog_sel_sl.eq(prog.prog_sel_sl),
            self.prog_op.eq(ctrl.prog_op), self.prog_amp.eq(ctrl.prog_amp),
            self.prog_tap.eq(ctrl.prog_tap), self.prog_pulse.eq(ctrl.prog_pulse),
            self.read_data.eq(read_data),
        ]
        with m.If(ctrl.prog_pulse & (ctrl.prog_op == 3)):
            m.d.sync += read_data.eq(self.g_read)

        # --- RPU update: copy the line registers into the translators, then run
        for name, sig in self._rpu(m, cfg, w, ctrl, strb, regs):
            m.d.comb += getattr(self, name).eq(sig)
        return m

    @staticmethod
    def _rpu(m, cfg, w, ctrl, strb, regs):
        n = cfg.str_bits
        lines = cfg.lines
        values = [Signal(w, name=f"line{k}") for k in range(lines)]
        m.d.comb += Cat(*values).eq(Cat(regs.bl_values, regs.sl_values))
        k = Signal(range(lines + 1))
        cur = Array(values)[k]
        mag = cur[: w - 1]
        shift = n - (w - 1)
        scaled = (mag << shift) if shift >= 0 else (mag >> -shift)
        m.d.comb += [
            strb.seed_a.eq(ctrl.seed_a), strb.seed_b.eq(ctrl.seed_b),
            strb.seed_load.eq(ctrl.seed_load), ctrl.rpu_ready.eq(strb.ready),
            strb.gain.eq(ctrl.str_gain), strb.bl.eq(ctrl.rpu_bl),
            strb.wr_addr.eq(k), strb.wr_mag.eq(scaled[:n]),
            strb.wr_sign.eq(~cur[w - 1] & (mag != 0)),
        ]
        with m.FSM(name="rpu_fsm"):
            with m.State("IDLE"):
                with m.If(ctrl.rpu_start):
                    m.d.sync += k.eq(0)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += strb.wr_en.eq(1)
                m.d.sync += k.eq(k + 1)
                with m.If(k == lines - 1):
                    m.next = "START"
            with m.State("START"):
                m.d.comb += strb.start.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(strb.done):
                    m.next = "IDLE"
        m.d.comb += [ctrl.rpu_done.eq(strb.done), ctrl.rpu_error.eq(strb.error)]
        return [("rpu_valid", strb.valid), ("rpu_up", strb.up),
                ("row_pulse", strb.row_pulse), ("col_pulse", strb.col_pulse)]
