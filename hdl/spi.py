"""SPI target for the line registers (docs/model.md#line-registers-and-spi).

SPI mode 0 (CPOL 0, CPHA 0): the host changes MOSI while SCK is low and both sides sample
on the rising SCK edge; the target changes MISO after the falling edge. The target runs on
the system clock: SCK, CS_n and MOSI each pass through a 2-flop synchroniser and SCK/CS_n
edges are found by comparing the synchronised value with its previous one. Sampling the
bus with the system clock (instead of clocking logic with SCK) keeps the core in one clock
domain; the price is a speed limit: **SCK high and low must each last at least 4 system
clock cycles** (SCK <= f_sys / 8, 12.5 MHz at 100 MHz), and CS_n must stay high at least
4 cycles between frames. MISO changes 3 cycles after a falling SCK edge, so it is stable a
cycle before the next rising edge.

Frame (CS_n low, 32 SCK cycles, MSB first)::

    bits 31..24  byte 0 = {rw, 5'b00000, st, bank}  rw 1 = write, 0 = read; bank 0 BL, 1 SL;
                                                   st 1 = status read
    bits 23..16  byte 1 = line (ignored by a status read)
    bits 15..0   bytes 2-3 = data (low W bits used; upper bits ignored on writes, 0 on reads)

The answer to every frame (``error`` and ``done`` pulse once, when CS_n rises):

* a good frame has exactly 32 rising SCK edges, reserved bits 0, no SCK phase shorter than
  the limit below, and is not a status write; it pulses ``done``, anything else pulses
  ``error`` (the core keeps it in its sticky host-error flag, readable in ``status``).
* write: takes effect when CS_n rises after a good frame; nothing is written otherwise.
* read: the register is fetched after the 16th rising edge and shifted out on MISO in bytes
  2-3 (0 in bytes 0-1). Reads have no side effect, so a frame that turns out malformed
  after its 16th bit has fetched data but changed nothing; its ``error`` tells the host not
  to trust the data. A line out of range for its bank reads 0 (and the register file
  pulses its own ``error``).
* status read (``st`` = 1, ``rw`` = 0): bytes 2-3 are {8'b0, ``status``}, the core's status
  byte {clk_gate, pwr_gate, cause[2:0], error, done, busy}, sampled after the 16th bit; a
  host can poll busy/done/error without the error pin.
* too fast: a SCK phase (high or low) seen shorter than 3 system clocks makes the frame
  malformed (``error``, no write). Phases of 3 clocks are still sampled correctly; the
  documented limit keeps a margin.

MISO is 0 between frames and ``miso_oe`` is high only while CS_n is low (from the CS_n pin,
no synchroniser), so several targets can share MISO through a tristate buffer at the pin.

Arbitration with the parallel host port (``p_*``): the SPI access wins. An SPI access lasts
one cycle per frame (the read at bit 16 or the write at the frame's end); in that cycle
``p_ready`` is low and the parallel access is not performed: the parallel master holds its
request until ``p_ready`` is high (a stream-style ready). ``p_rdata`` is the register file's
``rdata``, valid the cycle after an accepted ``p_re``. A register file read takes
``READ_LATENCY`` = 3 edges (hdl/regfile.py), so a parallel read is passed on in its first
clock with ``p_ready`` low and accepted two clocks later (``p_ready`` high then, whatever
SPI does): at most one parallel read every three clocks. The SPI read's edges are hidden
in the frame: the data is in ``tx`` before the first falling SCK edge that shifts it (the
17th), and the MISO bits before the data (16 - W of them) are 0.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import ADDR_BITS, LINE_ADDR_BITS, ConfiguredComponent
from .regfile import READ_LATENCY

__all__ = ["SpiTarget", "FRAME_BITS", "MIN_HALF_PERIOD"]

FRAME_BITS = 32
MIN_HALF_PERIOD = 4
"""Fewest system clock cycles SCK may stay high or low."""


class SpiTarget(ConfiguredComponent):
    """SPI mode 0 target plus a parallel host port, arbitrated onto one register port.

    Ports (W = register width):

    * SPI: ``sck`` In 1, ``cs_n`` In 1 (reset value 1), ``mosi`` In 1, ``miso`` Out 1.
    * Parallel host: ``p_addr`` In 9, ``p_wdata`` In W, ``p_we`` In 1, ``p_re`` In 1,
      ``p_ready`` Out 1, ``p_rdata`` Out W.
    * Register port (to ``LineRegisters``): ``addr`` Out 9, ``wdata`` Out W, ``we`` Out 1,
      ``re`` Out 1, ``rdata`` In W.
    * ``status`` In 8 (the core's status byte, for status reads), ``miso_oe`` Out 1.
    * ``error`` Out 1 (malformed frame, one-cycle pulse), ``done`` Out 1 (good frame).
    """

    def __init__(self, config: CoreConfig):
        # 16 data bits per frame: CoreConfig keeps line_bits <= max(MAX_INPUT_BITS,
        # MAX_OUTPUT_BITS) = 10
        self._take_config(config)
        w = config.line_bits
        super().__init__({
            "sck": In(1),
            "cs_n": In(1, init=1),
            "mosi": In(1),
            "miso": Out(1),
            "miso_oe": Out(1),
            "status": In(8),
            "p_addr": In(ADDR_BITS),
            "p_wdata": In(w),
            "p_we": In(1),
            "p_re": In(1),
            "p_ready": Out(1),
            "p_rdata": Out(w),
            "addr": Out(ADDR_BITS),
            "wdata": Out(w),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(w),
            "error": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        w = self._config.line_bits
        m = Module()

        # --- synchronisers (2 flops) and edge detection (one more flop)
        sck_m, sck_s, sck_d = Signal(), Signal(), Signal()
        cs_m, cs_s, cs_d = Signal(init=1), Signal(init=1), Signal(init=1)
        mosi_m, mosi_s = Signal(), Signal()
        m.d.sync += [
            sck_m.eq(self.sck), sck_s.eq(sck_m), sck_d.eq(sck_s),
            cs_m.eq(self.cs_n), cs_s.eq(cs_m), cs_d.eq(cs_s),
            mosi_m.eq(self.mosi), mosi_s.eq(mosi_m),
        ]
        rise = Signal()
        fall = Signal()
        cs_fall = Signal()
        cs_rise = Signal()
        m.d.comb += [
            rise.eq(sck_s & ~sck_d & ~cs_s),
            fall.eq(~sck_s & sck_d & ~cs_s),
            cs_fall.eq(~cs_s & cs_d),
            cs_rise.eq(cs_s & ~cs_d),
        ]

        # --- SCK phases too short to sample (edges fewer than 3 clocks apart)
        gap = Signal(2)  # clocks since the last SCK edge, saturating
        fast = Signal()  # a phase of this frame was too short
        with m.If(rise | fall):
            m.d.sync += gap.eq(0)
            with m.If(gap < 2):
                m.d.sync += fast.eq(1)
        with m.Elif(gap != 3):
            m.d.sync += gap.eq(gap + 1)
        with m.If(cs_fall):
            m.d.sync += [fast.eq(0), gap.eq(3)]

        # --- receive
        rx = Signal(FRAME_BITS)  # newest bit in bit 0
        st_req = Signal()  # a status read: no register access
        rd_zero = Signal()  # the line read is out of range: the answer is 0
        count = Signal(range(FRAME_BITS + 1))  # rising edges in this frame, saturating
        over = Signal()  # a 33rd rising edge was seen
        tx = Signal(16)
        rd_load = Signal()  # the cycle rdata holds the SPI read
        wr_req = Signal()  # one cycle after a good write frame ended

        with m.If(cs_fall):
            m.d.sync += [count.eq(0), over.eq(0), tx.eq(0)]
        with m.Elif(rise):
            m.d.sync += rx.eq(Cat(mosi_s, rx[:-1]))
            with m.If(count == FRAME_BITS):
                m.d.sync += over.eq(1)
            with m.Else():
                m.d.sync += count.eq(count + 1)
        with m.Elif(fall & (count > 16) & (count < FRAME_BITS)):
            m.d.sync += tx.eq(Cat(0, tx[:-1]))
        with m.Elif(rd_load):
            m.d.sync += tx.eq(Mux(rd_zero, 0, self.rdata))
        with m.Elif(st_req):
            m.d.sync += tx.eq(self.status)
        with m.Elif(cs_rise):
            m.d.sync += tx.eq(0)  # MISO idles at 0 between frames

        # header after 32 bits (rx[31..0])
        wr_rw, wr_res, wr_st = rx[31], rx[26:31], rx[25]
        wr_bank, wr_line, wr_data = rx[24], rx[16:24], rx[:16]

        # the register access and its address are registers, decided at the edge that
        # shifts in the 16th bit (read) or at CS_n's rise (write), so the register file's
        # port sees no logic from the SPI state: read from ``rx_next``, the value rx takes
        rx_next = Cat(mosi_s, rx[:-1])
        rd_rw, rd_res, rd_st, rd_bank = rx_next[15], rx_next[10:15], rx_next[9], rx_next[8]
        spi_re = Signal()  # one cycle after the 16th rising edge of a read frame
        acc_addr = Signal(ADDR_BITS)  # the SPI access's address
        rd_hdr = rise & ~cs_fall & (count == 15) & ~rd_rw & (rd_res == 0)
        m.d.sync += [spi_re.eq(rd_hdr & ~rd_st), st_req.eq(rd_hdr & rd_st)]
        with m.If(rise & ~cs_fall & (count == 15)):
            m.d.sync += acc_addr.eq(Cat(rx_next[:8], rd_bank))
        with m.Elif(cs_rise):
            m.d.sync += acc_addr.eq(Cat(wr_line, wr_bank))

        spi_we = wr_req
        cfg = self._config

        rd_line = acc_addr[:LINE_ADDR_BITS]

        def beyond(n):  # (a line byte cannot exceed 255: no constant comparison then)
            return (rd_line >= n) if n < 256 else C(0, 1)

        out_of_range = Mux(acc_addr[LINE_ADDR_BITS], beyond(cfg.cols), beyond(cfg.rows))
        rd_wait = Signal(READ_LATENCY - 1)  # the register file's read edges (hdl/regfile.py)
        m.d.sync += [rd_wait.eq(Cat(spi_re, rd_wait[:-1])), rd_load.eq(rd_wait[-1]),
                     rd_zero.eq(out_of_range)]

        good = (count == FRAME_BITS) & ~over & (wr_res == 0) & ~(wr_rw & wr_st) & ~fast
        m.d.sync += [
            self.done.eq(cs_rise & good),
            self.error.eq(cs_rise & ~good),
            wr_req.eq(cs_rise & good & wr_rw),
        ]

        # --- arbitration: SPI first
        spi_req = spi_re | spi_we
        # clocks since a parallel read was passed on (0: none pending); accepted at the last
        p_pend = Signal(range(READ_LATENCY))
        p_go = ~spi_req & (p_pend == 0)  # the parallel request reaches the register file
        p_last = p_pend == READ_LATENCY - 1
        with m.If(self.p_re & p_go):
            m.d.sync += p_pend.eq(1)
        with m.Elif(p_last):
            m.d.sync += p_pend.eq(0)
        with m.Elif(p_pend != 0):
            m.d.sync += p_pend.eq(p_pend + 1)
        assert LINE_ADDR_BITS == 8  # the frame's byte 1 is the line
        assert w <= 10  # the SPI read data's top bits are 0 (see the module docstring)
        m.d.comb += [
            self.miso.eq(tx[15]),
            self.miso_oe.eq(~self.cs_n),
            self.addr.eq(Mux(spi_req, acc_addr, self.p_addr)),
            self.wdata.eq(Mux(spi_we, wr_data[:w], self.p_wdata)),
            self.we.eq(Mux(spi_req, spi_we, self.p_we & p_go)),
            self.re.eq(Mux(spi_req, spi_re, self.p_re & p_go)),
            self.p_ready.eq(Mux(self.p_re, p_last, ~spi_req)),
            self.p_rdata.eq(self.rdata),
        ]
        return m
