"""STR bank and LFSR chains under Amaranth's simulator, bit-exact against the golden model."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from cimflow.config import PRESETS
from cimflow.golden.lfsr import LfsrChains as GoldenChains
from cimflow.hdl.lfsr import LfsrChains
from cimflow.hdl.stochastic_translator import WRITE_LATENCY, StochasticTranslatorBank
from cimflow.verif.str_scenario import GoldenStrBank, random_update


def _bits(v, n):
    return np.array([(v >> i) & 1 for i in range(n)], dtype=bool)


def run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("seeds", [(1, 1), (0x41, 0x1B), (0, 0)])
def test_lfsr_words_bit_exact(seeds):
    cfg = PRESETS["tiny"]
    dut = LfsrChains(cfg)
    golden = GoldenChains(cfg, seeds[0] or 1, seeds[1] or 1)
    n = cfg.str_bits

    async def bench(ctx):
        ctx.set(dut.seed_a, seeds[0])
        ctx.set(dut.seed_b, seeds[1])
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        waited = 0
        while not ctx.get(dut.ready):
            await ctx.tick()
            waited += 1
        assert waited == cfg.lfsr_warmup_cycles
        ctx.set(dut.en, 1)
        want = golden.words(200)
        for t in range(200):
            w = ctx.get(dut.words)
            got = [(w >> (k * n)) & ((1 << n) - 1) for k in range(cfg.lines)]
            assert got == want[t].tolist(), t
            assert ctx.get(dut.bits) == sum(int(want[t, k] & 1) << k for k in range(cfg.lines))
            await ctx.tick()

    run_sim(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_str_bank_bit_exact(name):
    cfg = PRESETS[name]
    rng = np.random.default_rng(7)
    dut = StochasticTranslatorBank(cfg)
    golden = GoldenStrBank(cfg, 0x2B, 0x11)
    updates = [random_update(cfg, rng, bl=int(rng.integers(1, cfg.bl_max + 1)),
                             nonneg_rows=(i == 1)) for i in range(4)]

    async def bench(ctx):
        ctx.set(dut.seed_a, 0x2B)
        ctx.set(dut.seed_b, 0x11)
        ctx.set(dut.seed_load, 1)
        await ctx.tick()
        ctx.set(dut.seed_load, 0)
        while not ctx.get(dut.ready):
            await ctx.tick()
        for upd in updates:
            ctx.set(dut.gain, upd.gain)
            ctx.set(dut.wr_en, 1)
            for k in range(cfg.lines):
                ctx.set(dut.wr_addr, k)
                ctx.set(dut.wr_mag, int(upd.mags[k]))
                ctx.set(dut.wr_sign, int(upd.signs[k]))
                await ctx.tick()
            ctx.set(dut.wr_en, 0)
            # the last write's threshold is stored WRITE_LATENCY edges after its clock
            await ctx.tick().repeat(WRITE_LATENCY - 1)
            golden.write(upd)
            want = golden.run(upd.bl)
            ctx.set(dut.bl, upd.bl)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            rows, cols, phases = [], [], []
            while not ctx.get(dut.done):
                if ctx.get(dut.valid):
                    rows.append(_bits(ctx.get(dut.row_pulse), cfg.rows))
                    cols.append(_bits(ctx.get(dut.col_pulse), cfg.cols))
                    phases.append(ctx.get(dut.phase))
                    assert ctx.get(dut.up) == (1 - (phases[-1] & 1))
                else:
                    assert ctx.get(dut.row_pulse) == 0 and ctx.get(dut.col_pulse) == 0
                await ctx.tick()
            assert len(phases) == len(want.phase)
            assert phases == want.phase.tolist()
            if phases:
                assert np.array_equal(np.array(rows), want.row_pulse)
                assert np.array_equal(np.array(cols), want.col_pulse)

    run_sim(dut, bench)


def test_rejected_commands_flag_error_and_keep_state():
    cfg = PRESETS["tiny"]
    dut = StochasticTranslatorBank(cfg)

    async def bench(ctx):
        # before the LFSR is ready: start rejected
        ctx.set(dut.bl, 3)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.error) == 1 and ctx.get(dut.busy) == 0
        while not ctx.get(dut.ready):
            await ctx.tick()
        # BL = 0 rejected
        ctx.set(dut.bl, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.error) == 1 and ctx.get(dut.busy) == 0
        # a full-probability row and column, then a write during the run is rejected
        ctx.set(dut.gain, 1 << cfg.str_gain_frac_bits)
        ctx.set(dut.wr_en, 1)
        for k in (0, cfg.rows):
            ctx.set(dut.wr_addr, k)
            ctx.set(dut.wr_mag, (1 << cfg.str_bits) - 1)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.bl, 4)
        # the WRITE_LATENCY - 1 clocks after a write: its threshold is not stored yet, start
        # refused; the clock after them starts
        ctx.set(dut.start, 1)
        for _ in range(WRITE_LATENCY - 1):
            await ctx.tick()
            assert ctx.get(dut.error) == 1 and ctx.get(dut.busy) == 0
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.busy) == 1 and ctx.get(dut.error) == 0
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.wr_addr, 0)
        ctx.set(dut.wr_mag, 0)
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        assert ctx.get(dut.error) == 1
        slots = 1
        while not ctx.get(dut.done):
            slots += ctx.get(dut.valid)
            await ctx.tick()
        assert slots == 2 * 4  # two phases (all rows non-negative), BL = 4 each
        # the rejected write did not clear row 0: a second update still pulses it
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        fired = 0
        while not ctx.get(dut.done):
            fired += ctx.get(dut.row_pulse) & 1
            await ctx.tick()
        assert fired > 0

    run_sim(dut, bench)
