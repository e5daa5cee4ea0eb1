"""Board tops: ``NeurramCoreFpga`` on a real FPGA board, with its clock, reset and pins.

``BOARDS`` names every board ``cimflow fpga --board`` knows. A board top owns the ``sync``
domain: a PLL makes the core clock from the board oscillator, and the reset (PLL not
locked, or the reset button) reaches the core through a reset synchroniser, so it is
released on a core clock edge. Its ports are the board's pins, each placed by the
board's pin constraint file (:func:`lpf`), which is generated from the same table as the
ports so the two cannot disagree.

``Ulx3s85F``: Radiona ULX3S with the LFE5U-85F (CABGA381, speed grade 6), 25 MHz oscillator.

* core clock: EHXPLLL, 25 MHz x 4 = 100 MHz (VCO 600 MHz; the divider values are those
  ``ecppll -i 25 -o 100`` computes).
* reset: FIRE1 (active high) or PLL not locked.
* host interface on the 56-pin GPIO header (J1/J2, 3.3 V): the SPI target on GP0/GN0/GP1/GN1
  (SCK, CS_n, MOSI, MISO) and the parallel command port with its status on the following
  pins in the order of :data:`ULX3S_HEADER_SIGNALS` (GP2, GN2, GP3, ...), for an external
  controller. GP14-GP17 / GN14-GN17 also reach the on-board ADC's inputs (high impedance).
* UART bridge (hdl/uart.py, docs/host_interface.md) on the FT231X USB-UART of the USB port
  US1: ``ftdi_txd`` (M1, the FTDI's TXD: FPGA input) and ``ftdi_rxd`` (L4, the FTDI's RXD:
  FPGA output), 8N1 at ``baud`` (default 1 Mbaud: 100 clocks per bit). A command from the
  bridge wins over one from the header in the same cycle.
* LEDs: 0 busy, 1 done (the sticky status bit), 2 error, 7 PLL locked.
* analog bias codes (``d_units``, ``inject_units``, ``clip_units``) and the RPU step per
  coincidence (``rpu_step``, conductance codes) are constants of the top, chosen at
  generation time.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .analog_macro import clip_bits, no_clip
from .core_fpga import G_BITS
from .interfaces import ConfiguredComponent
from .uart import MIN_DIVISOR, UartCoreFpga

__all__ = ["BOARDS", "BARE_TOP_LPF", "Ulx3s85F", "ULX3S_GP", "ULX3S_GN", "ULX3S_HEADER_SIGNALS",
           "lpf"]

# ULX3S v2/v3 ball of each GPIO header pin GP0..GP27 / GN0..GN27 (the board's schematic)
ULX3S_GP = ("B11 A10 A9 B9 A7 C8 C6 A6 A4 A2 C4 F4 G3 H4 U18 N17 N16 L16 H18 F17 D18 C18 B15 "
            "B17 C16 D14 B13 D13").split()
ULX3S_GN = ("C11 A11 B10 C10 A8 B8 C7 B6 A5 B1 B4 E3 F3 G5 U17 P16 M17 L17 H17 G18 E17 D17 C15 "
            "C17 D16 E14 C13 E13").split()
_ULX3S_LED = "B2 C2 C1 D2 D1 E2 E1 H3".split()
_ULX3S_CLK = "G2"
_ULX3S_FIRE1 = "R1"
_ULX3S_FTDI = {"ftdi_txd": "M1", "ftdi_rxd": "L4"}  # named as the FT231X's pins: txd is its output

ULX3S_HEADER_SIGNALS = (("cmd_valid", 1), ("cmd_op", 5), ("cmd_arg", 16), ("busy", 1),
                        ("done", 1), ("error", 1), ("status", 8), ("read_data", 16))
"""The command port and its status on the header after the SPI pins, in pin order."""


def _header_sites() -> list[str]:
    return [site for pair in zip(ULX3S_GP, ULX3S_GN, strict=True) for site in pair]


class Ulx3s85F(ConfiguredComponent):
    """``NeurramCoreFpga`` on a ULX3S 85F (see the module docstring)."""

    PART = {"device": "85k", "package": "CABGA381"}
    OSC_MHZ = 25
    CORE_MHZ = 100

    def __init__(self, config: CoreConfig, *, d_units: int = 1 << 23, inject_units: int = 0,
                 clip_units: int | None = None, rpu_step: int = 1, baud: int = 1_000_000):
        self._take_config(config)
        divisor = round(self.CORE_MHZ * 1e6 / baud) if baud > 0 else 0
        if divisor < MIN_DIVISOR or abs(self.CORE_MHZ * 1e6 / divisor / baud - 1) > 0.01:
            self._MustUse__silence = True
            raise ValueError(f"baud = {baud} is not reachable from {self.CORE_MHZ} MHz within "
                             f"1 % with at least {MIN_DIVISOR} clocks per bit")
        self._divisor = divisor
        cb = clip_bits(config)
        clip_units = no_clip(config) if clip_units is None else clip_units
        for name, v, bits in (("d_units", d_units, cb - 1), ("inject_units", inject_units, cb),
                              ("clip_units", clip_units, cb)):
            if not 0 <= v < 1 << bits:
                self._MustUse__silence = True  # refused, not forgotten: no UnusedElaboratable
                raise ValueError(f"{name} = {v} is out of range [0, 2**{bits})")
        if not 0 <= rpu_step < 1 << G_BITS:
            self._MustUse__silence = True
            raise ValueError(f"rpu_step = {rpu_step} is out of range [0, 2**{G_BITS})")
        self._rpu_step = rpu_step
        self._bias = (d_units, inject_units, clip_units)
        ports = {"clk_25mhz": In(1), "btn_fire1": In(1), "led": Out(8),
                 "spi_sck": In(1), "spi_cs_n": In(1, init=1), "spi_mosi": In(1),
                 "spi_miso": Out(1), "ftdi_txd": In(1, init=1), "ftdi_rxd": Out(1)}
        for name, width in ULX3S_HEADER_SIGNALS:
            flow = In if name.startswith("cmd") else Out
            ports[f"hdr_{name}"] = flow(width)
        assert 4 + sum(w for _, w in ULX3S_HEADER_SIGNALS) <= len(_header_sites())
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(self.OSC_MHZ), a_FREQUENCY_PIN_CLKOP=str(self.CORE_MHZ),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=1, p_CLKOP_DIV=6, p_CLKOP_CPHASE=2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=4,
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_25mhz, o_CLKOP=ClockSignal("sync"),
            i_CLKFB=ClockSignal("sync"), i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
            i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        m.submodules.rst_sync = ResetSynchronizer(~locked | self.btn_fire1, domain="sync")

        core = m.submodules.core = UartCoreFpga(self._config)
        d_units, inject_units, clip_units = self._bias
        m.d.comb += [
            core.uart_rx.eq(self.ftdi_txd), self.ftdi_rxd.eq(core.uart_tx),
            core.divisor.eq(self._divisor),
            core.sck.eq(self.spi_sck), core.cs_n.eq(self.spi_cs_n),
            core.mosi.eq(self.spi_mosi), self.spi_miso.eq(core.miso),
            core.cmd_valid.eq(self.hdr_cmd_valid), core.cmd_op.eq(self.hdr_cmd_op),
            core.cmd_arg.eq(self.hdr_cmd_arg),
            self.hdr_busy.eq(core.busy), self.hdr_done.eq(core.done),
            self.hdr_error.eq(core.error), self.hdr_status.eq(core.status),
            self.hdr_read_data.eq(core.read_data),
            core.d_units.eq(d_units),
            core.inject_units.eq(inject_units),
            core.clip_units.eq(clip_units),
            core.rpu_step.eq(self._rpu_step),
            self.led.eq(Const(0, 8) | core.busy | (core.status[1] << 1) | (core.error << 2)
                        | (locked << 7)),
        ]
        return m


def lpf(board: str = "ulx3s-85f") -> str:
    """The pin constraint file of a board top: one LOCATE and IOBUF per port bit."""
    if board != "ulx3s-85f":
        raise ValueError(f"unknown board {board!r}; choose one of: {', '.join(BOARDS)}")
    lines = ["# ULX3S 85F pins of cimflow's board top (generated by cimflow.hdl.boards)",
             "BLOCK RESETPATHS;", "BLOCK ASYNCPATHS;",
             f'LOCATE COMP "clk_25mhz" SITE "{_ULX3S_CLK}";',
             'IOBUF PORT "clk_25mhz" PULLMODE=NONE IO_TYPE=LVCMOS33;',
             'FREQUENCY PORT "clk_25mhz" 25 MHZ;',
             f'LOCATE COMP "btn_fire1" SITE "{_ULX3S_FIRE1}";',
             'IOBUF PORT "btn_fire1" PULLMODE=DOWN IO_TYPE=LVCMOS33;']
    for name, site in _ULX3S_FTDI.items():
        drive = " DRIVE=4" if name == "ftdi_rxd" else ""
        lines += [f'LOCATE COMP "{name}" SITE "{site}";',
                  f'IOBUF PORT "{name}" PULLMODE=UP IO_TYPE=LVCMOS33{drive};']
    for k, site in enumerate(_ULX3S_LED):
        lines += [f'LOCATE COMP "led[{k}]" SITE "{site}";',
                  f'IOBUF PORT "led[{k}]" PULLMODE=NONE IO_TYPE=LVCMOS33 DRIVE=4;']
    sites = iter(_header_sites())
    names = ["spi_sck", "spi_cs_n", "spi_mosi", "spi_miso"]
    for name, width in ULX3S_HEADER_SIGNALS:
        names += [f"hdr_{name}"] if width == 1 else [f"hdr_{name}[{i}]" for i in range(width)]
    for name in names:
        pull = "UP" if name == "spi_cs_n" else "DOWN"
        lines += [f'LOCATE COMP "{name}" SITE "{next(sites)}";',
                  f'IOBUF PORT "{name}" PULLMODE={pull} IO_TYPE=LVCMOS33 DRIVE=4;']
    return "\n".join(lines) + "\n"


BARE_TOP_LPF = (f'LOCATE COMP "clk" SITE "{_ULX3S_CLK}";\n'
                'IOBUF PORT "clk" IO_TYPE=LVCMOS33;\n')
"""Pins of a bare (timing-only) top on the CABGA381: ``clk`` on a clock input pin (the
ULX3S oscillator's), the rest left to the placer. Unpinned, ``clk`` once landed on a pad
from which router2 could not reach the global clock buffer (docs/fpga.md)."""

BOARDS = {"ulx3s-85f": Ulx3s85F}
"""Board name (``cimflow fpga --board``) -> top component."""
