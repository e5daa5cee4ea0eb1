"""Simulation speed of the LFSR + stochastic-translator bank, three ways, in one run.

Prints simulated cycles per second of the same block (preset ``small`` by default) under
Amaranth's built-in simulator and under cocotb + Verilator, each reading the pulse outputs
every cycle, and the golden model's random bits per second; ratios are against the
Amaranth simulator (the baseline). Usage:

    python benchmarks/bench_spine.py [--preset small] [--cycles 20000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from amaranth.sim import Simulator

from cimflow.config import preset
from cimflow.golden.lfsr import LfsrChains as GoldenChains
from cimflow.hdl.stochastic_translator import StochasticTranslatorBank
from cimflow.verif.regress import REGRESSION, RegressionTest, run_one


def amaranth_cycles_per_s(cfg, cycles: int) -> float:
    dut = StochasticTranslatorBank(cfg)
    elapsed = {}

    async def bench(ctx):
        ctx.set(dut.gain, 1 << cfg.str_gain_frac_bits)
        ctx.set(dut.wr_en, 1)
        for k in range(cfg.lines):
            ctx.set(dut.wr_addr, k)
            ctx.set(dut.wr_mag, (k * 5) % (1 << cfg.str_bits))
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        while not ctx.get(dut.ready):
            await ctx.tick()
        ctx.set(dut.bl, cfg.bl_max)
        t0 = time.perf_counter()
        for _ in range(cycles):
            ctx.set(dut.start, 1)
            ctx.get(dut.row_pulse)
            ctx.get(dut.col_pulse)
            await ctx.tick()
        elapsed["s"] = time.perf_counter() - t0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return cycles / elapsed["s"]


def cocotb_cycles_per_s(name: str, cycles: int) -> float:
    base = next(t for t in REGRESSION if t.name == "str_bank.bit_exact")
    test = RegressionTest("bench", base.top, base.module, base.testcase, (name,),
                          ((0xACE1, 0xBEEF),), cycles)
    with tempfile.TemporaryDirectory() as d:
        r = run_one(test, name, preset(name), Path(d), False)
    if not r.passed:
        raise RuntimeError(f"benchmark run failed, see {r.log}")
    return r.figures["simulated"] / r.figures["seconds"]


def golden_bits_per_s(cfg, cycles: int) -> float:
    chains = GoldenChains(cfg, 0xACE1, 0xBEEF)
    chains.words(10)
    t0 = time.perf_counter()
    done = 0
    while done < cycles:
        chunk = min(4096, cycles - done)
        chains.words(chunk)
        done += chunk
    return cycles * cfg.lines * cfg.str_bits / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--cycles", type=int, default=20_000)
    args = ap.parse_args()
    cfg = preset(args.preset)
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    am = amaranth_cycles_per_s(cfg, min(args.cycles, 5000))
    vc = cocotb_cycles_per_s(args.preset, args.cycles)
    gb = golden_bits_per_s(cfg, 50 * args.cycles)
    full = preset("full")
    gb_full = golden_bits_per_s(full, 2000)
    print(f"STR bank + LFSR chains, preset {args.preset} ({cfg.lines} lines x "
          f"{cfg.str_bits} bit), pulses read every cycle")
    print(f"{'setup':48s} {'rate':>16s} {'vs Amaranth sim':>16s}")
    print(f"{'Amaranth simulator (baseline)':48s} {am:13,.0f} c/s {1.0:15.1f}x")
    print(f"{'cocotb + Verilator (incl. golden check)':48s} {vc:13,.0f} c/s "
          f"{vc / am:15.1f}x")
    print(f"{'golden LFSR words, ' + args.preset:48s} {gb:13,.0f} b/s "
          f"{'(' + format(gb / (cfg.lines * cfg.str_bits), ',.0f') + ' c/s)':>16s}")
    print(f"{'golden LFSR words, full (4096 bits/cycle)':48s} {gb_full:13,.0f} b/s "
          f"{'(' + format(gb_full / (full.lines * full.str_bits), ',.0f') + ' c/s)':>16s}")


if __name__ == "__main__":
    main()
