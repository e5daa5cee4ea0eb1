"""cocotb tests of the UART bridge (``cimflow_core_fpga_uart``) driven by the host driver.

``UartLine`` is the host's end of the serial line, written from the 8N1 definition (a low
start bit, 8 data bits LSB first, a high stop bit, each one bit period long) on its own
time base in nanoseconds, not from the RTL's helpers: it drives ``uart_rx`` and samples
``uart_tx`` in the middle of each bit, and it is a transport of ``cimflow.host.Host``. Its
bit period is a few percent off the core's (``DIVISOR`` clocks), as a host's baud clock
is. ``test_host_script`` runs the same ``smoke`` script as ``python -m cimflow.host`` on a
board and cross-checks the outputs and the status over SPI; ``test_uart_errors`` checks
the defined answer to broken frames (stop bit 0, a short frame, reserved bits, an
out-of-range line, a refused command) and that the bridge keeps step afterwards.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Edge, FallingEdge, Timer
from cocotb.utils import get_sim_time

from cimflow.golden.mvm import MvmSettings
from cimflow.hdl.analog_macro import no_clip
from cimflow.host import (
    BOARD_SETTINGS,
    Host,
    HostError,
    Reply,
    Response,
    command_frame,
    read_frame,
    smoke,
    status_frame,
    write_frame,
)

from .commands import Op
from .harness import record, tb_env
from .tb_spi_host import SpiMaster

CLK_NS = 10
DIVISOR = 32
"""Clocks per bit in these tests (the board uses 100: 1 Mbaud at 100 MHz)."""
GAP_BITS = 20  # docs/host_interface.md: idle bit periods that end a partial frame


class UartLine:
    """The host end of an 8N1 line (see the module docstring); ``framing`` counts bytes
    from the core whose stop bit was not high; ``starts`` and ``edges`` are the times (ns)
    of the core's start bits and of every edge on ``uart_tx``."""

    def __init__(self, dut, bit_ns: int):
        self.dut, self.bit = dut, bit_ns
        self.got: list[int] = []
        self.framing = 0
        self.starts: list[int] = []
        self.edges: list[int] = []
        dut.uart_rx.value = 1
        cocotb.start_soon(self._listen())
        cocotb.start_soon(self._watch())

    async def _watch(self) -> None:
        while True:
            await Edge(self.dut.uart_tx)
            self.edges.append(int(get_sim_time("ns")))

    def tx_timing_errors(self, period_ns: int) -> list[int]:
        """Edges inside a byte from the core (start bit to the end of its stop bit) that
        are not a whole number of ``period_ns`` after its start edge (ns after it)."""
        return [t - t0 for t0 in self.starts for t in self.edges
                if t0 < t < t0 + 10 * period_ns and (t - t0) % period_ns]

    async def _listen(self) -> None:
        tx = self.dut.uart_tx
        while True:
            await FallingEdge(tx)  # the start bit begins
            self.starts.append(int(get_sim_time("ns")))
            await Timer(self.bit + self.bit // 2, unit="ns")  # middle of data bit 0
            value = 0
            for i in range(8):
                value |= int(tx.value) << i
                await Timer(self.bit, unit="ns")
            if int(tx.value) != 1:  # middle of the stop bit
                self.framing += 1
            self.got.append(value)

    async def send_byte(self, value: int, stop: int = 1) -> None:
        rx = self.dut.uart_rx
        for level in [0, *((value >> i) & 1 for i in range(8)), stop]:
            rx.value = level
            await Timer(self.bit, unit="ns")
        rx.value = 1

    async def send(self, data: bytes) -> None:
        for b in data:
            await self.send_byte(b)

    async def recv(self, n: int) -> bytes:
        # one request's processing plus a 4-byte answer, after a gap at most, with margin
        for _ in range(4 * (GAP_BITS + 10 * n) + 2000):
            if len(self.got) >= n:
                out, self.got = bytes(self.got[:n]), self.got[n:]
                return out
            await Timer(self.bit, unit="ns")
        raise HostError(f"no answer from the simulated core ({len(self.got)} of {n} bytes)")

    async def answer(self, frame_bytes: bytes | None = None) -> Response:
        """Send raw bytes (if any), then the next 4-byte response, unchecked."""
        if frame_bytes:
            await self.send(frame_bytes)
        return Response.parse(await self.recv(4))


async def start(dut, bit_ns: int):
    """Clock, reset, the board's bias codes; returns the config, a line and a Host."""
    cfg = tb_env().cfg
    cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
    st = MvmSettings.from_config(cfg, **BOARD_SETTINGS)
    for name, v in (("rst", 1), ("sck", 0), ("cs_n", 1), ("mosi", 0), ("cmd_valid", 0),
                    ("cmd_op", 0), ("cmd_arg", 0), ("divisor", DIVISOR),
                    ("d_units", st.d_units), ("inject_units", st.inject_units),
                    ("clip_units", no_clip(cfg)), ("uart_rx", 1)):
        getattr(dut, name).value = v
    await Timer(5 * CLK_NS, unit="ns")
    dut.rst.value = 0
    await Timer(5 * CLK_NS + 3, unit="ns")  # off the clock edges from here on
    line = UartLine(dut, bit_ns)
    return cfg, line, Host(line)


@cocotb.test()
async def test_host_script(dut):
    """The board's smoke script over the simulated UART, then the results over SPI."""
    env = tb_env()
    cfg, line, host = await start(dut, bit_ns=DIVISOR * CLK_NS * 103 // 100)  # +3 %
    t0 = get_sim_time("ns")
    res = await smoke(host, cfg, env.seeds[0][0])
    assert res["match"], f"MVM over UART: got {res['got']}, golden {res['want']}, " \
                         f"status {res['status']:#04x}"
    assert line.framing == 0, "a byte from the core had a stop bit of 0"
    # every bit from the core lasts exactly DIVISOR clocks, the stop bit at least that
    assert len(line.starts) % 4 == 0 and line.starts, "responses are 4 bytes"
    assert set(line.starts) <= set(line.edges), "the edge watcher missed start bits"
    assert not line.tx_timing_errors(DIVISOR * CLK_NS), line.tx_timing_errors(DIVISOR * CLK_NS)
    clocks = (get_sim_time("ns") - t0) // CLK_NS
    spi = SpiMaster(dut, 4 * CLK_NS)  # the documented SPI limit
    via_spi = [await spi.read(1, k) for k in range(len(res["got"]))]
    assert via_spi == res["got"], f"SPI reads {via_spi}, UART read {res['got']}"
    assert await spi.status() == await host.status() == res["status"]
    record("core_fpga_uart.host_script", seeds=[str(env.seeds[0][0])], cycles=clocks,
           cells=res["cells"], pulses=res["pulses"],
           coverage=[{"mode": "uart", "case": "smoke"}])


@cocotb.test()
async def test_uart_errors(dut):
    """Every broken request gets its defined answer and changes nothing; the bridge keeps
    step afterwards."""
    cfg, line, host = await start(dut, bit_ns=DIVISOR * CLK_NS * 97 // 100)  # -3 %
    w_mask = (1 << cfg.line_bits) - 1
    points = []
    await host.write(1, 0, 0x155 & w_mask)
    assert await host.read(1, 0) == 0x155 & w_mask
    await host.command(Op.NOP)  # the sticky done bit set, as after every clear_error below
    base_status = await host.status()
    assert not base_status & 4, f"error flag set after reset: {base_status:#04x}"

    async def unchanged(what):
        assert await host.read(1, 0) == 0x155 & w_mask, f"{what} changed the register"
        assert await host.status() == base_status, f"{what} changed the status"

    # a stop bit of 0 in byte 2 of a write: FRAMING after the line is idle, nothing written
    frame = write_frame(1, 0, 0x0AA)
    for k, b in enumerate(frame):
        await line.send_byte(b, stop=0 if k == 2 else 1)
    r = await line.answer()
    assert r.reply == Reply.FRAMING and r.data == 0, r
    await unchanged("a framing error")
    points.append({"mode": "uart", "case": "framing"})

    # a break (the line held low for three byte times) inside a frame: FRAMING
    await line.send(frame[:1])
    dut.uart_rx.value = 0
    await Timer(30 * line.bit, unit="ns")
    dut.uart_rx.value = 1
    r = await line.answer()
    assert r.reply == Reply.FRAMING, r
    await unchanged("a break")
    points.append({"mode": "uart", "case": "break"})

    # two bytes, then silence: SHORT
    r = await line.answer(frame[:2])
    assert r.reply == Reply.SHORT, r
    await unchanged("a short frame")
    points.append({"mode": "uart", "case": "short"})

    # complete frames the bridge refuses: reserved bit, status write, opcode above 31,
    # a command with the bank bit, a command bit without rw
    for bad in (bytes([0x84, 0, 0, 0xAA]), bytes([0x82, 0, 0, 0xAA]),
                bytes([0xC0, 0x20, 0, 0]), bytes([0xC1, int(Op.NOP), 0, 0]),
                bytes([0x40, int(Op.NOP), 0, 0])):
        r = await line.answer(bad)
        assert r.reply == Reply.BAD and r.status == base_status, (bad.hex(), r)
        await unchanged(f"frame {bad.hex()}")
    points.append({"mode": "uart", "case": "bad frame"})

    # a line out of range reads 0 and sets the sticky error flag, as over SPI
    if cfg.rows < 256:
        r = await line.answer(read_frame(0, cfg.rows))
        assert r.reply == Reply.OK and r.data == 0 and r.error, r
        await host.clear_error()
        points.append({"mode": "uart", "case": "out of range"})

    # a refused command: OK frame, the status says why; the driver raises with the cause
    r = await line.answer(command_frame(0x0D))
    assert r.reply == Reply.OK and r.error and r.cause == "UNKNOWN_OPCODE", r
    await host.clear_error()
    try:
        await host.command(Op.SET_IN_LEN, 0)
    except HostError as e:
        assert "BAD_ARG" in str(e), e
    else:
        raise AssertionError("SET_IN_LEN 0 was not refused")
    await host.clear_error()
    points.append({"mode": "uart", "case": "refused command"})

    # a host 4 % slow or fast (near the documented limit, 4.3 % at 32 clocks per bit)
    nominal = line.bit
    for bit_ns in (DIVISOR * CLK_NS * 104 // 100, DIVISOR * CLK_NS * 96 // 100):
        line.bit = bit_ns
        await host.write(1, 1, 0x0F3 & w_mask)
        assert await host.read(1, 1) == 0x0F3 & w_mask, f"bit period {bit_ns} ns"
        await host.write(1, 1, 0)
    line.bit = nominal
    points.append({"mode": "uart", "case": "rate 4 % off"})

    # the status read answers {0, status} in the data too; the bridge is in step
    r = await line.answer(status_frame())
    assert r.reply == Reply.OK and r.data == r.status == base_status, r
    await unchanged("the error cases")
    assert line.framing == 0, "a byte from the core had a stop bit of 0"
    record("core_fpga_uart.uart_errors", seeds=["-"], cycles=int(get_sim_time("ns")) // CLK_NS,
           coverage=points)
