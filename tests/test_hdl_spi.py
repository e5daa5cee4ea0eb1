"""SpiTarget + LineRegisters under Amaranth's simulator, driven by a bit-banged SPI master.

The helpers here (``SpiSystem``, ``SpiMaster``, ``frame_word``) are also used by
tests/test_hdl_regfile.py.
"""


import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from cimflow.config import PRESETS
from cimflow.hdl.regfile import READ_LATENCY, LineRegisters
from cimflow.hdl.spi import MIN_HALF_PERIOD, SpiTarget


class SpiSystem(Elaboratable):
    """SpiTarget wired to a LineRegisters, as a top level would."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.spi = SpiTarget(cfg)
        self.regs = LineRegisters(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.spi = spi = self.spi
        m.submodules.regs = regs = self.regs
        m.d.comb += [
            regs.addr.eq(spi.addr), regs.wdata.eq(spi.wdata), regs.we.eq(spi.we),
            regs.re.eq(spi.re), spi.rdata.eq(regs.rdata),
        ]
        return m


def frame_word(rw, bank, line, data=0, reserved=0):
    """The 32-bit frame, MSB first on the wire."""
    return (rw << 31) | (reserved << 25) | (bank << 24) | (line << 16) | (data & 0xFFFF)


class SpiMaster:
    """Bit-banged SPI mode 0 master; counts the DUT's pulse outputs on every clock."""

    def __init__(self, sys: SpiSystem, half: int = MIN_HALF_PERIOD):
        self.sys = sys
        self.half = half
        self.errors = 0  # SpiTarget.error pulses
        self.dones = 0  # SpiTarget.done pulses
        self.reg_errors = 0  # LineRegisters.error pulses
        self.not_ready = 0  # cycles with p_ready low

    async def tick(self, ctx, n=1):
        for _ in range(n):
            await ctx.tick()
            self.errors += ctx.get(self.sys.spi.error)
            self.dones += ctx.get(self.sys.spi.done)
            self.reg_errors += ctx.get(self.sys.regs.error)
            self.not_ready += not ctx.get(self.sys.spi.p_ready)

    async def frame(self, ctx, word, nbits=32, gap=6):
        """Send the top ``nbits`` of a 32-bit ``word`` (or more: extra bits are 0); returns
        the MISO bits sampled at the rising edges, as an integer (first bit most
        significant)."""
        spi = self.sys.spi
        ctx.set(spi.cs_n, 0)
        await self.tick(ctx, self.half)
        miso = 0
        for i in range(nbits):
            bit = (word >> (31 - i)) & 1 if i < 32 else 0
            ctx.set(spi.mosi, bit)
            await self.tick(ctx, self.half)
            miso = (miso << 1) | ctx.get(spi.miso)
            ctx.set(spi.sck, 1)
            await self.tick(ctx, self.half)
            ctx.set(spi.sck, 0)
        await self.tick(ctx, self.half)
        ctx.set(spi.cs_n, 1)
        await self.tick(ctx, gap)
        return miso

    async def write(self, ctx, bank, line, data):
        await self.frame(ctx, frame_word(1, bank, line, data))

    async def read(self, ctx, bank, line):
        return (await self.frame(ctx, frame_word(0, bank, line))) & 0xFFFF


def run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def bank_values(ctx, regs, cfg):
    w = cfg.line_bits
    bl, sl = ctx.get(regs.bl_values), ctx.get(regs.sl_values)
    mask = (1 << w) - 1
    return ([(bl >> (k * w)) & mask for k in range(cfg.rows)],
            [(sl >> (k * w)) & mask for k in range(cfg.cols)])


async def parallel_write(ctx, spi, bank, line, data):
    ctx.set(spi.p_addr, (bank << 8) | line)
    ctx.set(spi.p_wdata, data)
    ctx.set(spi.p_we, 1)
    await ctx.tick()
    ctx.set(spi.p_we, 0)


@pytest.mark.parametrize("half", [MIN_HALF_PERIOD, 7])
def test_spi_readback(half):
    """Values written over SPI and over the parallel port read back over MISO."""
    cfg = PRESETS["tiny"]
    w = cfg.line_bits
    rng = np.random.default_rng(half)
    sys = SpiSystem(cfg)
    master = SpiMaster(sys, half)

    async def bench(ctx):
        ref = {}
        for bank in (0, 1):
            for line in range(cfg.rows):
                v = int(rng.integers(0, 1 << w))
                ref[bank, line] = v
                if (bank + line) % 2:
                    high = (0xFFFF << w) & 0xFFFF  # bits above W are ignored
                    await master.write(ctx, bank, line, v | high)
                else:
                    await parallel_write(ctx, sys.spi, bank, line, v)
        for (bank, line), v in ref.items():
            assert await master.read(ctx, bank, line) == v, (bank, line)
            assert ctx.get(sys.spi.miso) == 0  # idle between frames
        bl, sl = bank_values(ctx, sys.regs, cfg)
        assert bl == [ref[0, k] for k in range(cfg.rows)]
        assert sl == [ref[1, k] for k in range(cfg.cols)]
        assert master.errors == 0 and master.reg_errors == 0
        assert master.dones == 3 * cfg.rows  # every SPI frame was good: rows writes, 2 rows reads

    run_sim(sys, bench)


@pytest.mark.parametrize("kind", ["short", "long", "cs_glitch", "one_bit", "reserved",
                                  "short_read", "cs_high_glitch"])
def test_spi_malformed(kind):
    """A malformed frame writes nothing and pulses error once."""
    cfg = PRESETS["tiny"]
    sys = SpiSystem(cfg)
    master = SpiMaster(sys)

    async def bench(ctx):
        await master.write(ctx, 0, 1, 0x11)
        await master.write(ctx, 1, 2, 0x22)
        before = bank_values(ctx, sys.regs, cfg)
        dones = master.dones
        word = frame_word(1, 0, 1, 0x5A)
        errors_expected = 1
        if kind == "short":
            await master.frame(ctx, word, nbits=31)
        elif kind == "long":
            await master.frame(ctx, word, nbits=33)
        elif kind == "one_bit":
            await master.frame(ctx, word, nbits=1)
        elif kind == "reserved":
            await master.frame(ctx, frame_word(1, 0, 1, 0x5A, reserved=0x10))
        elif kind == "short_read":
            await master.frame(ctx, frame_word(0, 1, 2), nbits=24)
        elif kind == "cs_high_glitch":  # CS_n high for a moment mid-frame: two halves
            await master.frame(ctx, word, nbits=16, gap=MIN_HALF_PERIOD)
            await master.frame(ctx, word << 16, nbits=16)
            errors_expected = 2
        else:  # CS_n low for a few cycles with no SCK edge
            ctx.set(sys.spi.cs_n, 0)
            await master.tick(ctx, 5)
            ctx.set(sys.spi.cs_n, 1)
            await master.tick(ctx, 6)
        assert master.errors == errors_expected
        assert master.dones == dones
        assert bank_values(ctx, sys.regs, cfg) == before
        # the target recovers: the next good frame works
        await master.write(ctx, 0, 1, 0x33)
        assert await master.read(ctx, 0, 1) == 0x33
        assert await master.read(ctx, 1, 2) == 0x22
        assert master.errors == errors_expected

    run_sim(sys, bench)


def test_spi_out_of_range_line():
    """An SPI access to a line beyond the bank goes to the register file, which refuses it."""
    cfg = PRESETS["tiny"]
    sys = SpiSystem(cfg)
    master = SpiMaster(sys)

    async def bench(ctx):
        before = bank_values(ctx, sys.regs, cfg)
        await master.write(ctx, 0, cfg.rows, 0x7F)
        assert master.reg_errors == 1 and master.errors == 0
        await master.read(ctx, 1, 200)
        assert master.reg_errors == 2 and master.errors == 0
        assert bank_values(ctx, sys.regs, cfg) == before

    run_sim(sys, bench)


def test_spi_arbitration_with_parallel_port():
    """SPI wins; a parallel master that holds its request while p_ready is low loses
    nothing. Parallel writes run back to back during SPI write and read frames."""
    cfg = PRESETS["small"]
    sys = SpiSystem(cfg)
    master = SpiMaster(sys)
    spi = sys.spi
    ref = {}
    stop = []

    async def parallel(ctx):
        k = 0
        while not stop:
            bank, line, v = k % 2, (k // 2) % cfg.rows, (k * 37) & 0xFF
            ctx.set(spi.p_addr, (bank << 8) | line)
            ctx.set(spi.p_wdata, v)
            ctx.set(spi.p_we, 1)
            # hold the request until a cycle where it is accepted
            while True:
                ready = ctx.get(spi.p_ready)
                await ctx.tick()
                if ready:
                    break
            ref[bank, line] = v
            k += 1
        ctx.set(spi.p_we, 0)

    async def serial(ctx):
        await ctx.tick().repeat(3)
        # lines 15 of each bank are left to SPI (the parallel writer covers them too, so
        # check the SPI read against whatever was last written before it)
        await master.write(ctx, 1, 5, 0xC3)
        await master.write(ctx, 0, 9, 0x3C)
        assert master.not_ready == 2  # one cycle per SPI write
        stop.append(True)
        await ctx.tick().repeat(2)
        bl, sl = bank_values(ctx, sys.regs, cfg)
        # the parallel writer wrote every line many times; SPI writes landed in between,
        # so the final values are the last writer's: check every line against ref except
        # where SPI wrote after the last parallel write of that line
        for (bank, line), v in ref.items():
            got = (sl if bank else bl)[line]
            assert got == v or (bank, line) in ((1, 5), (0, 9)), (bank, line, got, v)
        assert master.errors == 0 and master.dones == 2

    sim = Simulator(sys)
    sim.add_clock(1e-8)
    sim.add_testbench(parallel)
    sim.add_testbench(serial)
    sim.run()


def test_spi_read_during_parallel_traffic():
    """An SPI read returns the right value while the parallel port keeps reading; a
    parallel read is accepted every READ_LATENCY-th clock (the register file's read takes
    that many edges), and the SPI read costs the parallel reader at most one of them."""
    cfg = PRESETS["small"]
    sys = SpiSystem(cfg)
    master = SpiMaster(sys)
    spi = sys.spi
    stop = []
    got_parallel = []
    cycles = []  # clocks of parallel reading

    async def parallel(ctx):
        for line in range(cfg.rows):
            await parallel_write(ctx, spi, 0, line, line + 1)
        ctx.set(spi.p_addr, 3)
        ctx.set(spi.p_re, 1)
        while not stop:
            ready = ctx.get(spi.p_ready)
            await ctx.tick()
            cycles.append(1)
            if ready:
                got_parallel.append(ctx.get(spi.p_rdata))
        ctx.set(spi.p_re, 0)

    async def serial(ctx):
        await ctx.tick().repeat(cfg.rows + 2)
        assert await master.read(ctx, 0, 11) == 12
        stop.append(True)
        await ctx.tick()
        assert set(got_parallel) == {4}
        n = len(cycles)
        L = READ_LATENCY
        assert n // L - 1 <= len(got_parallel) <= (n + L - 1) // L, (n, len(got_parallel))

    sim = Simulator(sys)
    sim.add_clock(1e-8)
    sim.add_testbench(parallel)
    sim.add_testbench(serial)
    sim.run()


def test_spi_verilog_full():
    text = verilog.convert(SpiTarget(PRESETS["full"]), name="spi", emit_src=False)
    assert "module spi" in text
