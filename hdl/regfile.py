"""Row (BL) and column (SL) line register files of one core (docs/model.md#line-registers-and-spi).

Each BL and each SL has one W-bit register, ``W = max(input_bits, output_bits)``
(sign-magnitude: sign at bit W-1, magnitude right-aligned; docs/core_architecture.md). The
registers are reached three ways, as on the chip ("via SPI, or random access with an 8-bit
address decoder, or written internally by the neurons"):

* Host port: ``addr`` is 9 bits, bit 8 the bank (0 = BL rows, 1 = SL cols) and bits 7..0 the
  line, decoded by an 8-bit decoder. ``we`` writes ``wdata`` at the second clock edge (the
  request is registered first, so the lines' write enables are decoded from registers;
  ``we_pending`` is high in the clock between); a read (``re``) takes ``READ_LATENCY`` = 3
  edges (below), so ``rdata`` is valid three cycles after ``re``; it sees every write
  requested before the clock of ``re`` (read before write in the same clock). A line
  index at or beyond the bank size is out of range: the access is ignored (``rdata`` keeps
  its value) and ``error`` pulses for one cycle (the cycle after the access).
  The SPI target (hdl/spi.py) drives this port, arbitrating with a parallel host.
* Write-back port: ``wb_en`` writes the whole bank ``wb_bank`` from ``wb_data`` (line k's
  code in bits k*W..k*W+W-1) at the second clock edge, as the host port does (the codes are
  registered first, ``WRITE_DELAY`` = 1): the MVM engine's READOUT lands at the end of the
  clock after it, the engine's ``done`` clock. The write-back wins over a host write to the
  same bank landing at the same edge (requested in the same clock; the engine owns the
  bank during an MVM).
* Parallel outputs ``bl_values`` / ``sl_values`` (line k in bits k*W..k*W+W-1) feed the
  drivers continuously.
* Load port: ``ld_en`` asks to read the register at ``ld_addr`` (same format as ``addr``)
  into ``ld_data``, ``READ_LATENCY`` edges later as a host read; ``ld_ok`` says the request
  is taken in this clock. It shares the host port's read path and yields to it: ``ld_ok``
  is low in a clock with ``re`` high, and the requester tries again. The RPU update copies
  the lines through it, so the core has one gather of every line register instead of two
  (at preset medium, each 128:1 gather of W-bit lines is about 1,200 LUT4 and, with the
  other, left the design unroutable on an ECP5-85: docs/fpga.md).
* Selection flags ``bl_is_one`` / ``sl_is_one`` (bit k: register k holds 1, i.e. sign 0 and
  magnitude 1, the programming-mode selection of docs/command_set.md): flip-flops written
  in the same clock edge as their register, from the value written (compared when the
  request is registered), so they always equal ``value == 1`` of the register outputs with
  no comparator between the registers and their users (the programming selection check is
  a timing path into the controller). ``lines_we`` is high in every clock in which a line
  register or flag may be about to change: a request (``we``, ``wb_en``) or a pending write.

Each write is registered per group of ``2**LINE_GROUP_BITS`` lines and bank
(``group_copy``): the write-back's enable, and the host write's enable, line, data and
"holds 1" (loaded only by a request to that group), so no single flip-flop drives the
write enable or data of every line; at preset full the host data net to all 512 lines
and the READOUT decode into every line's enable were the longest paths (docs/fpga.md).

Each line has its own write enable ``en & (line == k)`` (within its group) rather than one
big case statement over the address: the case form made the generated Verilog quadratic in
the line count.

The read is a gather of every line register into one place. At preset medium, the address
arbitration, its fanout to a 128:1 multiplexer tree and the tree itself took 15.5 ns in one
clock (docs/fpga.md). So the read is a pipeline: edge 1 registers the address, edge 2 a
word per group of ``2**LINE_GROUP_BITS`` lines (a multiplexer tree near those lines), edge 3 the
word picked from the groups. (A one-hot select flag per line with an AND-OR gather, tried
first, left medium unroutable.)
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import (
    ADDR_BITS,
    LINE_ADDR_BITS,
    LINE_GROUP_BITS,
    ConfiguredComponent,
    group_copy,
    lines,
    mux_tree,
)

__all__ = ["LineRegisters", "ADDR_BITS", "LINE_ADDR_BITS", "READ_LATENCY", "WRITE_DELAY"]

READ_LATENCY = 3
"""Clock edges from a read request (``re``, or ``ld_en`` with ``ld_ok``) to its data."""
WRITE_DELAY = 1
"""Clock edges between a write request's own edge and the edge at which it lands, for the
host port (``we``) and the write-back (``wb_en``) alike."""


class LineRegisters(ConfiguredComponent):
    """BL and SL register files with a host port, a write-back port and parallel outputs.

    Ports (W = ``config.line_bits``):

    * ``addr`` In 9, ``wdata`` In W, ``we`` In 1, ``re`` In 1, ``rdata`` Out W,
      ``error`` Out 1, ``we_pending`` Out 1 (a host write lands at this clock's edge):
      host port; ``lines_we`` Out 1: a line register may change at this or the next edge.
    * ``wb_en`` In 1, ``wb_bank`` In 1 (0 BL, 1 SL), ``wb_data`` In rows*W: write-back.
    * ``ld_en`` In 1, ``ld_addr`` In 9, ``ld_ok`` Out 1, ``ld_data`` Out W: load port.
    * ``bl_values`` Out rows*W, ``sl_values`` Out cols*W: every register, in line order.
    * ``bl_is_one`` Out rows, ``sl_is_one`` Out cols: registered flags, register k == 1.
    """

    def __init__(self, config: CoreConfig):
        # CoreConfig.validate keeps rows and cols within the decoder's 2**LINE_ADDR_BITS
        self._take_config(config)
        w = config.line_bits
        super().__init__({
            "addr": In(ADDR_BITS),
            "wdata": In(w),
            "we": In(1),
            "we_pending": Out(1),
            "lines_we": Out(1),
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

        # Both writes are registered and land WRITE_DELAY edges after their request, so
        # every line's write enable and data come from flip-flops near its group, not from
        # the SPI / parallel arbitration or from the engine's READOUT decode and codes.
        # The write-back: every line's code and its "holds 1" bit, loaded at every edge
        # (no enable: they are read only when a write-back lands) ...
        size = 1 << LINE_GROUP_BITS
        wb_q = [Signal(w, name=f"wb_q{k}") for k in range(cfg.rows)]
        wb_one = Signal(cfg.rows)
        wb_pending = Signal()
        m.d.sync += [q.eq(wb[k]) for k, q in enumerate(wb_q)]
        m.d.sync += [wb_one.eq(Cat(wb[k] == 1 for k in range(cfg.rows))),
                     wb_pending.eq(self.wb_en),
                     self.we_pending.eq(self.we & in_range)]
        m.d.comb += self.lines_we.eq(self.we | self.we_pending | self.wb_en | wb_pending)
        assert WRITE_DELAY == 1  # one register stage above and below
        for b, (name, regs, flags) in enumerate((("bl", bl, self.bl_is_one),
                                                 ("sl", sl, self.sl_is_one))):
            for first in range(0, len(regs), size):
                g = first // size
                # ... and per group of lines and bank (``group_copy``): the write-back
                # enable and the host write (its enable, line, data and "holds 1"), the
                # latter loaded only by a request to this group
                hit = self.we & in_range & (bank == b) \
                    & (line[LINE_GROUP_BITS:] == first >> LINE_GROUP_BITS)
                host_on = group_copy(m, f"host_{name}{g}", hit, 1)
                # the write-back copy's own condition is the group's registered host write
                # (the request decode itself would put the SPI arbitration on its enable)
                wb_on = group_copy(m, f"wb_{name}{g}", self.wb_en & (self.wb_bank == b),
                                   self.wb_en | wb_pending, host_on)
                h_line = group_copy(m, f"host_line_{name}{g}", line[:LINE_GROUP_BITS], hit)
                h_data = group_copy(m, f"host_data_{name}{g}", self.wdata, hit)
                h_one = group_copy(m, f"host_one_{name}{g}", self.wdata == 1, hit)
                for k in range(first, min(first + size, len(regs))):
                    with m.If(wb_on):
                        m.d.sync += [regs[k].eq(wb_q[k]), flags[k].eq(wb_one[k])]
                    with m.Elif(host_on & (h_line == k - first)):
                        m.d.sync += [regs[k].eq(h_data), flags[k].eq(h_one)]

        # one read path for the host port and the load port (the host's wins), three edges
        sel = Signal(ADDR_BITS)
        m.d.comb += [sel.eq(Mux(self.re, self.addr, self.ld_addr)),
                     self.ld_ok.eq(self.ld_en & ~self.re)]
        sel_q = Signal(ADDR_BITS)  # edge 1: the address
        rd_q = Signal(READ_LATENCY - 1)  # a host read in range, per stage
        ld_q = Signal(READ_LATENCY - 1)
        m.d.sync += [sel_q.eq(sel),
                     rd_q.eq(Cat(self.re & in_range, rd_q[:-1])),
                     ld_q.eq(Cat(self.ld_ok, ld_q[:-1]))]
        low = sel_q[:LINE_GROUP_BITS]
        high = Signal(ADDR_BITS - LINE_GROUP_BITS)  # edge 2: the group words and the group index
        m.d.sync += high.eq(sel_q[LINE_GROUP_BITS:])
        size = 1 << LINE_GROUP_BITS
        banks = []
        for name, regs in (("bl", bl), ("sl", sl)):
            groups = []
            for g in range(0, len(regs), size):
                word_g = Signal(w, name=f"rd_{name}{g // size}")
                m.d.sync += word_g.eq(mux_tree(regs[g:g + size], low))
                groups.append(word_g)
            banks.append(mux_tree(groups, high[:LINE_ADDR_BITS - LINE_GROUP_BITS]))
        word = Signal(w)  # edge 3: rdata / ld_data
        m.d.comb += word.eq(Mux(high[-1], banks[1], banks[0]))
        with m.If(rd_q[-1]):
            m.d.sync += self.rdata.eq(word)
        with m.If(ld_q[-1]):
            m.d.sync += self.ld_data.eq(word)
        m.d.sync += self.error.eq((self.we | self.re) & ~in_range)

        m.d.comb += [
            self.bl_values.eq(Cat(*bl)),
            self.sl_values.eq(Cat(*sl)),
        ]
        return m

