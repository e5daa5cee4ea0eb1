"""Controller (and ProgDrivers) under Amaranth's simulator.

``CtrlSystem`` wires the controller to the real StochasticTranslatorBank (seed load, RPU
update), a LineRegisters and the ProgDrivers selection check, as a top level would; the
MvmEngine's ``done`` is driven by the testbench.
"""


import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from cimflow.config import PRESETS
from cimflow.hdl.controller import (
    COMMAND_LATENCY,
    MAX_TAP,
    Cause,
    Controller,
    Op,
    ProgOp,
    above,
)
from cimflow.hdl.prog_drivers import SEL_LATENCY, ProgDrivers, one_hot
from cimflow.hdl.regfile import WRITE_DELAY, LineRegisters
from cimflow.hdl.stochastic_translator import WRITE_LATENCY, StochasticTranslatorBank
from cimflow.modes import AdcMode

TINY = PRESETS["tiny"]


class CtrlSystem(Elaboratable):
    def __init__(self, cfg):
        self.cfg = cfg
        self.ctrl = Controller(cfg)
        self.bank = StochasticTranslatorBank(cfg)
        self.regs = LineRegisters(cfg)
        self.prog = ProgDrivers(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl = c = self.ctrl
        m.submodules.bank = b = self.bank
        m.submodules.regs = r = self.regs
        m.submodules.prog = p = self.prog
        m.d.comb += [
            b.seed_a.eq(c.seed_a), b.seed_b.eq(c.seed_b), b.seed_load.eq(c.seed_load),
            b.start.eq(c.rpu_start), b.bl.eq(c.rpu_bl),
            c.rpu_done.eq(b.done), c.rpu_error.eq(b.error), c.rpu_ready.eq(b.ready),
            p.bl_is_one.eq(r.bl_is_one), p.sl_is_one.eq(r.sl_is_one),
            p.lines_we.eq(r.lines_we),
            c.prog_sel_ok.eq(p.sel_ok), c.prog_sel_valid.eq(p.sel_valid),
        ]
        return m


def run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


MODE = ("direction", "adc_mode", "out_k", "in_m", "act", "inject_steps", "in_len",
        "neuron_test", "t_wl", "t_sample", "t_integ")


def port(c, name):
    """A controller output by name: the mode registers live in its ``mode`` interface."""
    if name in MODE:
        return getattr(c.mode, name)
    if name in ("mvm_start", "mvm_done"):
        return getattr(c.mode, name[4:])
    return getattr(c, name)


async def command(ctx, c, op, arg=0):
    """One command cycle; returns with the registered outputs of its decision visible
    (COMMAND_LATENCY edges after the command's own edge)."""
    ctx.set(c.cmd_valid, 1)
    ctx.set(c.cmd_op.as_value(), getattr(op, "value", op))  # also opcodes that are no Op
    ctx.set(c.cmd_arg, arg)
    await ctx.tick()
    ctx.set(c.cmd_valid, 0)
    await ctx.tick().repeat(COMMAND_LATENCY)


STATE = ("direction", "adc_mode", "out_k", "in_m", "act", "inject_steps", "in_len",
         "neuron_test", "rpu_bl", "seed_a", "seed_b", "prog_amp", "prog_tap", "prog_width",
         "clk_gate", "pwr_gate", "busy", "str_gain", "t_wl", "t_sample", "t_integ")
PULSES = ("mvm_start", "rpu_start", "seed_load", "prog_pulse")


def snapshot(ctx, c):
    s = {name: ctx.get(port(c, name)) for name in STATE}
    s["done_sticky"] = (ctx.get(c.status) >> 1) & 1
    return s


def cause_of(ctx, c):
    return (ctx.get(c.status) >> 3) & 7


async def expect_reject(ctx, c, op, arg, cause):
    before = snapshot(ctx, c)
    await command(ctx, c, op, arg)
    assert ctx.get(c.error) == 1, (op, arg)
    assert (ctx.get(c.status) >> 2) & 1 == 1
    assert cause_of(ctx, c) == cause.value, (op, arg, cause_of(ctx, c))
    assert ctx.get(c.done) == 0
    for p in PULSES:
        assert ctx.get(port(c, p)) == 0, (op, p)
    assert snapshot(ctx, c) == before, (op, arg)


async def clear_error(ctx, c):
    await command(ctx, c, Op.CLEAR_ERROR)
    assert ctx.get(c.error) == 0 and cause_of(ctx, c) == 0


async def select_cell(ctx, regs, row, col, w):
    """Registers: 1 at BL row and SL col, 0 elsewhere (programming selection)."""
    cfg = TINY
    for bank, n, sel in ((0, cfg.rows, row), (1, cfg.cols, col)):
        for k in range(n):
            await reg_write(ctx, regs, bank, k, int(k == sel))


async def reg_write(ctx, regs, bank, line, v):
    ctx.set(regs.addr, (bank << 8) | line)
    ctx.set(regs.wdata, v)
    ctx.set(regs.we, 1)
    await ctx.tick()
    ctx.set(regs.we, 0)


# ------------------------------------------------------------------ reset values


@pytest.mark.parametrize("adc", list(AdcMode))
def test_reset_values(adc):
    cfg = PRESETS["full"].replace(adc_mode=adc)
    c = Controller(cfg)

    async def bench(ctx):
        assert ctx.get(c.mode.adc_mode) == adc.value
        assert ctx.get(c.mode.out_k) == cfg.output_bits - 1
        assert ctx.get(c.mode.in_m) == cfg.input_bits - 1
        assert ctx.get(c.mode.in_len) == cfg.rows
        assert ctx.get(c.rpu_bl) == cfg.bl
        assert (ctx.get(c.seed_a), ctx.get(c.seed_b)) == (1, 1)
        assert ctx.get(c.prog_width) == 1
        for name in ("direction", "act", "inject_steps", "neuron_test", "clk_gate",
                     "pwr_gate", "busy", "done", "error", "status", "prog_pulse"):
            assert ctx.get(port(c, name)) == 0, name
        assert ctx.get(c.prog_op) is ProgOp.NONE

    run_sim(c, bench)


# ------------------------------------------------------------------ register commands


def test_register_commands():
    """Each register command's effect on the outputs, with a done pulse and no busy."""
    sys = CtrlSystem(TINY)
    c = sys.ctrl

    async def bench(ctx):
        cases = [
            (Op.NOP, 0, {}),
            (Op.SET_MODE, 2 | (1 << 2) | (1 << 3) | (1 << 5),
             {"direction": 2, "adc_mode": 1, "act": 1, "neuron_test": 1}),
            (Op.SET_MODE, 1 | (2 << 3), {"direction": 1, "adc_mode": 0, "act": 2,
                                         "neuron_test": 0}),
            (Op.SET_PRECISION, 5 | (2 << 4), {"out_k": 5, "in_m": 2}),
            (Op.SET_PRECISION, 7 | (3 << 4), {"out_k": 7, "in_m": 3}),
            (Op.SET_PRECISION, 0 | (1 << 4), {"out_k": 0, "in_m": 1}),
            (Op.SET_INJECT, 0xBEEF, {"inject_steps": 0xBEEF}),
            (Op.SET_IN_LEN, 1, {"in_len": 1}),
            (Op.SET_IN_LEN, TINY.rows, {"in_len": TINY.rows}),
            (Op.SET_PULSE, 0xC5 | (MAX_TAP << 8), {"prog_amp": 0xC5, "prog_tap": MAX_TAP}),
            (Op.SET_WIDTH, 0xFFFF, {"prog_width": 0xFFFF}),
            (Op.POWER, 2, {"clk_gate": 1, "pwr_gate": 0}),
            (Op.POWER, 0, {"clk_gate": 0, "pwr_gate": 0}),
            (Op.SET_GAIN, 0x1F, {"str_gain": 0x1F}),
            (Op.SET_TIMING, 3 | (2 << 4) | (24 << 8), {"t_wl": 3, "t_sample": 2,
                                                     "t_integ": 24}),
        ]
        for op, arg, want in cases:
            before = snapshot(ctx, c)
            await command(ctx, c, op, arg)
            assert ctx.get(c.done) == 1 and ctx.get(c.busy) == 0, op
            assert ctx.get(c.error) == 0
            for p in PULSES:
                assert ctx.get(port(c, p)) == 0
            after = snapshot(ctx, c)
            assert after["done_sticky"] == 1
            before.update(want, done_sticky=1)
            assert after == before, (op, arg)
            await ctx.tick()
            assert ctx.get(c.done) == 0  # one-cycle pulse
            assert (ctx.get(c.status) >> 1) & 1 == 1  # sticky done in status

    run_sim(sys, bench)


def test_seed_assembly_full():
    """Seeds are assembled from 16-bit words, most significant word first, and loaded."""
    cfg = PRESETS["full"]
    c = Controller(cfg)
    da, db = max(cfg.lfsr_a_taps), max(cfg.lfsr_b_taps)
    rng = np.random.default_rng(2)
    a = int(rng.integers(0, 1 << 62)) | (1 << 62)
    b = int(rng.integers(0, 1 << 47))

    async def bench(ctx):
        ctx.set(c.rpu_ready, 1)
        for word in (0xFFFF, 0x1234):  # stale words are shifted out
            await command(ctx, c, Op.SEED_A, word)
        for k in reversed(range(4)):
            await command(ctx, c, Op.SEED_A, (a >> (16 * k)) & 0xFFFF)
            assert ctx.get(c.done) == 1
        for k in reversed(range(3)):
            await command(ctx, c, Op.SEED_B, (b >> (16 * k)) & 0xFFFF)
        assert ctx.get(c.seed_a) == a & ((1 << da) - 1)
        assert ctx.get(c.seed_b) == b & ((1 << db) - 1)
        await command(ctx, c, Op.SEED_LOAD)
        assert ctx.get(c.seed_load) == 1 and ctx.get(c.busy) == 1
        await ctx.tick()
        assert ctx.get(c.seed_load) == 0 and ctx.get(c.busy) == 1  # seeing ready again
        await ctx.tick()
        assert ctx.get(c.done) == 1 and ctx.get(c.busy) == 0
        assert ctx.get(c.seed_a) == a & ((1 << da) - 1)  # kept after the load

    run_sim(c, bench)


def test_seed_load_and_rpu_update_with_bank():
    """SEED_LOAD waits for the LFSR warm-up; RPU_UPDATE runs the STR bank to its done."""
    cfg = TINY
    sys = CtrlSystem(cfg)
    c, bank = sys.ctrl, sys.bank

    async def bench(ctx):
        await command(ctx, c, Op.SEED_A, 0x2B)
        await command(ctx, c, Op.SEED_B, 0x11)
        await command(ctx, c, Op.SEED_LOAD)
        assert ctx.get(c.seed_load) == 1
        assert (ctx.get(bank.seed_a), ctx.get(bank.seed_b)) == (0x2B, 0x11)
        busy = 0
        while not ctx.get(c.done):
            assert ctx.get(c.busy) == 1
            busy += 1
            await ctx.tick()
        assert ctx.get(c.busy) == 0 and ctx.get(bank.ready) == 1
        # the load cycle, the warm-up, and the cycle that sees ready again
        assert busy == cfg.lfsr_warmup_cycles + 2
        # translator values: every row positive and non-zero -> phases 0 and 1 only
        ctx.set(bank.gain, 1 << cfg.str_gain_frac_bits)
        ctx.set(bank.wr_en, 1)
        for k in range(cfg.lines):
            ctx.set(bank.wr_addr, k)
            ctx.set(bank.wr_mag, 3)
            ctx.set(bank.wr_sign, 0)
            await ctx.tick()
        ctx.set(bank.wr_en, 0)
        await ctx.tick().repeat(WRITE_LATENCY - 1)  # the last write is stored
        await command(ctx, c, Op.RPU_UPDATE, 3)
        assert ctx.get(c.rpu_start) == 1 and ctx.get(c.rpu_bl) == 3
        assert ctx.get(c.busy) == 1
        slots = 0
        cycles = 0
        while not ctx.get(c.done):
            slots += ctx.get(bank.valid)
            await ctx.tick()
            cycles += 1
            assert cycles < 100
        assert slots == 2 * 3
        assert ctx.get(c.busy) == 0 and ctx.get(c.error) == 0

    run_sim(sys, bench)


@pytest.mark.parametrize("direction", [0, 1, 2])
def test_mvm_start_and_done(direction):
    sys = CtrlSystem(TINY)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.SET_MODE, direction | (1 << 2))
        await command(ctx, c, Op.SET_INJECT, 5)
        await command(ctx, c, Op.MVM)
        assert ctx.get(c.mode.start) == 1 and ctx.get(c.busy) == 1
        assert ctx.get(c.done) == 0 and (ctx.get(c.status) >> 1) & 1 == 0
        assert ctx.get(c.mode.direction) == direction and ctx.get(c.mode.adc_mode) == 1
        for _ in range(7):
            await ctx.tick()
            assert ctx.get(c.mode.start) == 0 and ctx.get(c.busy) == 1
            assert ctx.get(c.status) & 1 == 1
        ctx.set(c.mode.done, 1)
        await ctx.tick()
        ctx.set(c.mode.done, 0)
        assert ctx.get(c.done) == 1 and ctx.get(c.busy) == 0
        assert ctx.get(c.status) & 0b111 == 0b010
        await ctx.tick()
        assert ctx.get(c.done) == 0

    run_sim(sys, bench)


# ------------------------------------------------------------------ programming pulses


def test_program_pulse_width_and_selection():
    cfg = TINY
    w = cfg.line_bits
    sys = CtrlSystem(cfg)
    c, regs, prog = sys.ctrl, sys.regs, sys.prog

    async def pulse(ctx, op, expect_cycles, amp, wait=0):
        await command(ctx, c, Op.PROGRAM, op)
        for _ in range(wait):  # the selection check has not seen the last write yet
            assert ctx.get(c.busy) == 1 and ctx.get(c.prog_pulse) == 0
            await ctx.tick()
        assert ctx.get(c.busy) == 1
        n = 0
        while ctx.get(c.prog_pulse):
            assert ctx.get(c.prog_op) is ProgOp(op) and ctx.get(c.prog_amp) == amp
            assert ctx.get(c.busy) == 1 and ctx.get(c.done) == 0
            n += 1
            await ctx.tick()
        assert n == expect_cycles
        assert ctx.get(c.done) == 1 and ctx.get(c.busy) == 0 and ctx.get(c.prog_op) is ProgOp.NONE

    async def bench(ctx):
        await select_cell(ctx, regs, 2, 1, w)
        await ctx.tick()  # the last host write lands
        assert ctx.get(prog.prog_sel_bl) == 1 << 2 and ctx.get(prog.prog_sel_sl) == 1 << 1
        await command(ctx, c, Op.SET_PULSE, 0x9C)
        await ctx.tick().repeat(SEL_LATENCY)
        assert ctx.get(prog.sel_ok) == 1
        for width, op in [(1, 1), (2, 2), (3, 3), (10, 1), (100, 2)]:
            await command(ctx, c, Op.SET_WIDTH, width)
            await pulse(ctx, op, width, 0x9C)
        # delay-line tap: a one-cycle trigger whatever the width
        await command(ctx, c, Op.SET_PULSE, 0x40 | (5 << 8))
        await pulse(ctx, 2, 1, 0x40)
        await command(ctx, c, Op.SET_PULSE, 0x40)
        # -1 (sign-magnitude 0x81) in another row does not select it
        await reg_write(ctx, regs, 0, 3, 0x81)
        await pulse(ctx, 1, 100, 0x40, wait=SEL_LATENCY + WRITE_DELAY - COMMAND_LATENCY)
        # two rows selected
        await reg_write(ctx, regs, 0, 3, 1)
        await ctx.tick().repeat(SEL_LATENCY + 1)
        assert ctx.get(prog.sel_ok) == 0
        await expect_reject(ctx, c, Op.PROGRAM, 1, Cause.SELECTION)
        await clear_error(ctx, c)
        # no column selected
        await reg_write(ctx, regs, 0, 3, 0)
        await reg_write(ctx, regs, 1, 1, 2)
        await ctx.tick().repeat(SEL_LATENCY + 1)
        await expect_reject(ctx, c, Op.PROGRAM, 3, Cause.SELECTION)
        await clear_error(ctx, c)
        await reg_write(ctx, regs, 1, 1, 1)
        await pulse(ctx, 3, 100, 0x40, wait=SEL_LATENCY + WRITE_DELAY - COMMAND_LATENCY)

    run_sim(sys, bench)


@pytest.mark.parametrize("source", ["host", "write_back"])
def test_program_right_after_register_write(source):
    """PROGRAM g clocks after a line register write (host port or write-back) that makes the
    selection good or bad: it waits max(0, SEL_LATENCY + 1 + WRITE_DELAY - COMMAND_LATENCY
    - g) clocks after either (both land WRITE_DELAY edges after their request, the command
    is decided COMMAND_LATENCY edges after its cycle) with ``busy`` high,
    then pulses or is refused with cause SELECTION, decided on the registers as written
    (exactly one 1 per bank, counted here with Python's popcount). A check that used the
    flags from before the write would pulse on a broken selection or refuse a good one."""
    cfg = TINY
    w = cfg.line_bits
    sys = CtrlSystem(cfg)
    c, regs = sys.ctrl, sys.regs

    async def write(ctx, bank, values):
        if source == "host":  # one line differs from the bank now held: one host write
            for k, v in enumerate(values):
                if v != held[bank][k]:
                    await reg_write(ctx, regs, bank, k, v)
        else:  # the whole bank in one clock, as the MVM engine's READOUT does
            ctx.set(regs.wb_en, 1)
            ctx.set(regs.wb_bank, bank)
            ctx.set(regs.wb_data, sum(v << (k * w) for k, v in enumerate(values)))
            await ctx.tick()
            ctx.set(regs.wb_en, 0)
        held[bank] = list(values)

    held = [[0] * cfg.rows, [0] * cfg.cols]

    async def bench(ctx):
        await select_cell(ctx, regs, 1, 2, w)
        held[0] = [int(k == 1) for k in range(cfg.rows)]
        held[1] = [int(k == 2) for k in range(cfg.cols)]
        await command(ctx, c, Op.SET_WIDTH, 3)
        await ctx.tick().repeat(SEL_LATENCY)
        cases = 0
        for gap in range(1, SEL_LATENCY + 4):
            for values in ([0, 1, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0][:cfg.rows]):
                await write(ctx, 0, values)
                if gap > 1:
                    await ctx.tick().repeat(gap - 1)
                good = all(sum(v == 1 for v in bank) == 1 for bank in held)
                await command(ctx, c, Op.PROGRAM, ProgOp.SET)
                waited = 0
                while ctx.get(c.busy) and not ctx.get(c.prog_pulse):
                    waited += 1
                    await ctx.tick()
                assert waited == max(0, SEL_LATENCY + 1 + WRITE_DELAY - COMMAND_LATENCY
                                     - gap), (gap, values, waited)
                if good:
                    n = 0
                    while ctx.get(c.prog_pulse):
                        n += 1
                        await ctx.tick()
                    assert n == 3 and ctx.get(c.done) == 1 and ctx.get(c.error) == 0
                else:
                    assert ctx.get(c.error) == 1 and cause_of(ctx, c) == Cause.SELECTION.value
                    assert ctx.get(c.done) == 0 and ctx.get(c.busy) == 0
                    await ctx.tick().repeat(3)
                    assert ctx.get(c.prog_pulse) == 0 and ctx.get(c.done) == 0
                    await clear_error(ctx, c)
                cases += good
        assert cases == 2 * (SEL_LATENCY + 3)  # two good selections, one bad, per gap

    run_sim(sys, bench)


def test_prog_drivers_masks():
    """Random line flags: the masks are the flags, sel_ok iff exactly one of each (counted
    with Python's popcount, not the RTL's tree); every width 1..20 of one_hot exhaustively
    up to 2^12 values."""
    cfg = PRESETS["small"]
    dut = ProgDrivers(cfg)
    rng = np.random.default_rng(9)

    async def bench(ctx):
        for _ in range(200):
            n_bl, n_sl = int(rng.integers(0, 4)), int(rng.integers(0, 4))
            bl = sum(1 << int(k) for k in rng.choice(cfg.rows, n_bl, replace=False))
            sl = sum(1 << int(k) for k in rng.choice(cfg.cols, n_sl, replace=False))
            ctx.set(dut.bl_is_one, bl)
            ctx.set(dut.sl_is_one, sl)
            ok = bin(bl).count("1") == 1 and bin(sl).count("1") == 1
            assert ctx.get(dut.prog_sel_bl) == bl
            assert ctx.get(dut.prog_sel_sl) == sl
            await ctx.tick().repeat(SEL_LATENCY)  # sel_ok is registered
            assert ctx.get(dut.sel_ok) == ok

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 12, 20])
def test_one_hot_tree(width):
    x = Signal(width)
    y = Signal()
    m = Module()
    m.d.comb += y.eq(one_hot(x))
    values = range(1 << width) if width <= 12 else \
        [int(v) for v in np.random.default_rng(width).integers(0, 1 << width, 4000)] \
        + [1 << k for k in range(width)]

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            assert ctx.get(y) == (bin(v).count("1") == 1), v

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("n", [1, 4, 5, 7, 15, 16, 255, 256, 1000])
def test_above_is_greater_than(n):
    """The split compare equals ``>`` on every 12-bit argument (n of every shape: 2^k - 1,
    2^k, neither)."""
    x = Signal(12)
    y = Signal()
    m = Module()
    m.d.comb += y.eq(above(x, n))

    async def bench(ctx):
        for v in range(1 << 12):
            ctx.set(x, v)
            assert ctx.get(y) == (v > n), (n, v)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


# ------------------------------------------------------------------ errors


def bad_args(cfg):
    kmax, mmax = cfg.output_bits - 1, max(cfg.input_bits - 1, 1)
    return [
        (Op.NOP, 1),
        (Op.SET_MODE, 3), (Op.SET_MODE, 3 << 3), (Op.SET_MODE, 1 << 6),
        (Op.SET_MODE, 1 << 15),
        (Op.SET_PRECISION, (kmax + 1) | (1 << 4)), (Op.SET_PRECISION, 1),
        (Op.SET_PRECISION, 1 | ((mmax + 1) << 4)), (Op.SET_PRECISION, 1 | (1 << 4) | (1 << 7)),
        (Op.SET_IN_LEN, 0), (Op.SET_IN_LEN, cfg.rows + 1), (Op.SET_IN_LEN, 0x8000),
        (Op.MVM, 1),
        (Op.RPU_UPDATE, 0), (Op.RPU_UPDATE, cfg.bl_max + 1),
        (Op.SEED_LOAD, 2),
        (Op.SET_PULSE, (MAX_TAP + 1) << 8), (Op.SET_PULSE, 1 << 12),
        (Op.SET_WIDTH, 0),
        (Op.PROGRAM, 0), (Op.PROGRAM, 1 | (1 << 2)),
        (Op.POWER, 4),
        (Op.CLEAR_ERROR, 1),
        (Op.SET_GAIN, 1 << cfg.str_gain_bits),
        (Op.SET_TIMING, 0x0110), (Op.SET_TIMING, 0x0101), (Op.SET_TIMING, 0x0011),
    ]


def test_unknown_opcode_and_bad_arguments():
    cfg = TINY
    sys = CtrlSystem(cfg)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.SET_MODE, 1 | (1 << 3))
        await command(ctx, c, Op.SET_IN_LEN, 3)
        await expect_reject(ctx, c, 0xD, 0, Cause.UNKNOWN_OPCODE)
        # sticky: good commands do not clear it
        await command(ctx, c, Op.NOP)
        assert ctx.get(c.done) == 1 and ctx.get(c.error) == 1
        assert cause_of(ctx, c) == Cause.UNKNOWN_OPCODE.value
        await clear_error(ctx, c)
        for op, arg in bad_args(cfg):
            await expect_reject(ctx, c, op, arg, Cause.BAD_ARG)
            await ctx.tick()
            assert ctx.get(c.error) == 1  # sticky
            await clear_error(ctx, c)
        # a second error overwrites the cause; CLEAR_ERROR pulses done when idle
        await expect_reject(ctx, c, 0xD, 7, Cause.UNKNOWN_OPCODE)
        await expect_reject(ctx, c, Op.SET_WIDTH, 0, Cause.BAD_ARG)
        await command(ctx, c, Op.CLEAR_ERROR)
        assert ctx.get(c.done) == 1 and ctx.get(c.status) & 0b111100 == 0

    run_sim(sys, bench)


def test_command_while_busy():
    cfg = TINY
    sys = CtrlSystem(cfg)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.MVM)
        assert ctx.get(c.busy) == 1
        for op in Op:
            if op is Op.CLEAR_ERROR:
                continue
            arg = {Op.SET_PRECISION: 1 | (1 << 4), Op.SET_IN_LEN: 1, Op.RPU_UPDATE: 1,
                   Op.SET_WIDTH: 1, Op.PROGRAM: 1}.get(op, 0)
            await expect_reject(ctx, c, op, arg, Cause.BUSY)
        await expect_reject(ctx, c, 0xD, 0, Cause.BUSY)  # busy checked before the opcode
        # CLEAR_ERROR is accepted while busy, without a done pulse
        await command(ctx, c, Op.CLEAR_ERROR)
        assert ctx.get(c.error) == 0 and ctx.get(c.done) == 0 and ctx.get(c.busy) == 1
        ctx.set(c.mode.done, 1)
        await ctx.tick()
        ctx.set(c.mode.done, 0)
        assert ctx.get(c.done) == 1 and ctx.get(c.busy) == 0 and ctx.get(c.error) == 0

    run_sim(sys, bench)


def test_power_gated():
    cfg = TINY
    sys = CtrlSystem(cfg)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.POWER, 1)
        assert ctx.get(c.pwr_gate) == 1 and ctx.get(c.clk_gate) == 0 and ctx.get(c.done) == 1
        assert (ctx.get(c.status) >> 6) & 1 == 1
        for op in Op:
            await expect_reject(ctx, c, op, 1 if op is Op.POWER else 0, Cause.POWER_GATED)
        await expect_reject(ctx, c, Op.POWER, 3, Cause.POWER_GATED)
        await expect_reject(ctx, c, 0xD, 0, Cause.POWER_GATED)
        # POWER_UP (bit 0 clear), here also turning the clock gate on
        await command(ctx, c, Op.POWER, 2)
        assert ctx.get(c.pwr_gate) == 0 and ctx.get(c.clk_gate) == 1 and ctx.get(c.done) == 1
        assert ctx.get(c.error) == 1  # still sticky
        assert ctx.get(c.status) >> 6 == 0b10
        await clear_error(ctx, c)
        await command(ctx, c, Op.SET_INJECT, 9)
        assert ctx.get(c.mode.inject_steps) == 9

    run_sim(sys, bench)


def test_not_ready_and_unit_error():
    """Standalone controller: LFSR not ready refuses RPU_UPDATE and a stochastic MVM; an
    STR bank error ends the update with cause UNIT."""
    cfg = TINY
    c = Controller(cfg)

    async def bench(ctx):
        ctx.set(c.rpu_ready, 0)
        await expect_reject(ctx, c, Op.RPU_UPDATE, 2, Cause.NOT_READY)
        await clear_error(ctx, c)
        await command(ctx, c, Op.SET_MODE, 2 << 3)
        await expect_reject(ctx, c, Op.MVM, 0, Cause.NOT_READY)
        await clear_error(ctx, c)
        await command(ctx, c, Op.SET_MODE, 0)
        await command(ctx, c, Op.MVM)  # not stochastic: no LFSR needed
        assert ctx.get(c.mode.start) == 1
        ctx.set(c.mode.done, 1)
        await ctx.tick()
        ctx.set(c.mode.done, 0)
        ctx.set(c.rpu_ready, 1)
        await command(ctx, c, Op.RPU_UPDATE, 2)
        assert ctx.get(c.rpu_start) == 1 and ctx.get(c.busy) == 1
        await ctx.tick().repeat(3)
        ctx.set(c.rpu_error, 1)
        await ctx.tick()
        ctx.set(c.rpu_error, 0)
        assert ctx.get(c.busy) == 0 and ctx.get(c.done) == 1 and ctx.get(c.error) == 1
        assert cause_of(ctx, c) == Cause.UNIT.value

    run_sim(c, bench)


# ------------------------------------------------------------------ Verilog


@pytest.mark.parametrize("cls", [Controller, ProgDrivers])
def test_verilog_full(cls):
    text = verilog.convert(cls(PRESETS["full"]), name="top", emit_src=False)
    assert "module top" in text


# ------------------------------------------------------------------ refused commands


def nonreset_args(cfg):
    """A legal argument per command that changes every register the command writes, away
    from the reset values; ``test_nonreset_args_take_effect`` proves that they do."""
    adc = 1 - cfg.adc_mode.value
    return {
        Op.NOP: (0, {}),
        Op.SET_MODE: (2 | (adc << 2) | (1 << 3) | (1 << 5),
                      {"direction": 2, "adc_mode": adc, "act": 1, "neuron_test": 1}),
        Op.SET_PRECISION: (3 | (2 << 4), {"out_k": 3, "in_m": 2}),
        Op.SET_INJECT: (5, {"inject_steps": 5}),
        Op.SET_IN_LEN: (cfg.rows - 1, {"in_len": cfg.rows - 1}),
        Op.MVM: (0, {}),
        Op.RPU_UPDATE: (cfg.bl + 1, {"rpu_bl": cfg.bl + 1}),
        Op.SEED_A: (0xBEEF, {"seed_a": 0xBEEF & ((1 << max(cfg.lfsr_a_taps)) - 1)}),
        Op.SEED_B: (0x1234, {"seed_b": 0x1234 & ((1 << max(cfg.lfsr_b_taps)) - 1)}),
        Op.SEED_LOAD: (0, {}),
        Op.SET_PULSE: (7 | (2 << 8), {"prog_amp": 7, "prog_tap": 2}),
        Op.SET_WIDTH: (9, {"prog_width": 9}),
        Op.PROGRAM: (1, {}),
        Op.POWER: (3, {"pwr_gate": 1, "clk_gate": 1}),
        Op.CLEAR_ERROR: (0, {}),
        Op.SET_GAIN: (3, {"str_gain": 3}),
        Op.SET_TIMING: (3 | (2 << 4) | (5 << 8), {"t_wl": 3, "t_sample": 2, "t_integ": 5}),
    }


def test_nonreset_args_take_effect():
    """Accepted from reset, each argument of ``nonreset_args`` changes every field it names:
    the refusal tests below would see a refused command that still wrote its registers."""
    args = nonreset_args(TINY)
    assert set(args) == set(Op)
    for op, (arg, want) in args.items():
        if not want:
            continue
        c = Controller(TINY)

        async def bench(ctx, c=c, op=op, arg=arg, want=want):
            ctx.set(c.rpu_ready, 1)
            before = snapshot(ctx, c)
            await command(ctx, c, op, arg)
            assert ctx.get(c.error) == 0, op
            after = snapshot(ctx, c)
            for name, value in want.items():
                assert before[name] != value, (op, name)
                assert after[name] == value, (op, name)

        run_sim(c, bench)


async def reject_all(ctx, c, ops, cause):
    args = nonreset_args(TINY)
    for op in ops:
        await expect_reject(ctx, c, op, args[op][0], cause)


def test_refused_while_busy_changes_nothing():
    """Every command refused while busy, sent with non-reset arguments, leaves every
    register unchanged (a SET_MODE that still wrote the mode registers used to pass)."""
    sys = CtrlSystem(TINY)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.MVM)
        assert ctx.get(c.busy) == 1
        await reject_all(ctx, c, [op for op in Op if op is not Op.CLEAR_ERROR], Cause.BUSY)

    run_sim(sys, bench)


def test_refused_while_gated_changes_nothing():
    """Power-gated: everything but POWER_UP is refused; clock-gated: the operations are."""
    sys = CtrlSystem(TINY)
    c = sys.ctrl

    async def bench(ctx):
        await command(ctx, c, Op.POWER, 1)
        assert ctx.get(c.pwr_gate) == 1
        await reject_all(ctx, c, list(Op), Cause.POWER_GATED)
        await expect_reject(ctx, c, Op.POWER, 1, Cause.POWER_GATED)
        await command(ctx, c, Op.POWER, 2)
        assert (ctx.get(c.pwr_gate), ctx.get(c.clk_gate)) == (0, 1)
        await clear_error(ctx, c)
        await reject_all(ctx, c, [Op.MVM, Op.RPU_UPDATE, Op.SEED_LOAD, Op.PROGRAM],
                         Cause.POWER_GATED)

    run_sim(sys, bench)


def test_refused_state_and_bad_args_change_nothing():
    """Not ready / bad selection / a bad field next to good non-reset fields: no write."""
    c = Controller(TINY)
    args = nonreset_args(TINY)

    async def bench(ctx):
        ctx.set(c.rpu_ready, 0)
        ctx.set(c.prog_sel_ok, 0)
        await expect_reject(ctx, c, Op.RPU_UPDATE, args[Op.RPU_UPDATE][0], Cause.NOT_READY)
        await expect_reject(ctx, c, Op.PROGRAM, 2, Cause.SELECTION)
        await clear_error(ctx, c)
        mode = args[Op.SET_MODE][0]
        for bad in (mode | 3, (mode & ~(3 << 3)) | (3 << 3), mode | (1 << 6)):
            await expect_reject(ctx, c, Op.SET_MODE, bad, Cause.BAD_ARG)
        prec = args[Op.SET_PRECISION][0]
        for bad in (prec | (1 << 7), (prec & ~0xF) | TINY.output_bits):
            await expect_reject(ctx, c, Op.SET_PRECISION, bad, Cause.BAD_ARG)
        await expect_reject(ctx, c, Op.SET_PULSE, args[Op.SET_PULSE][0] | (1 << 12),
                            Cause.BAD_ARG)
        await expect_reject(ctx, c, Op.SET_TIMING, args[Op.SET_TIMING][0] & ~0xF, Cause.BAD_ARG)
        await expect_reject(ctx, c, Op.POWER, 3 | (1 << 2), Cause.BAD_ARG)

    run_sim(c, bench)
