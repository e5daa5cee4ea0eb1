"""UART host bridge: 8N1 serial requests onto the core's register port and command port.

The byte protocol is described in docs/host_interface.md; in short:

* Line: 8 data bits, LSB first, no parity, 1 stop bit; the bit period is ``divisor``
  system clocks (an input port: a board ties it to a constant, a testbench sets it).
  ``divisor`` must be at least :data:`MIN_DIVISOR`. The receiver samples each bit
  ``divisor // 2`` + k ``divisor`` (+ 1) clocks after it sees the start edge through a
  2-flop synchroniser, so it tolerates a host bit period off by up to about
  (divisor / 2 - 3) / (9.5 divisor): 4.9 % at ``divisor`` = 100.
* Request: 4 bytes, the SPI target's frame (hdl/spi.py) sent MSB first, plus one frame
  kind the SPI target refuses (byte 0 bit 6, reserved there)::

      byte 0 = {rw, cmd, 4'b0000, st, bank}   byte 1 = line / opcode   bytes 2-3 = data

  register write ``{1,0,0000,0,bank}``, register read ``{0,0,0000,0,bank}``, status read
  ``{0,0,0000,1,x}`` (line ignored) and command ``0xC0`` with byte 1 = opcode (0-31) and
  bytes 2-3 = the command argument.
* Response: 4 bytes ``{reply, status, data[15:8], data[7:0]}`` to every request and to
  every broken one. ``reply`` is a :class:`Reply` code; ``status`` is the core's status
  byte sampled after the request took effect (a command's: after ``busy`` fell again);
  data is the register (0 for a line out of range, which also sets the core's sticky
  host-error flag, as over SPI), ``{8'b0, status}`` for a status read, the core's
  ``read_data`` (the last PROGRAM READ) for a command, 0 otherwise.
* Errors: a byte whose stop bit is 0 makes the frame FRAMING, a frame whose next byte
  does not start within :data:`GAP_BITS` bit periods is SHORT; both are answered once the
  line has been idle (high) for :data:`GAP_BITS` bit periods, so the rest of a broken
  frame is swallowed and the next request starts in step. A complete frame with a
  reserved bit set, a status write, a command with ``st``/``bank`` set or an opcode byte
  above 31 is BAD. A frame that is not OK does nothing.
* One request at a time: bytes that arrive before the bridge starts sending a response's
  last byte are dropped (the frame they belong to then ends SHORT).

The bridge uses the core's parallel register port (``p_*``, SPI wins arbitration there)
and issues commands on the command port (``UartCoreFpga`` gives it priority over the
external command port in the same cycle).
"""

from __future__ import annotations

from enum import IntEnum

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .analog_macro import clip_bits
from .controller import COMMAND_LATENCY
from .core_fpga import G_BITS, NeurramCoreFpga
from .interfaces import ADDR_BITS, ARG_BITS, OP_BITS, ConfiguredComponent

__all__ = ["UartRx", "UartTx", "UartBridge", "UartCoreFpga", "Reply", "FRAME_BYTES",
           "DIVISOR_BITS", "MIN_DIVISOR", "GAP_BITS"]

FRAME_BYTES = 4
DIVISOR_BITS = 16
MIN_DIVISOR = 16
"""Fewest system clocks per bit."""
GAP_BITS = 20
"""Idle bit periods that end a partial frame (and precede the answer to a broken one)."""
_SETTLE = 3  # clocks from a register access to its error flag in the status byte


class Reply(IntEnum):
    """Response byte 0."""

    OK = 0
    FRAMING = 1  # a stop bit was 0
    SHORT = 2  # fewer than 4 bytes before a gap
    BAD = 3  # reserved bit, status write or opcode byte above 31: nothing done


class UartRx(wiring.Component):
    """8N1 receiver: ``valid`` pulses with ``data`` after a good stop bit, ``ferr`` after
    a stop bit of 0 (the receiver then waits for the line to go high). ``idle``: no byte
    in progress and the line high."""

    def __init__(self):
        super().__init__({"rx": In(1, init=1), "divisor": In(DIVISOR_BITS),
                          "data": Out(8), "valid": Out(1), "ferr": Out(1), "idle": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx_m, rx_s = Signal(init=1), Signal(init=1)
        m.d.sync += [rx_m.eq(self.rx), rx_s.eq(rx_m), self.valid.eq(0), self.ferr.eq(0)]
        cnt = Signal(DIVISOR_BITS)
        nbit = Signal(range(8))
        sr = Signal(8)
        at = cnt == 0
        with m.If(~at):
            m.d.sync += cnt.eq(cnt - 1)
        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(rx_s)
                with m.If(~rx_s):
                    m.d.sync += cnt.eq(self.divisor >> 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(at):
                    m.d.sync += [cnt.eq(self.divisor - 1), nbit.eq(0)]
                    with m.If(rx_s):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(at):
                    m.d.sync += [sr.eq(Cat(sr[1:], rx_s)), cnt.eq(self.divisor - 1),
                                 nbit.eq(nbit + 1)]
                    with m.If(nbit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(at):
                    with m.If(rx_s):
                        m.d.sync += [self.valid.eq(1), self.data.eq(sr)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.ferr.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx_s):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: ``start`` while ``ready`` sends ``data``; ``tx`` idles high."""

    def __init__(self):
        super().__init__({"divisor": In(DIVISOR_BITS), "data": In(8), "start": In(1),
                          "ready": Out(1), "tx": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sr = Signal(10, init=0x3FF)  # bit 0 is on the line
        left = Signal(range(11))  # bits still to send
        cnt = Signal(DIVISOR_BITS)
        m.d.comb += [self.ready.eq(left == 0), self.tx.eq(sr[0])]
        with m.If(self.ready & self.start):
            m.d.sync += [sr.eq(Cat(C(0, 1), self.data, C(1, 1))), left.eq(10),
                         cnt.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(cnt == 0):
                m.d.sync += [sr.eq(Cat(sr[1:], C(1, 1))), left.eq(left - 1),
                             cnt.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += cnt.eq(cnt - 1)
        return m


class UartBridge(ConfiguredComponent):
    """Requests from ``rx`` onto the register port and command port, responses on ``tx``.

    Ports (W = register width): ``rx`` In 1, ``tx`` Out 1, ``divisor`` In 16; register
    port ``p_addr`` Out 9, ``p_wdata`` Out W, ``p_we``/``p_re`` Out 1, ``p_ready`` In 1,
    ``p_rdata`` In W; command port ``cmd_valid`` Out 1, ``cmd_op`` Out 5, ``cmd_arg``
    Out 16; ``busy`` In 1, ``status`` In 8, ``read_data`` In 16.
    """

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        w = config.line_bits
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1), "divisor": In(DIVISOR_BITS),
            "p_addr": Out(ADDR_BITS), "p_wdata": Out(w), "p_we": Out(1), "p_re": Out(1),
            "p_ready": In(1), "p_rdata": In(w),
            "cmd_valid": Out(1), "cmd_op": Out(OP_BITS), "cmd_arg": Out(ARG_BITS),
            "busy": In(1), "status": In(8), "read_data": In(16),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        rxu = m.submodules.rx = UartRx()
        txu = m.submodules.tx = UartTx()
        m.d.comb += [rxu.rx.eq(self.rx), self.tx.eq(txu.tx),
                     rxu.divisor.eq(self.divisor), txu.divisor.eq(self.divisor)]

        # --- idle-line timer: bit periods since the receiver was last busy (saturating)
        tick = Signal(DIVISOR_BITS)
        gap = Signal(range(GAP_BITS + 1))
        with m.If(~rxu.idle):
            m.d.sync += [gap.eq(0), tick.eq(self.divisor - 1)]
        with m.Elif(tick == 0):
            m.d.sync += tick.eq(self.divisor - 1)
            with m.If(gap != GAP_BITS):
                m.d.sync += gap.eq(gap + 1)
        with m.Else():
            m.d.sync += tick.eq(tick - 1)

        # --- the frame (byte 0 in the top byte) and its decode
        buf = Signal(8 * FRAME_BYTES)
        nbytes = Signal(range(FRAME_BYTES))
        ferr_seen = Signal()
        b0, line, data = buf[24:32], buf[16:24], buf[:16]
        rw, cmd, res, st, bank = b0[7], b0[6], b0[2:6], b0[1], b0[0]
        is_write = rw & ~cmd & (res == 0) & ~st
        is_read = ~rw & ~cmd & (res == 0) & ~st
        is_status = ~rw & ~cmd & (res == 0) & st
        is_cmd = rw & cmd & (res == 0) & ~st & ~bank & (line[5:] == 0)

        def beyond(n):  # as the SPI target: a line byte cannot exceed 255
            return (line >= n) if n < 256 else C(0, 1)

        in_range = ~Mux(bank, beyond(cfg.cols), beyond(cfg.rows))

        reply = Signal(2)
        rdata = Signal(16)  # a register read's data
        kind = Signal(2)  # what the response's data is: 0 zero, 1 rdata, 2 status, 3 read_data
        settle = Signal(range(_SETTLE + 1))
        out = Signal(32)  # the response, byte 0 on top
        sent = Signal(range(FRAME_BYTES))
        lag = Signal(range(COMMAND_LATENCY + 1))  # clocks in ISSUED

        # cmd_valid is a register, high in the COMMAND state (set on entering it): no state
        # decode between the bridge's FSM and the core's command decoder
        cmd_v = Signal()
        m.d.sync += cmd_v.eq(0)
        m.d.comb += [
            self.p_addr.eq(Cat(line, bank)), self.p_wdata.eq(data),
            self.cmd_op.eq(line[:5]), self.cmd_arg.eq(data), self.cmd_valid.eq(cmd_v),
        ]
        with m.FSM(name="bridge"):
            with m.State("RECV"):
                with m.If(rxu.valid):
                    m.d.sync += [buf.eq(Cat(rxu.data, buf[:-8])), nbytes.eq(nbytes + 1)]
                    with m.If(nbytes == FRAME_BYTES - 1):
                        m.d.sync += nbytes.eq(0)
                        with m.If(~ferr_seen):
                            m.next = "DECODE"
                with m.If(rxu.ferr):
                    m.d.sync += ferr_seen.eq(1)
                with m.If(((nbytes != 0) | ferr_seen) & (gap == GAP_BITS)):
                    m.d.sync += [reply.eq(Mux(ferr_seen, Reply.FRAMING, Reply.SHORT)),
                                 kind.eq(0), nbytes.eq(0), ferr_seen.eq(0),
                                 settle.eq(_SETTLE)]
                    m.next = "SETTLE"
            with m.State("DECODE"):
                m.d.sync += [reply.eq(Reply.OK), settle.eq(_SETTLE)]
                with m.If(is_write | is_read):
                    m.d.sync += kind.eq(Mux(is_read, 1, 0))
                    m.next = "ACCESS"
                with m.Elif(is_status):
                    m.d.sync += kind.eq(2)
                    m.next = "SETTLE"
                with m.Elif(is_cmd):
                    m.d.sync += [kind.eq(3), cmd_v.eq(1)]
                    m.next = "COMMAND"
                with m.Else():
                    m.d.sync += [reply.eq(Reply.BAD), kind.eq(0)]
                    m.next = "SETTLE"
            with m.State("ACCESS"):  # held until the register port accepts (SPI first)
                m.d.comb += [self.p_we.eq(is_write), self.p_re.eq(is_read)]
                with m.If(self.p_ready):
                    m.next = "LATCH"
            with m.State("LATCH"):  # p_rdata holds the read now
                m.d.sync += rdata.eq(Mux(in_range, self.p_rdata, 0))
                m.next = "SETTLE"
            with m.State("COMMAND"):  # cmd_valid is high in this state
                m.d.sync += lag.eq(0)
                m.next = "ISSUED"
            with m.State("ISSUED"):  # the core registers the command, then decides it
                # (COMMAND_LATENCY edges); busy rises in the cycle after the decision
                m.d.sync += lag.eq(lag + 1)
                with m.If(lag == COMMAND_LATENCY):
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.busy):
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                with m.If(settle != 0):
                    m.d.sync += settle.eq(settle - 1)
                with m.Else():
                    dat = Mux(kind == 1, rdata, Mux(kind == 2, self.status,
                                                    Mux(kind == 3, self.read_data, 0)))
                    m.d.sync += [out.eq(Cat(dat[:16], self.status, reply, C(0, 6))),
                                 sent.eq(0)]
                    m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [txu.data.eq(out[24:]), txu.start.eq(1)]
                with m.If(txu.ready):
                    m.d.sync += [out.eq(Cat(C(0, 8), out[:-8])), sent.eq(sent + 1)]
                    with m.If(sent == FRAME_BYTES - 1):
                        m.d.sync += [nbytes.eq(0), ferr_seen.eq(0)]
                        m.next = "RECV"
        return m


class UartCoreFpga(ConfiguredComponent):
    """``NeurramCoreFpga`` with a ``UartBridge`` on its register and command ports.

    Ports: ``uart_rx`` In 1 (from the host), ``uart_tx`` Out 1, ``divisor`` In 16; the
    core's SPI pins (``sck``, ``cs_n``, ``mosi``, ``miso``, ``miso_oe``); an external
    command port (``cmd_valid``, ``cmd_op``, ``cmd_arg``: a command the bridge issues in
    the same cycle wins, the external one is lost; either reaches the core one clock
    later, through a register) and the core's ``busy``, ``done``,
    ``error``, ``status``, ``read_data``; the bias codes ``d_units``, ``inject_units``,
    ``clip_units`` and the RPU step ``rpu_step`` (as ``NeurramCoreFpga``). The parallel
    register port belongs to the bridge.
    """

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        cb = clip_bits(config)  # the bias code widths of NeurramCoreFpga
        super().__init__({
            "uart_rx": In(1, init=1), "uart_tx": Out(1), "divisor": In(DIVISOR_BITS),
            "sck": In(1), "cs_n": In(1, init=1), "mosi": In(1), "miso": Out(1),
            "miso_oe": Out(1),
            "cmd_valid": In(1), "cmd_op": In(OP_BITS), "cmd_arg": In(ARG_BITS),
            "busy": Out(1), "done": Out(1), "error": Out(1), "status": Out(8),
            "read_data": Out(16),
            "d_units": In(cb - 1), "inject_units": In(cb),
            "clip_units": In(cb, init=(1 << cb) - 1),
            "rpu_step": In(G_BITS, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        core = m.submodules.core = NeurramCoreFpga(self._config)
        br = m.submodules.bridge = UartBridge(self._config)
        m.d.comb += [
            br.rx.eq(self.uart_rx), self.uart_tx.eq(br.tx), br.divisor.eq(self.divisor),
            core.p_addr.eq(br.p_addr), core.p_wdata.eq(br.p_wdata), core.p_we.eq(br.p_we),
            core.p_re.eq(br.p_re), br.p_ready.eq(core.p_ready), br.p_rdata.eq(core.p_rdata),
            br.busy.eq(core.busy), br.status.eq(core.status), br.read_data.eq(core.read_data),
        ]
        # the merged command is registered (no merge mux in front of the core's command
        # decode; the external port's pins are sampled by a flip-flop): the core sees a
        # command one clock after it is issued, which the bridge's ISSUED state covers
        m.d.sync += [
            core.cmd_valid.eq(br.cmd_valid | self.cmd_valid),
            core.cmd_op.eq(Mux(br.cmd_valid, br.cmd_op, self.cmd_op)),
            core.cmd_arg.eq(Mux(br.cmd_valid, br.cmd_arg, self.cmd_arg)),
        ]
        for name in ("sck", "cs_n", "mosi", "d_units", "inject_units", "clip_units",
                     "rpu_step"):
            m.d.comb += getattr(core, name).eq(getattr(self, name))
        for name in ("miso", "miso_oe", "busy", "done", "error", "status", "read_data"):
            m.d.comb += getattr(self, name).eq(getattr(core, name))
        assert OP_BITS <= 5  # the opcode byte carries a 5-bit opcode
        return m
