"""Row (BL) and column (SL) line register files of one core (docs/model.md#line-registers-and-spi).

Each BL and each SL has one W-bit register, ``W = max(input_bits, output_bits)``
(sign-magnitude: sign at bit W-1, magnitude right-aligned; docs/core_architecture.md). The
registers are reached three ways, as on the chip ("via SPI, or random access with an 8-bit
address decoder, or written internally by the neurons"):

* Host port: ``addr`` is 9 bits, bit 8 the bank (0 = BL rows, 1 = SL cols) and bits 7..0 the
  line, decoded by an 8-bit decoder. ``we`` writes ``wdata`` at the clock edge; a read
  (``re``) takes two edges: the first registers the address decoded to one select flag per
  line, the second loads ``rdata``, so the value is valid two cycles after ``re`` and is the
  register as it stands after the first edge (a write in the clock of ``re`` is seen). A line
  index at or beyond the bank size is out of range: the access is ignored (``rdata`` keeps
  its value) and ``error`` pulses for one cycle (the cycle after the access).
  The SPI target (hdl/spi.py) drives this port, arbitrating with a parallel host.
* Write-back port: ``wb_en`` writes the whole bank ``wb_bank`` from ``wb_data`` (line k's
  code in bits k*W..k*W+W-1) in one cycle: the MVM engine's READOUT. The write-back wins over
  a host write to the same bank in the same cycle (the engine owns the bank during an MVM).
* Parallel outputs ``bl_values`` / ``sl_values`` (line k in bits k*W..k*W+W-1) feed the
  drivers continuously.
* Load port: ``ld_en`` asks to read the register at ``ld_addr`` (same format as ``addr``)
  into ``ld_data``, two edges later as a host read; ``ld_ok`` says the request is taken in
  this clock. It shares the host port's read path and yields to it: ``ld_ok`` is low in a
  clock with ``re`` high, and the requester tries again. The RPU update copies the lines
  through it, so the core has one gather of every line register instead of two (at preset
  medium, each 128:1 gather of W-bit lines is about 1,200 LUT4 and, with the other, left
  the design unroutable on an ECP5-85: docs/fpga.md).
* Selection flags ``bl_is_one`` / ``sl_is_one`` (bit k: register k holds 1, i.e. sign 0 and
  magnitude 1, the programming-mode selection of docs/command_set.md): flip-flops written
  in the same clock edge as their register, from the value written, so they always equal
  ``value == 1`` of the register outputs with no comparator between the registers and their
  users (the programming selection check is a timing path into the controller).

Each line has its own write enable ``en & (line == k)`` rather than one big case statement
over the address: the case form made the generated Verilog quadratic in the line count.

The read is a gather of every line register into one place. At preset medium, the address
arbitration, its fanout to a 128:1 multiplexer tree and the tree itself took 15.5 ns
(docs/fpga.md). So the read address is decoded into one registered select flag per line
(``rsel``, beside its register: no wide select net), and the gather is an AND-OR tree of
the selected lines; the price is the second edge.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import ADDR_BITS, LINE_ADDR_BITS, lines, require_config

__all__ = ["LineRegisters", "ADDR_BITS", "LINE_ADDR_BITS"]


class LineRegisters(wiring.Component):
    """BL and SL register files with a host port, a write-back port and parallel outputs.

    Ports (W = ``config.line_bits``):

    * ``addr`` In 9, ``wdata`` In W, ``we`` In 1, ``re`` In 1, ``rdata`` Out W,
      ``error`` Out 1: host port.
    * ``wb_en`` In 1, ``wb_bank`` In 1 (0 BL, 1 SL), ``wb_data`` In rows*W: write-back.
    * ``ld_en`` In 1, ``ld_addr`` In 9, ``ld_ok`` Out 1, ``ld_data`` Out W: load port.
    * ``bl_values`` Out rows*W, ``sl_values`` Out cols*W: every register, in line order.
    * ``bl_is_one`` Out rows, ``sl_is_one`` Out cols: registered flags, register k == 1.
    """

    def __init__(self, config: CoreConfig):
        # CoreConfig.validate keeps rows and cols within the decoder's 2**LINE_ADDR_BITS
        require_config(self, config)
        self._config = config
        w = config.line_bits
        super().__init__({
            "addr": In(ADDR_BITS),
            "wdata": In(w),
            "we": In(1),
            "re": In(1),
            "rdata": Out(w),
            "error": Out(1),
            "wb_en": In(1),
            "wb_bank": In(1),
            "wb_data": In(config.rows * w),
            "ld_en": In(1),
            "ld_addr": In(ADDR_BITS),
            "ld_ok": Out(1),
            "ld_data": Out(w),
            "bl_values": Out(config.rows * w),
            "sl_values": Out(config.cols * w),
            "bl_is_one": Out(config.rows),
            "sl_is_one": Out(config.cols),
        })

    @property
    def config(self) -> CoreConfig:
        return self._config

    @property
    def width(self) -> int:
        return self._config.line_bits

    def elaborate(self, platform):
        cfg = self._config
        w = self.width
        m = Module()

        bl = [Signal(w, name=f"bl{k}") for k in range(cfg.rows)]
        sl = [Signal(w, name=f"sl{k}") for k in range(cfg.cols)]
        wb = lines(m, self.wb_data, cfg.rows, w, "wb")

        bank = self.addr[LINE_ADDR_BITS]
        line = self.addr[:LINE_ADDR_BITS]
        in_range = Signal()
        m.d.comb += in_range.eq(Mux(bank, line < cfg.cols, line < cfg.rows))

        host_bl = Signal()
        host_sl = Signal()
        wb_bl = Signal()
        wb_sl = Signal()
        m.d.comb += [
            host_bl.eq(self.we & in_range & ~bank),
            host_sl.eq(self.we & in_range & bank),
            wb_bl.eq(self.wb_en & ~self.wb_bank),
            wb_sl.eq(self.wb_en & self.wb_bank),
        ]
        # the flags compare the written value once per source (one comparator per
        # write-back line, one for the host data), not the registers' outputs
        wb_one = Signal(cfg.rows)
        host_one = Signal()
        m.d.comb += [wb_one.eq(Cat(wb[k] == 1 for k in range(cfg.rows))),
                     host_one.eq(self.wdata == 1)]
        for regs, flags, wb_on, host_on in ((bl, self.bl_is_one, wb_bl, host_bl),
                                            (sl, self.sl_is_one, wb_sl, host_sl)):
            for k, reg in enumerate(regs):
                with m.If(wb_on):
                    m.d.sync += [reg.eq(wb[k]), flags[k].eq(wb_one[k])]
                with m.Elif(host_on & (line == k)):
                    m.d.sync += [reg.eq(self.wdata), flags[k].eq(host_one)]

        # one read path for the host port and the load port (the host's wins): edge 1
        # registers the request as one select flag per line, edge 2 the gathered word
        sel = Signal(ADDR_BITS)
        m.d.comb += [sel.eq(Mux(self.re, self.addr, self.ld_addr)),
                     self.ld_ok.eq(self.ld_en & ~self.re)]
        sel_line = sel[:LINE_ADDR_BITS]
        req = self.re | self.ld_en
        terms = []
        for regs, bank_bit in ((bl, 0), (sl, 1)):
            for k, reg in enumerate(regs):
                rsel = Signal(name=f"rsel_{'sl' if bank_bit else 'bl'}{k}")
                m.d.sync += rsel.eq(req & (sel[LINE_ADDR_BITS] == bank_bit) & (sel_line == k))
                terms.append(reg & rsel.replicate(w))
        word = Signal(w)
        m.d.comb += word.eq(_or_tree(terms))
        rd_q = Signal()  # a host read in range was requested in the clock before
        ld_q = Signal()
        m.d.sync += [rd_q.eq(self.re & in_range), ld_q.eq(self.ld_ok)]
        with m.If(rd_q):
            m.d.sync += self.rdata.eq(word)
        with m.If(ld_q):
            m.d.sync += self.ld_data.eq(word)
        m.d.sync += self.error.eq((self.we | self.re) & ~in_range)

        m.d.comb += [
            self.bl_values.eq(Cat(*bl)),
            self.sl_values.eq(Cat(*sl)),
        ]
        return m


def _or_tree(terms):
    """OR of ``terms`` as a balanced tree (depth logarithmic in the count)."""
    level = list(terms)
    while len(level) > 1:
        level = [reduce(or_, level[i:i + 4]) for i in range(0, len(level), 4)]
    return level[0]
