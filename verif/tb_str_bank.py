"""cocotb testbenches for the stochastic-translator bank (``cimflow_str_bank``).

Run by ``cimflow.verif.regress`` on Verilator. The configuration, seeds and cycle budget come
in through environment variables (CIMFLOW_CONFIG, CIMFLOW_SEEDS, CIMFLOW_CYCLES); each test
appends its figures (seeds, cycles compared, statistics) as a JSON line to CIMFLOW_METRICS.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from cimflow.config import CoreConfig
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.stochastic_translator import str_update

from . import stats
from .harness import record, tb_env, unpack_bits
from .str_scenario import GoldenStrBank, StrUpdate, random_update


def _tb_env():
    env = tb_env()
    return env.cfg, env.seeds, env.budget


class StrBankTb:
    """Drives the bank away from the active edge and samples its outputs once per cycle."""

    def __init__(self, dut, cfg: CoreConfig):
        self.dut, self.cfg = dut, cfg
        self.cycles = 0  # cycles whose outputs were compared with the golden model
        self.simulated = 0  # all clock cycles

    async def start(self) -> None:
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        for name in ("rst", "seed_load", "wr_en", "start", "wr_addr", "wr_mag", "wr_sign",
                     "gain", "bl", "seed_a", "seed_b"):
            getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        await self.tick(2)
        self.dut.rst.value = 0

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await FallingEdge(self.dut.clk)
        self.simulated += n

    async def load_seeds(self, seed_a: int, seed_b: int) -> None:
        d = self.dut
        d.seed_a.value, d.seed_b.value, d.seed_load.value = seed_a, seed_b, 1
        await self.tick()
        d.seed_load.value = 0
        waited = 0
        while not int(d.ready.value):
            await self.tick()
            waited += 1
        assert waited == self.cfg.lfsr_warmup_cycles, waited

    async def write(self, upd: StrUpdate, lines=None) -> None:
        d = self.dut
        d.gain.value = upd.gain
        d.wr_en.value = 1
        for k in range(self.cfg.lines) if lines is None else lines:
            d.wr_addr.value = k
            d.wr_mag.value = int(upd.mags[k])
            d.wr_sign.value = int(upd.signs[k])
            await self.tick()
        d.wr_en.value = 0
        for _ in range(2):  # the last write's threshold is stored 3 edges after its clock
            await self.tick()

    async def run(self, bl: int):
        """Start one update and capture every slot until ``done``."""
        d = self.dut
        d.bl.value = bl
        d.start.value = 1
        await self.tick()
        d.start.value = 0
        phases, rows, cols = [], [], []
        limit = 4 * bl + 4
        for _ in range(limit):
            self.cycles += 1
            if int(d.done.value):
                break
            if int(d.valid.value):
                phases.append(int(d.phase.value))
                rows.append(int(d.row_pulse.value))
                cols.append(int(d.col_pulse.value))
                assert int(d.up.value) == 1 - (phases[-1] & 1)
            else:
                assert int(d.row_pulse.value) == 0 and int(d.col_pulse.value) == 0
            await self.tick()
        else:
            raise AssertionError(f"no done within {limit} cycles of start")
        return (np.array(phases, dtype=np.int64), unpack_bits(rows, self.cfg.rows),
                unpack_bits(cols, self.cfg.cols))


def _compare(got, want, what: str) -> None:
    phases, rows, cols = got
    assert phases.tolist() == want.phase.tolist(), f"{what}: phase sequence differs"
    for name, g, w in (("row_pulse", rows, want.row_pulse), ("col_pulse", cols, want.col_pulse)):
        if g.shape != w.shape or not np.array_equal(g, w):
            bad = np.argwhere(g != w) if g.shape == w.shape else None
            raise AssertionError(f"{what}: {name} differs (first slot/line {bad[:1]}, shape "
                                 f"{g.shape} vs {w.shape})")


@cocotb.test()
async def test_bit_exact(dut):
    """Pulse trains equal the golden model's, slot for slot, over random updates and seeds."""
    cfg, seeds, budget = _tb_env()
    tb = StrBankTb(dut, cfg)
    await tb.start()
    rng = np.random.default_rng(seeds[0][0])
    updates = 0
    t0 = time.perf_counter()
    for seed_a, seed_b in seeds:
        await tb.load_seeds(seed_a, seed_b)
        golden = GoldenStrBank(cfg, seed_a, seed_b)
        start = tb.cycles
        while tb.cycles - start < budget // len(seeds):
            upd = random_update(cfg, rng, nonneg_rows=bool(rng.random() < 0.25))
            await tb.write(upd)
            golden.write(upd)
            _compare(await tb.run(upd.bl), golden.run(upd.bl), f"seeds {seed_a}:{seed_b}")
            updates += 1
    record("str_bank.bit_exact", seeds=[f"{a}:{b}" for a, b in seeds], cycles=tb.cycles,
            updates=updates, simulated=tb.simulated, seconds=time.perf_counter() - t0)


@cocotb.test()
async def test_statistics(dut):
    """Binomial pulse counts, coincidence means and neighbour decorrelation on the RTL."""
    cfg, seeds, budget = _tb_env()
    n = cfg.str_bits
    seed_a, seed_b = seeds[0]
    tb = StrBankTb(dut, cfg)
    await tb.start()
    await tb.load_seeds(seed_a, seed_b)
    rng = np.random.default_rng(seed_a)
    mags = rng.integers(1, 1 << n, cfg.lines)  # all lines active, all signs positive
    upd = StrUpdate(mags, np.zeros(cfg.lines, dtype=np.int64), 1 << cfg.str_gain_frac_bits,
                    min(32, cfg.bl_max))
    await tb.write(upd)
    p = mags / (1 << n)  # gain 1.0: P(pulse) = |v| exactly
    bl = upd.bl
    trials = max(200, budget // (2 * bl + 2) // 2)
    golden = GoldenStrBank(cfg, seed_a, seed_b)
    golden.write(upd)
    row_counts, col_counts, coinc, trains = [], [], [], []
    for _ in range(trials):
        phases, rows, cols = got = await tb.run(bl)
        _compare(got, golden.run(bl), "statistics run")
        up = phases == 0  # every column is positive: columns fire in phase 0 only
        row_counts.append(rows[up].sum(axis=0))
        col_counts.append(cols.sum(axis=0))
        coinc.append(rows[up].astype(np.int64).T @ cols[up].astype(np.int64))
        trains.append(np.concatenate([rows[up], cols[up]], axis=1))
    counts = np.concatenate([np.array(row_counts), np.array(col_counts)], axis=1)
    trains = np.concatenate(trains)
    gof = stats.binomial_gof(counts, p, bl)
    means = stats.coincidence_means(np.array(coinc), p[: cfg.rows], p[cfg.rows :], bl)
    corr = stats.neighbour_correlation(trains)
    # the same statistic on a single-chain generator must fail: the test has teeth
    single = LfsrChains(cfg, seed_a, seed_b, single_chain=True)
    r, thr = cfg.rows, mags
    zeros = np.zeros(cfg.lines, dtype=np.int64)
    strains = []
    for _ in range(min(trials, 200)):
        tr = str_update(cfg, single, thr[:r], zeros[:r], thr[r:], zeros[r:], bl)
        up = tr.phase == 0
        strains.append(np.concatenate([tr.row_pulse[up], tr.col_pulse[up]], axis=1))
    single_corr = stats.neighbour_correlation(np.concatenate(strains))
    record("str_bank.statistics", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles,
            trials=trials, bl=bl, binomial=gof, coincidences=means, correlation=corr,
            single_chain_correlation=single_corr)
    assert gof["passed"], gof
    assert means["passed"], means
    assert corr["passed"], corr
    assert not single_corr["passed"], single_corr


@cocotb.test()
async def test_smoke(dut):
    """Seed load, a sparse write and one update, bit-exact: cheap enough for the full core."""
    cfg, seeds, _ = _tb_env()
    seed_a, seed_b = seeds[0]
    tb = StrBankTb(dut, cfg)
    await tb.start()
    await tb.load_seeds(seed_a, seed_b)
    rng = np.random.default_rng(seed_a)
    upd = random_update(cfg, rng, bl=cfg.bl)
    await tb.write(upd)
    golden = GoldenStrBank(cfg, seed_a, seed_b)
    golden.write(upd)
    _compare(await tb.run(upd.bl), golden.run(upd.bl), "smoke")
    record("str_bank.smoke", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles)
