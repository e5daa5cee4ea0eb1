"""LineRegisters under Amaranth's simulator against a Python dict reference."""


import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from test_hdl_spi import SpiMaster, SpiSystem, bank_values

from cimflow.config import PRESETS
from cimflow.hdl.regfile import READ_LATENCY, WRITE_DELAY, LineRegisters


def run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def lines_of(cfg, bank):
    return cfg.cols if bank else cfg.rows


def ref_lists(cfg, ref):
    return ([ref[0, k] for k in range(cfg.rows)], [ref[1, k] for k in range(cfg.cols)])


def check_flags(ctx, dut, cfg):
    """The registered selection flags equal (register == 1) of the parallel outputs."""
    bl, sl = bank_values(ctx, dut, cfg)
    assert ctx.get(dut.bl_is_one) == sum(1 << k for k, v in enumerate(bl) if v == 1)
    assert ctx.get(dut.sl_is_one) == sum(1 << k for k, v in enumerate(sl) if v == 1)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_parallel_port_random(name):
    """Random writes, reads, write+read and out-of-range accesses through the host port,
    with random requests on the load port, which reads only in clocks without ``re``. A
    read's data comes READ_LATENCY edges later, without a write of its own clock (a host
    write lands an edge after its request); a pipelined second request in the next clock
    must not disturb it."""
    cfg = PRESETS[name]
    w = cfg.line_bits
    rng = np.random.default_rng(11)
    dut = LineRegisters(cfg)

    async def bench(ctx):
        ref = {(b, k): 0 for b in (0, 1) for k in range(lines_of(cfg, b))}
        errors = loads = 0
        for _ in range(400):
            bank = int(rng.integers(0, 2))
            oob = rng.random() < 0.15
            n = lines_of(cfg, bank)
            line = int(rng.integers(n, 256)) if oob else int(rng.integers(0, n))
            we, re = [(1, 0), (0, 1), (1, 1)][int(rng.integers(0, 3))]
            # 1 (a selected line) often enough to set and clear the selection flags
            v = 1 if rng.random() < 0.3 else int(rng.integers(0, 1 << w))
            old_rdata = ctx.get(dut.rdata)
            old_ld = ctx.get(dut.ld_data)
            ld_en = int(rng.random() < 0.5)
            ld_bank = int(rng.integers(0, 2))
            ld_line = int(rng.integers(0, lines_of(cfg, ld_bank)))
            ctx.set(dut.ld_en, ld_en)
            ctx.set(dut.ld_addr, (ld_bank << 8) | ld_line)
            ctx.set(dut.addr, (bank << 8) | line)
            ctx.set(dut.wdata, v)
            ctx.set(dut.we, we)
            ctx.set(dut.re, re)
            assert ctx.get(dut.ld_ok) == ld_en & (1 - re)
            ld_ref = ref[ld_bank, ld_line]  # read before write (the write lands an edge later)
            rd_ref = ref.get((bank, line))
            await ctx.tick()
            ctx.set(dut.we, 0)
            ctx.set(dut.re, 0)
            ctx.set(dut.ld_en, 0)
            loads += ld_en & (1 - re)
            assert ctx.get(dut.error) == int(oob)
            errors += oob
            if we and not oob:
                ref[bank, line] = v
            # the next clock requests a load of another line (a pipelined request)
            for edge in range(1, READ_LATENCY):
                assert ctx.get(dut.rdata) == old_rdata  # not yet: the last edge loads it
                assert ctx.get(dut.ld_data) == old_ld
                ctx.set(dut.ld_en, edge == 1)
                ctx.set(dut.ld_addr, ((1 - ld_bank) << 8))
                await ctx.tick()
            ctx.set(dut.ld_en, 0)
            assert ctx.get(dut.ld_data) == (ld_ref if ld_en and not re else old_ld)
            if re and not oob:
                assert ctx.get(dut.rdata) == rd_ref
            else:
                assert ctx.get(dut.rdata) == old_rdata  # an ignored read keeps rdata
            await ctx.tick()
            assert ctx.get(dut.ld_data) == ref[1 - ld_bank, 0]
            assert bank_values(ctx, dut, cfg) == ref_lists(cfg, ref)
            check_flags(ctx, dut, cfg)
        await ctx.tick()
        assert ctx.get(dut.error) == 0  # one-cycle pulse
        assert errors > 10
        assert loads > 50

    run_sim(dut, bench)


def test_write_back_whole_bank():
    """wb_en writes a whole bank one edge later (WRITE_DELAY), as a host write lands; it
    beats a host write to that bank landing at the same edge (requested in the same clock);
    a host write to the other bank then still lands. ``lines_we`` is high in both clocks."""
    cfg = PRESETS["small"]
    w = cfg.line_bits
    rng = np.random.default_rng(5)
    dut = LineRegisters(cfg)

    async def bench(ctx):
        ref = {(b, k): 0 for b in (0, 1) for k in range(lines_of(cfg, b))}
        for step in range(6):
            bank = step % 2
            data = [int(x) for x in rng.integers(0, 1 << w, cfg.rows)]
            for k in rng.choice(cfg.rows, step, replace=False):  # some selected lines
                data[k] = 1
            host_bank = int(rng.integers(0, 2))
            line = int(rng.integers(0, cfg.rows))
            ctx.set(dut.addr, (host_bank << 8) | line)
            ctx.set(dut.wdata, 0xA5)
            ctx.set(dut.we, 1)
            assert ctx.get(dut.lines_we) == 1
            ctx.set(dut.wb_en, 1)
            ctx.set(dut.wb_bank, bank)
            ctx.set(dut.wb_data, sum(v << (k * w) for k, v in enumerate(data)))
            before = bank_values(ctx, dut, cfg)
            await ctx.tick()  # both requests are registered: nothing lands yet
            ctx.set(dut.we, 0)
            ctx.set(dut.wb_en, 0)
            ctx.set(dut.wb_data, 0)  # the codes were taken with the request
            assert WRITE_DELAY == 1
            assert ctx.get(dut.we_pending) == 1 and ctx.get(dut.lines_we) == 1
            assert bank_values(ctx, dut, cfg) == before
            await ctx.tick()
            assert ctx.get(dut.lines_we) == 0
            for k, v in enumerate(data):
                ref[bank, k] = v
            if host_bank != bank:
                ref[host_bank, line] = 0xA5
            assert bank_values(ctx, dut, cfg) == ref_lists(cfg, ref)
            check_flags(ctx, dut, cfg)
            assert ctx.get(dut.error) == 0
            # a registered read sees the written-back value
            ctx.set(dut.addr, (bank << 8) | 3)
            ctx.set(dut.re, 1)
            await ctx.tick()
            ctx.set(dut.re, 0)
            await ctx.tick().repeat(READ_LATENCY - 1)
            assert ctx.get(dut.rdata) == data[3]

    run_sim(dut, bench)


def test_out_of_range_keeps_state():
    """Every out-of-range line of both banks: error pulse, no write, rdata unchanged."""
    cfg = PRESETS["tiny"]
    dut = LineRegisters(cfg)

    async def bench(ctx):
        for k in range(cfg.rows):
            ctx.set(dut.addr, k)
            ctx.set(dut.wdata, k + 1)
            ctx.set(dut.we, 1)
            await ctx.tick()
        ctx.set(dut.addr, 2)
        ctx.set(dut.we, 0)
        ctx.set(dut.re, 1)
        await ctx.tick().repeat(READ_LATENCY)
        assert ctx.get(dut.rdata) == 3
        before = bank_values(ctx, dut, cfg)
        for bank in (0, 1):
            for line in range(lines_of(cfg, bank), 256):
                ctx.set(dut.addr, (bank << 8) | line)
                ctx.set(dut.wdata, 0xFF)
                ctx.set(dut.we, 1)
                ctx.set(dut.re, 1)
                await ctx.tick()
                assert ctx.get(dut.error) == 1
                assert ctx.get(dut.rdata) == 3
        ctx.set(dut.we, 0)
        ctx.set(dut.re, 0)
        await ctx.tick()
        assert ctx.get(dut.error) == 0
        assert bank_values(ctx, dut, cfg) == before

    run_sim(dut, bench)


def test_spi_frames_random():
    """Random SPI write/read frames (bit-banged) against the dict reference, with
    out-of-range lines mixed in."""
    cfg = PRESETS["small"]
    w = cfg.line_bits
    rng = np.random.default_rng(3)
    sys = SpiSystem(cfg)
    master = SpiMaster(sys)

    async def bench(ctx):
        ref = {(b, k): 0 for b in (0, 1) for k in range(lines_of(cfg, b))}
        oobs = 0
        for _ in range(40):
            bank = int(rng.integers(0, 2))
            oob = rng.random() < 0.1
            n = lines_of(cfg, bank)
            line = int(rng.integers(n, 256)) if oob else int(rng.integers(0, n))
            before = master.reg_errors
            if rng.random() < 0.5:
                v = int(rng.integers(0, 1 << w))
                await master.write(ctx, bank, line, v)
                if not oob:
                    ref[bank, line] = v
            else:
                got = await master.read(ctx, bank, line)
                if not oob:
                    assert got == ref[bank, line], (bank, line)
            assert master.reg_errors - before == int(oob)
            oobs += oob
            assert bank_values(ctx, sys.regs, cfg) == ref_lists(cfg, ref)
        assert master.errors == 0

    run_sim(sys, bench)


@pytest.mark.parametrize("name", ["full"])
def test_regfile_verilog_full(name):
    """The full-size register file converts (its speed is benchmarks/bench_core.py's)."""
    text = verilog.convert(LineRegisters(PRESETS[name]), name="regs", emit_src=False)
    assert "module regs" in text
