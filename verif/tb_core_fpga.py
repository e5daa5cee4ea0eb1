"""cocotb testbench of the FPGA core (``cimflow_core_fpga``): digital core + RTL macro.

Only the host ports are used, as a board controller would: the conductance codes of a
golden crossbar are loaded cell by cell through PROGRAM SET pulses and verified with
PROGRAM READ (the programming interface), then MVMs run and their output codes, read back
through the register port, must equal the golden model's bit for bit. The training-step
test runs forward MVM, backward MVM and RPU_UPDATE on the programmed array and reads every
conductance back, judged by the golden replay of the step (cimflow.golden.rpu.rtl_step).
"""

from __future__ import annotations

import os
import time

import cocotb
import numpy as np
import pytest

from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import CycleCore, cycle_count
from cimflow.golden.rpu.pulses import LfsrSource
from cimflow.golden.rpu.rtl_step import rtl_code_step
from cimflow.golden.stochastic_translator import enabled_phases, line_thresholds
from cimflow.hdl.analog_macro import no_clip

from .commands import Op, ProgOp
from .harness import record, tb_env
from .mvm_scenario import mode_registers, random_case, write_inputs
from .tb_core import CoreTb, coverage_point


async def program_codes(tb: CoreTb, codes: np.ndarray) -> int:
    """Load every cell's conductance code with SET pulses; verify each by READ."""
    d = tb.dut
    rows, cols = codes.shape
    await tb.clear_banks()
    pulses = 0
    for r in range(rows):
        for c in range(cols):
            await tb.select_cell(r, c)
            code = int(codes[r, c])
            pulses += await tb.set_code(code)
            await tb.cmd("PROGRAM", ProgOp.READ)  # back to back: no idle cycles after the SET
            await tb.wait_done()
            got = int(d.read_data.value)
            assert got == code, f"cell ({r}, {c}): read back {got}, programmed {code}"
    return pulses


@cocotb.test()
async def test_program_and_mvm(dut):
    """Program a golden crossbar through PROGRAM commands, then random MVMs bit-exact."""
    tb, lfsr, (seed_a, seed_b), budget = await CoreTb.seeded(dut)
    cfg = tb.cfg
    rng = np.random.default_rng(seed_a)
    t0 = time.perf_counter()
    base = random_case(cfg, rng, static=False)
    xb = base["xb"]
    pulses = await program_codes(tb, xb.codes())
    points, mvms, clocks = [], 0, 0
    while mvms < budget:
        case = random_case(cfg, rng, static=False)
        case["xb"] = xb  # the programmed array
        st, x = case["st"], case["x"]
        n_in = xb.vector_lengths(st.direction)[0]
        if len(x) != n_in:  # re-draw the input for the programmed matrix
            top = max((1 << (st.in_bits - 1)) - 1, 1)
            x = rng.integers(-top if st.in_bits > 1 else 0, top + 1, n_in)
            case = _with_input(case, x, tb.w, rng)
        regs = mode_registers(case)
        await tb.write_bank(0, case["bl"])
        await tb.write_bank(1, case["sl"])
        dut.d_units.value = st.d_units
        dut.inject_units.value = st.inject_units
        clip = case["ni"].clip_units(st.v_read)
        dut.clip_units.value = no_clip(cfg) if clip is None else clip
        await tb.set_mode(regs)
        core = CycleCore(xb, case["ni"], offsets=case["off"], lfsr=lfsr)
        want = core.run(x[None], st)
        start = tb.simulated
        await tb.cmd("MVM")
        await tb.wait_done()
        clocks += tb.simulated - start
        out_bl = st.direction is not Direction.FORWARD
        n = cfg.rows if out_bl else cfg.cols
        regs_out = await tb.read_bank(0 if out_bl else 1, n)
        sign, mag = regs_out >> (tb.w - 1), regs_out & ((1 << (tb.w - 1)) - 1)
        what = f"{st}, x = {x.tolist()}"
        assert np.array_equal(sign, want.sign[0]), f"signs differ: {what}"
        assert np.array_equal(mag, want.mag[0]), f"magnitudes differ: {what}"
        tb.cycles += cycle_count(st)
        points.append(coverage_point(case))
        mvms += 1
    record("core_fpga.program_mvm", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles,
            mvms=mvms, program_pulses=pulses, mvm_clocks=clocks, simulated=tb.simulated,
            seconds=time.perf_counter() - t0, coverage=points)


async def read_codes(tb: CoreTb) -> np.ndarray:
    """Every cell's conductance code, read through PROGRAM READ (the verify path)."""
    cfg = tb.cfg
    await tb.clear_banks()
    out = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
    for r, c in np.ndindex(out.shape):
        await tb.select_cell(r, c)
        await tb.cmd("PROGRAM", ProgOp.READ)
        await tb.wait_done()
        out[r, c] = int(tb.dut.read_data.value)
    return out


async def run_mvm(tb: CoreTb, case, lfsr) -> np.ndarray:
    """One MVM of ``case`` from its line registers; the output registers, checked against
    the golden cycle-level core (whose INJECT words advance ``lfsr`` as the RTL's do), as
    signed values."""
    d, st = tb.dut, case["st"]
    await tb.write_bank(0, case["bl"])
    await tb.write_bank(1, case["sl"])
    d.d_units.value = st.d_units
    d.inject_units.value = st.inject_units
    clip = case["ni"].clip_units(st.v_read)
    d.clip_units.value = no_clip(tb.cfg) if clip is None else clip
    await tb.set_mode(mode_registers(case))
    want = CycleCore(case["xb"], case["ni"], offsets=case["off"], lfsr=lfsr).run(
        case["x"][None], st)
    await tb.cmd("MVM")
    await tb.wait_done()
    out_bl = st.direction is not Direction.FORWARD
    regs = await tb.read_bank(0 if out_bl else 1, tb.cfg.rows if out_bl else tb.cfg.cols)
    sign, mag = regs >> (tb.w - 1), regs & ((1 << (tb.w - 1)) - 1)
    assert np.array_equal(sign, want.sign[0]), f"signs differ: {st}"
    assert np.array_equal(mag, want.mag[0]), f"magnitudes differ: {st}"
    tb.cycles += cycle_count(st)
    return np.where(sign == 1, mag, -mag)


@cocotb.test()
async def test_training_step(dut):
    """One training step per seed pair and gain on the RTL, every conductance bit-exact.

    A layer W (rows/2 x cols, differential pairs) is programmed once. Each step: a forward
    MVM of x (BL 2r = +x_r, BL 2r+1 = -x_r), the error delta = t - y from its outputs
    written to the SL registers, a backward MVM of delta (both MVMs bit-exact with the
    golden core), x written back to the BL registers (the backward MVM wrote its outputs
    there), then RPU_UPDATE with the step's gain, BL and ``rpu_step``. Every code is read
    back through PROGRAM READ and must equal ``rtl_code_step`` of the codes before, the
    line registers and the golden LFSR chains (seeded like the core, advanced by every
    INJECT and update); the next step starts from them, so its MVMs run on updated cells.
    """
    env = tb_env()
    cfg = env.cfg
    tb = CoreTb(dut, cfg)
    await tb.start()
    w, t0 = tb.w, time.perf_counter()
    rng = np.random.default_rng(env.seeds[0][0])
    n_in = cfg.rows // 2
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((n_in, cfg.cols)))
    codes = xb.codes().copy()
    pulses = await program_codes(tb, codes)
    steps, changed, clamped, points = 0, 0, 0, []
    for seed_a, seed_b in env.seeds:
        await tb.seeds(seed_a, seed_b)
        source = LfsrSource(cfg, seed_a, seed_b)  # its chains follow the core's from here
        for rpu_step in (int(rng.integers(1, 64)), int(rng.integers(4000, 30000))):
            # full-width inputs: the translators see only the top str_bits of a magnitude
            in_bits = min(w, cfg.input_bits)
            fwd = random_case(cfg, rng, direction=Direction.FORWARD, static=False,
                              in_bits=in_bits)
            top = (1 << (in_bits - 1)) - 1
            x = rng.integers(-top, top + 1, n_in)
            fwd = _with_input({**fwd, "xb": xb}, x, w, rng)
            y = await run_mvm(tb, fwd, source.chains)
            bwd = random_case(cfg, rng, direction=Direction.BACKWARD, static=False,
                              in_bits=in_bits)
            target = rng.integers(-2 * top, 2 * top + 1, cfg.cols)
            delta = np.clip(target - y, -top, top)
            bwd = _with_input({**bwd, "xb": xb}, delta, w, rng)
            await run_mvm(tb, bwd, source.chains)
            points += [coverage_point(fwd), coverage_point(bwd)]
            # the update's operands: x on the BL pairs (the forward words), delta on the SLs
            await tb.write_bank(0, fwd["bl"])
            words = np.concatenate([await tb.read_bank(0, cfg.rows),
                                    await tb.read_bank(1, cfg.cols)])
            assert np.array_equal(words, np.concatenate([fwd["bl"], bwd["sl"]])), \
                "the line registers do not hold x and delta"
            gain = int(rng.integers(1 << (cfg.str_gain_bits - 2), 1 << cfg.str_gain_bits))
            bl = int(rng.integers(1, min(cfg.bl_max, 20) + 1))
            await tb.cmd("SET_GAIN", gain)
            await tb.wait_done()
            dut.rpu_step.value = rpu_step
            want = rtl_code_step(source, codes, words, gain, bl, rpu_step)
            await tb.cmd("RPU_UPDATE", bl)
            await tb.wait_done()
            got = await read_codes(tb)
            where = f"seeds {seed_a}:{seed_b}, gain {gain}, BL {bl}, step {rpu_step}"
            bad = np.argwhere(got != want)
            assert bad.size == 0, (f"{len(bad)} cells differ ({where}), first {bad[0]}: "
                                   f"{got[tuple(bad[0])]} != golden {want[tuple(bad[0])]} "
                                   f"(was {codes[tuple(bad[0])]})")
            changed += int((want != codes).sum())
            clamped += int(((want == 0) & (codes != 0)).sum()
                           + ((want == (1 << 16) - 1) & (codes != want)).sum())
            codes = want
            xb.set_conductances(codes / 1024.0)  # the golden array follows (2^-10 uS codes)
            steps += 1
            thr, sign = line_thresholds(cfg, words, gain)
            phases = len(enabled_phases(thr[:cfg.rows], sign[:cfg.rows]))
            if phases:  # (no row above threshold: an empty update, no coverage bin)
                points.append({"mode": "rpu_update", "phases": phases})
    assert changed > 0, "no training step changed a cell"
    record("core_fpga.training_step", seeds=[f"{a}:{b}" for a, b in env.seeds],
           cycles=tb.cycles, steps=steps, cells_changed=changed, cells_clamped=clamped,
           program_pulses=pulses, simulated=tb.simulated, seconds=time.perf_counter() - t0,
           coverage=points)


def _with_input(case, x, w, rng):
    """The case with input vector ``x`` written into its line registers."""
    bl, sl = case["bl"].copy(), case["sl"].copy()
    in_len = write_inputs(case["st"].direction, x, w, rng, bl, sl)
    return {**case, "x": x, "bl": bl, "sl": sl, "in_len": in_len}


def read_cases(path):
    """Parse a benchmark workload file (format: benchmarks/bench_cases.py)."""
    it = iter(open(path).read().split())
    nxt = lambda: int(next(it))  # noqa: E731
    w, rows, cols = nxt(), nxt(), nxt()
    cells = [(nxt(), nxt(), nxt()) for _ in range(nxt())]
    mvms = []
    for _ in range(nxt()):
        head = [nxt() for _ in range(8)]
        bl = [nxt() for _ in range(rows)]
        sl = [nxt() for _ in range(cols)]
        expect = [nxt() for _ in range(cols if head[7] else rows)]
        mvms.append((head, bl, sl, expect))
    return w, cells, mvms


@cocotb.test()
async def test_throughput(dut):
    """The benchmark workload (CIMFLOW_CASES_FILE): program, then verified MVMs, timed.

    Without a workload the test is reported as skipped (with the reason), never as passed.
    """
    cfg = tb_env().cfg
    path = os.environ.get("CIMFLOW_CASES_FILE")
    if not path:  # cocotb records pytest's skip as a skipped test, even when named
        pytest.skip("no workload: CIMFLOW_CASES_FILE is unset (benchmarks/bench_core.py "
                    "writes one and sets it)")
    w, cells, mvms = read_cases(path)
    tb = CoreTb(dut, cfg)
    await tb.start()
    await tb.write_bank(0, [0] * cfg.rows)
    await tb.write_bank(1, [0] * cfg.cols)
    t0, c0 = time.perf_counter(), tb.simulated
    for r, c, code in cells:
        await tb.select_cell(r, c)
        await tb.set_code(code)
    t1, c1 = time.perf_counter(), tb.simulated
    for head, bl, sl, expect in mvms:
        set_mode, set_prec, in_len, inject, d_units, inject_units, clip, bank = head
        await tb.write_bank(0, bl)
        await tb.write_bank(1, sl)
        dut.d_units.value, dut.inject_units.value, dut.clip_units.value = \
            d_units, inject_units, clip
        for op, arg in ((Op.SET_MODE, set_mode), (Op.SET_PRECISION, set_prec),
                        (Op.SET_IN_LEN, in_len), (Op.SET_INJECT, inject)):
            await tb.cmd(op, arg)
        await tb.cmd("MVM")
        await tb.wait_done()
        got = await tb.read_bank(bank, len(expect))
        assert got.tolist() == expect, "benchmark MVM output differs from golden"
    t2, c2 = time.perf_counter(), tb.simulated
    record("core_fpga.throughput", seeds=["-"], cycles=c2 - c0, program_cycles=c1 - c0,
            program_seconds=t1 - t0, mvm_cycles=c2 - c1, mvm_seconds=t2 - t1,
            mvms=len(mvms))
