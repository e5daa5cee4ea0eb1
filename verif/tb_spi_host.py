"""cocotb test of the core's SPI target as a standard SPI master sees it (``cimflow_core``).

``SpiMaster`` is written from the frame description of docs/core_architecture.md (mode 0,
MSB first, 32-bit frames), independently of the RTL and of ``CoreTb.spi_frame``: it runs on
its own time base (nanoseconds, SCK edges off the system clock's edges), as a board's SPI
controller would. The test checks, at the documented SCK limit (f_sys / 8) and at twice it:
writes and reads of every line, the status read, the 0 answer for an out-of-range line,
MISO released (``miso_oe`` low, MISO 0) while CS_n is high, and that a too-fast or short
frame is refused with the error flag, visible over SPI itself.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import Timer

from .harness import record, tb_env
from .tb_core import CoreTb

CLK_NS = 10
STATUS_ERROR = 1 << 2  # status byte: {clk_gate, pwr_gate, cause[2:0], error, done, busy}


class SpiMaster:
    """Mode 0 master: MOSI set while SCK is low, both sides sample on the rising edge."""

    def __init__(self, dut, half_ns: float):
        self.dut, self.half = dut, half_ns

    async def frame(self, bits: list[int]) -> list[int]:
        d = self.dut
        d.cs_n.value = 0
        await Timer(self.half, unit="ns")
        got = []
        for b in bits:
            d.mosi.value = b
            await Timer(self.half, unit="ns")
            d.sck.value = 1
            got.append(int(d.miso.value))  # the target set MISO after the last falling edge
            await Timer(self.half, unit="ns")
            d.sck.value = 0
        await Timer(self.half, unit="ns")
        d.cs_n.value = 1
        await Timer(8 * CLK_NS, unit="ns")  # CS_n high between frames
        return got

    @staticmethod
    def _header(rw: int, st: int, bank: int, line: int) -> list[int]:
        byte0 = rw << 7 | st << 1 | bank
        return [(byte0 >> i) & 1 for i in range(7, -1, -1)] + \
               [(line >> i) & 1 for i in range(7, -1, -1)]

    async def write(self, bank: int, line: int, value: int) -> None:
        await self.frame(self._header(1, 0, bank, line)
                         + [(value >> i) & 1 for i in range(15, -1, -1)])

    async def read(self, bank: int, line: int) -> int:
        got = await self.frame(self._header(0, 0, bank, line) + [0] * 16)
        return int("".join(map(str, got[16:])), 2)

    async def status(self) -> int:
        got = await self.frame(self._header(0, 1, 0, 0) + [0] * 16)
        return int("".join(map(str, got[16:])), 2)


@cocotb.test()
async def test_spi_host(dut):
    """A standard SPI master at the documented clock limit and above it."""
    env = tb_env()
    cfg = env.cfg
    tb = CoreTb(dut, cfg)
    await tb.start()
    await Timer(3, unit="ns")  # off the clock edges from here on
    rng = np.random.default_rng(env.seeds[0][0])
    w = tb.w
    points = []

    async def clear_error():
        await tb.tick()  # commands are driven from a falling clock edge
        await tb.cmd("CLEAR_ERROR")
        await tb.tick()
        assert int(dut.error.value) == 0
        await Timer(3, unit="ns")

    ok = SpiMaster(dut, 4 * CLK_NS)  # SCK = f_sys / 8, the documented limit
    assert int(dut.miso_oe.value) == 0 and int(dut.miso.value) == 0, "MISO driven, CS_n high"
    for bank, n in ((0, cfg.rows), (1, cfg.cols)):
        values = rng.integers(0, 1 << w, n)
        for line, v in enumerate(values):
            await ok.write(bank, line, int(v))
        got = [await ok.read(bank, line) for line in range(n)]
        assert got == values.tolist(), f"bank {bank}: read {got}, wrote {values.tolist()}"
    st = await ok.status()
    assert st == int(dut.status.value) and not st & STATUS_ERROR, f"status {st:#x}"
    assert int(dut.miso_oe.value) == 0, "MISO not released after the frames"
    points.append({"mode": "spi", "case": "limit"})

    if cfg.rows < 256:  # an out-of-range line answers 0 (and sets the error flag)
        assert await ok.read(0, cfg.rows) == 0
        assert await ok.status() & STATUS_ERROR
        await clear_error()
        points.append({"mode": "spi", "case": "out of range"})

    fast = SpiMaster(dut, 2 * CLK_NS)  # SCK = f_sys / 4: twice the limit
    before = await ok.read(1, 0)
    await fast.write(1, 0, before ^ 1)
    assert await ok.read(1, 0) == before, "a too-fast write took effect"
    assert await ok.status() & STATUS_ERROR, "a too-fast frame did not set the error flag"
    await clear_error()
    await fast.read(1, 0)
    assert await ok.status() & STATUS_ERROR, "a too-fast read did not set the error flag"
    await clear_error()
    points.append({"mode": "spi", "case": "too fast"})

    await ok.frame(SpiMaster._header(1, 0, 1, 0) + [0] * 8)  # a 24-bit write: refused
    assert await ok.read(1, 0) == before
    assert await ok.status() & STATUS_ERROR
    await clear_error()
    assert not await ok.status() & STATUS_ERROR
    points.append({"mode": "spi", "case": "short frame"})
    record("core.spi_host", seeds=["-"], cycles=tb.simulated, coverage=points)
