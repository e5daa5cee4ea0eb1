"""AnalogMacro under Amaranth's simulator, bit-exact against the golden CycleCore.

Every control word of golden ``mvm_program`` is applied to the macro for one clock, then the
bench sends IDLE words (as MvmEngine does, or leaves the WL_PULSE word applied) for as long
as ``hold`` asks for them: ``hold`` high in a clock makes the next clock's word IDLE.
``cmp`` is compared with the golden ``bank.cmp`` within COMPARE_SIGN / COMPARE clocks and with
the golden comparison ``q_integ + offset > 0`` after every word, the integrator charge
(debug port) at COMPARE_SIGN and at the end of every MVM, and the codes that a digital
neuron builds from the macro's ``cmp`` sequence with the golden result registers.
"""

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.sim import Simulator

from cimflow.config import PRESETS
from cimflow.golden.array import Crossbar, Direction, corelet_map
from cimflow.golden.cycle import CycleCore, Phase, mvm_program
from cimflow.golden.lfsr import LfsrChains as GoldenChains
from cimflow.golden.mvm import MvmSettings, mvm
from cimflow.golden.neuron import Activation
from cimflow.golden.nonideal import NonIdeal
from cimflow.hdl.analog_macro import (
    BIAS_STAGES,
    G_READ_CLOCKS,
    AnalogMacro,
    charge_bits,
    clip_bits,
    lane_operand,
    macro_resources,
    no_clip,
    saturating_lanes,
    wl_pulse_cycles,
)
from cimflow.hdl.interfaces import neuron_flags
from cimflow.modes import AdcMode

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def run_sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def bus(values, width):
    out = 0
    for k, v in enumerate(np.asarray(values).tolist()):
        out |= int(v) << (width * k)
    return out


def bits_of(v, n):
    return np.array([(v >> k) & 1 for k in range(n)], dtype=np.uint8)


async def load_codes(ctx, dut, codes):
    ctx.set(dut.g_we, 1)
    for r, c in np.ndindex(codes.shape):
        ctx.set(dut.g_row, r)
        ctx.set(dut.g_col, c)
        ctx.set(dut.g_wdata, int(codes[r, c]))
        await ctx.tick()
    ctx.set(dut.g_we, 0)


async def read_code(ctx, dut, r, c):
    ctx.set(dut.g_row, r)
    ctx.set(dut.g_col, c)
    ctx.set(dut.g_re, 1)
    await ctx.tick()
    ctx.set(dut.g_re, 0)
    for _ in range(G_READ_CLOCKS - 1):
        await ctx.tick()
    return ctx.get(dut.g_rdata)


class DigitalNeurons:
    """The engine's side of the neurons (sign, active, magnitude), driven by the macro's cmp."""

    def __init__(self, n, st):
        self.n, self.st = n, st
        self.counting = st.adc_mode is AdcMode.COUNTING
        self.sign = np.zeros(n, np.uint8)
        self.active = np.ones(n, bool)
        self.mag = np.zeros(n, np.int64)

    def dec_en(self):
        return self.active if self.counting else np.ones(self.n, bool)

    def after(self, phase, cmp):
        if phase is Phase.COMPARE_SIGN:
            self.sign, self.active, self.mag = cmp.copy(), np.ones(self.n, bool), 0 * self.mag
        elif phase is Phase.COMPARE:
            if self.counting:
                same = (cmp == self.sign) & self.active
                self.mag = self.mag + same
                self.active &= same
            else:
                self.mag = (self.mag << 1) | cmp

    def codes(self):
        k = self.st.k
        mag = self.mag if self.counting else np.where(self.sign == 1, self.mag,
                                                      ((1 << k) - 1) - self.mag)
        if self.st.activation is Activation.RELU:
            mag = np.where(self.sign == 1, mag, 0)
        return self.sign.copy(), mag


def random_case(cfg, rng):
    """A programmed crossbar (sometimes with arbitrary cell codes) and a random operating point."""
    xbar = Crossbar(cfg)
    n_in = int(rng.integers(1, cfg.rows // 2 + 1))
    n_out = int(rng.integers(1, cfg.cols + 1))
    xbar.program(rng.normal(size=(n_in, n_out)))
    if rng.random() < 0.4:  # arbitrary codes up to 2**16 - 1, zeros included (Den = 0 lines)
        g = rng.uniform(0.0, 63.9, (cfg.rows, cfg.cols))
        g[rng.random(g.shape) < 0.3] = 0.0
        g[:, rng.integers(cfg.cols)] = 0.0
        xbar.set_conductances(g)
    return xbar


def random_settings(rng, offsets=False):
    direction = Direction(int(rng.integers(3)))
    adc_mode = "counting" if rng.random() < 0.35 else "binary"
    out_bits = int(rng.integers(1, 7 if adc_mode == "counting" else 11))
    act = Activation(int(rng.integers(3)))
    st = MvmSettings(
        direction=direction, in_bits=int(rng.integers(1, 9)), out_bits=out_bits,
        adc_mode=adc_mode, activation=act, v_read=float(rng.uniform(0.2, 0.8)),
        v_decr=float(rng.uniform(0.02, 0.9)),
        inject_steps=int(rng.integers(0, 6)) if act is Activation.STOCHASTIC else 0,
        v_inject=float(rng.uniform(0.0, 0.2)),
    )
    swing = float(rng.uniform(0.02, 1.0)) if rng.random() < 0.4 else None
    offset_v = float(rng.uniform(0.0, 5e-3)) if offsets else 0.0
    return st, NonIdeal(integrator_swing_v=swing, adc_offset_v=offset_v)


def random_input(xbar, st, rng):
    m = xbar.mapping
    n = m.n_out if st.direction is Direction.BACKWARD else m.n_in
    if st.in_bits == 1:
        return rng.integers(0, 2, n)
    top = (1 << (st.in_bits - 1)) - 1
    pick = rng.random()
    if pick < 0.15:  # all at full scale, one sign: lines settle to exactly +/-2**24
        return np.full(n, top if rng.random() < 0.5 else -top)
    return rng.integers(-top, top + 1, n)


ODD = PRESETS["tiny"].replace(rows=9, cols=9, corelet=3)
"""A corelet that is not a power of two (9 lines: 4-bit addresses, ragged adder tree)."""


def check_mvms(name, seed, n_cases, n_mvms, offset_bits=0, settings=None, inputs=None):
    """``settings(rng, offsets)`` and ``inputs(xbar, st, rng)`` default to the random ones."""
    settings = settings or random_settings
    inputs = inputs or random_input
    cfg = ODD if name == "odd" else PRESETS[name]
    n = cfg.rows
    rng = np.random.default_rng(seed)
    dut = AnalogMacro(cfg, offset_bits=offset_bits)
    # the analog interface as raw values (the phase and neuron-input enums set as codes)
    pin = SimpleNamespace(**{n: Value.cast(getattr(dut.analog, n))
                             for n in dut.analog.signature.members})
    bl_of, sl_of = corelet_map(cfg)
    qmax = no_clip(cfg)
    stats = {"words": 0, "cycles": 0, "mvms": 0, "saturated": 0}

    async def bench(ctx):
        for _ in range(n_cases):
            xbar = random_case(cfg, rng)
            codes = xbar.codes()
            await load_codes(ctx, dut, codes)
            for _ in range(n_mvms):
                st, ni = settings(rng, offsets=offset_bits > 0)
                seeds = [int(rng.integers(1, 1 << max(t)))
                         for t in (cfg.lfsr_a_taps, cfg.lfsr_b_taps)]
                off = ni.offsets(n, st.v_read, rng)
                if offset_bits:
                    await load_offsets(ctx, off)
                core = CycleCore(xbar, nonideal=ni, offsets=off,
                                 lfsr=GoldenChains(cfg, *seeds))
                core.configure(st)
                noise = GoldenChains(cfg, *seeds)
                clip = ni.clip_units(st.v_read)
                ctx.set(dut.d_units, st.d_units)
                ctx.set(dut.inject_units, st.inject_units)
                ctx.set(dut.clip_units, qmax if clip is None else clip)
                await idle_words(ctx, BIAS_STAGES)  # the bias inputs' registers
                digital = DigitalNeurons(n, st)
                x = inputs(xbar, st, rng)
                keep_word = bool(rng.integers(2))
                for c in mvm_program(xbar, x, st):
                    await apply(ctx, c, digital, noise, core, keep_word)
                    if c.phase is Phase.READOUT:
                        sign, mag = digital.codes()
                        assert core.pending is not None  # lands after the next clock
                        core.land()
                        line = bl_of if c.out_bl else sl_of
                        want_s = core.bl_sign if c.out_bl else core.sl_sign
                        want_m = core.bl_mag if c.out_bl else core.sl_mag
                        assert (want_s[line] == sign).all(), (st, x)
                        assert (want_m[line] == mag).all(), (st, x)
                await check_charges(ctx, core, st)
                stats["mvms"] += 1

    async def load_offsets(ctx, off):
        assert np.abs(off).max() < 1 << (offset_bits - 1)
        ctx.set(dut.off_we, 1)
        for k in range(n):
            ctx.set(dut.off_nrn, k)
            ctx.set(dut.off_wdata, int(off[k]))
            await ctx.tick()
        ctx.set(dut.off_we, 0)

    async def check_charges(ctx, core, st):
        for k in range(n):
            ctx.set(dut.dbg_nrn, k)
            assert ctx.get(dut.dbg_charge) == core.bank.q_integ[k], (k, st)

    def set_phase(ctx, phase, nrn_in=0):
        """The word's phase and, as the engine sends beside it, its neuron flags."""
        ctx.set(pin.phase, phase)
        ctx.set(pin.nrn_flags, neuron_flags(phase, nrn_in, n))

    async def idle_words(ctx, count):
        set_phase(ctx, 0)
        for _ in range(count):
            await ctx.tick()

    async def apply(ctx, c, digital, noise, core, keep_word):
        assert not ctx.get(pin.hold)
        set_phase(ctx, int(c.phase), int(c.nrn_in))
        ctx.set(pin.drv_bl, bus(c.drv_bl, 2))
        ctx.set(pin.drv_sl, bus(c.drv_sl, 2))
        ctx.set(pin.wl_en, bus(c.wl_en, 1))
        ctx.set(pin.nrn_in, int(c.nrn_in))
        ctx.set(pin.dac_code, c.dac_code)
        ctx.set(pin.dec_en, bus(digital.dec_en(), 1))
        if c.phase is Phase.INJECT:
            ctx.set(dut.noise_bits, bus(noise.bits(1)[0, :n], 1))
        if c.phase is Phase.COMPARE_SIGN:
            await check_charges(ctx, core, core.st)
            clip = core.bank.clip
            stats["saturated"] += clip is not None and bool((abs(core.bank.q_integ) == clip).any())
        cmp_now = bits_of(ctx.get(pin.cmp), n)  # the engine samples it at the coming edge
        stall = ctx.get(pin.hold)  # high: the next clock's word must be IDLE
        await ctx.tick()
        core.step(c)
        if c.phase in (Phase.COMPARE_SIGN, Phase.COMPARE):
            assert (cmp_now == core.bank.cmp).all(), (c.phase, cmp_now, core.bank.cmp)
        if not keep_word:  # the engine sends IDLE words while held
            set_phase(ctx, 0)
            ctx.set(pin.drv_bl, 0)
            ctx.set(pin.drv_sl, 0)
            ctx.set(pin.wl_en, 0)
        held = 0
        while stall:  # IDLE words (or the WL_PULSE left applied) until hold has been low
            stall = ctx.get(pin.hold)
            await ctx.tick()
            held += 1
        assert held == (wl_pulse_cycles(cfg) - 1 if c.phase is Phase.WL_PULSE else 0)
        set_phase(ctx, 0)
        if c.phase is Phase.INJECT and rng.random() < 0.5:
            # a stall (the clock gate) between an INJECT and the next word: IDLE words
            # must keep the pending pulse, with the LFSR bits changing (not read)
            ctx.set(dut.noise_bits, int(rng.integers(0, 1 << n)))
            idle = int(rng.integers(1, 3))
            await idle_words(ctx, idle)
            held += idle
        # cmp: the comparator's output for the charge after the word (the latch is internal)
        cmp = bits_of(ctx.get(pin.cmp), n)
        live = (core.bank.q_integ + core.bank.offset > 0).astype(np.uint8)
        assert (cmp == live).all(), (c.phase, cmp, live)
        digital.after(c.phase, cmp_now)
        stats["words"] += 1
        stats["cycles"] += 1 + held

    run_sim(dut, bench)
    return stats


@pytest.mark.parametrize("name, seed, n_cases, n_mvms, offset_bits", [
    ("tiny", 1, 12, 8, 0),
    ("small", 2, 6, 6, 0),
    ("tiny", 3, 6, 8, 30),
    ("small", 4, 3, 6, 30),
    ("odd", 5, 3, 6, 30),
])
def test_macro_bit_exact_mvm_program(name, seed, n_cases, n_mvms, offset_bits):
    """Static offsets (``offset_bits`` > 0) are drawn from NonIdeal(adc_offset_v)."""
    stats = check_mvms(name, seed, n_cases, n_mvms, offset_bits)
    assert stats["mvms"] == n_cases * n_mvms
    assert stats["saturated"] > 0  # the integrator swing limit was exercised


def extreme_settings(rng, offsets=False):
    """8-bit inputs, no swing limit and the largest V_decr the d_units port holds."""
    cb = clip_bits(PRESETS["tiny"])
    v_read = 0.01
    d_max = ((1 << (cb - 1)) - 1) >> 9 << 9  # a multiple of 2**9 units (decr_units)
    adc_mode = "counting" if rng.random() < 0.5 else "binary"
    st = MvmSettings(direction=Direction(int(rng.integers(2))), in_bits=8,
                     out_bits=6 if adc_mode == "counting" else 10, adc_mode=adc_mode,
                     v_read=v_read, v_decr=d_max / (1 << 24) * v_read * float(rng.uniform(0.3, 1)))
    assert st.d_units < 1 << (cb - 1)
    return st, NonIdeal()


def full_scale_input(xbar, st, rng):
    m = xbar.mapping
    n = m.n_out if st.direction is Direction.BACKWARD else m.n_in
    top = (1 << (st.in_bits - 1)) - 1
    return np.full(n, top if rng.random() < 0.5 else -top)


def test_integrator_width_holds_the_largest_charge():
    """clip_bits from the config against the golden model: an MVM at full scale integrates
    exactly (2**M - 1) 2**24 units, below no_clip but above half of it (the width is tight);
    no_clip plus the decrements of the largest d_units fit the signed integrator."""
    for cfg in (PRESETS["tiny"], PRESETS["tiny"].replace(input_bits=4),
                PRESETS["tiny"].replace(input_bits=1)):
        xbar = Crossbar(cfg)
        xbar.program(np.ones((cfg.rows // 2, cfg.cols)))
        g = np.zeros((cfg.rows, cfg.cols))
        g[0::2] = 10.0  # only the +x rows conduct: every SL settles to exactly 2**24
        xbar.set_conductances(g)
        st = MvmSettings.from_config(cfg, v_read=0.5, v_decr=0.5)
        top = max((1 << (st.in_bits - 1)) - 1, 1)
        q = mvm(xbar, np.full(cfg.rows // 2, top), st).charge
        m_pulses = max(cfg.input_bits - 1, 1)
        assert np.abs(q).max() == ((1 << m_pulses) - 1) << 24
        assert no_clip(cfg) // 2 < np.abs(q).max() <= no_clip(cfg)
        d_max = (1 << (clip_bits(cfg) - 1)) - 1
        assert no_clip(cfg) + 2 * d_max < 1 << (charge_bits(cfg) - 1)


@pytest.mark.parametrize("name, seed", [("tiny", 21)])
def test_macro_bit_exact_at_the_width_bounds(name, seed):
    """Full-scale 8-bit inputs, no swing limit, V_decr near the d_units port's maximum: the
    integrator holds every charge (the golden model has no width)."""
    stats = check_mvms(name, seed, 3, 6, settings=extreme_settings, inputs=full_scale_input)
    assert stats["mvms"] == 18


def test_conductance_readback():
    cfg = PRESETS["small"]
    rng = np.random.default_rng(5)
    dut = AnalogMacro(cfg)
    codes = rng.integers(0, 1 << dut.g_bits, (cfg.rows, cfg.cols))

    async def bench(ctx):
        await load_codes(ctx, dut, codes)
        for r, c in np.ndindex(codes.shape):
            assert await read_code(ctx, dut, r, c) == codes[r, c], (r, c)
        # one cell rewritten: its neighbours keep their codes; g_rdata holds without g_re
        ctx.set(dut.g_row, 3)
        ctx.set(dut.g_col, 7)
        ctx.set(dut.g_wdata, 12345)
        ctx.set(dut.g_we, 1)
        await ctx.tick()
        ctx.set(dut.g_we, 0)
        codes[3, 7] = 12345
        for c in range(cfg.cols):
            assert await read_code(ctx, dut, 3, c) == codes[3, c]
        assert await read_code(ctx, dut, 3, 7) == 12345
        ctx.set(dut.g_row, 0)
        await ctx.tick()
        assert ctx.get(dut.g_rdata) == 12345

    run_sim(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_conductance_read_every_clock(name):
    """A read in every clock (a new cell each time, across the column groups of the read
    multiplexer) gives each cell exactly G_READ_CLOCKS clocks after its ``g_re``; one clock
    without ``g_re`` holds the last one."""
    cfg = PRESETS[name]
    rng = np.random.default_rng(7)
    dut = AnalogMacro(cfg)
    codes = rng.integers(0, 1 << dut.g_bits, (cfg.rows, cfg.cols))
    cells = [(int(r), int(c)) for r, c in zip(rng.integers(0, cfg.rows, 3 * cfg.cols),
                                              rng.permutation(np.arange(3 * cfg.cols) % cfg.cols),
                                              strict=True)]

    async def bench(ctx):
        await load_codes(ctx, dut, codes)
        seen = []
        for r, c in cells + [(0, 0)] * G_READ_CLOCKS:
            ctx.set(dut.g_row, r)
            ctx.set(dut.g_col, c)
            ctx.set(dut.g_re, len(seen) < len(cells))
            await ctx.tick()
            seen.append(ctx.get(dut.g_rdata))
        want = [int(codes[r, c]) for r, c in cells]
        assert seen[G_READ_CLOCKS - 1:] == want + [want[-1]]

    run_sim(dut, bench)


@pytest.mark.parametrize("name, seed", [("tiny", 21), ("small", 22)])
def test_rpu_coincidences_move_codes(name, seed):
    """RPU slots on the macro: every coincidence moves its cell by ``rpu_step`` in the slot's
    direction, clamped to [0, 2^16 - 1], judged against a pulse-by-pulse loop; ``hold``
    stays high until the last queued slot is written, and only then do reads see the array.
    Two bursts: the second starts from the first one's result."""
    cfg = PRESETS[name]
    rng = np.random.default_rng(seed)
    dut = AnalogMacro(cfg)
    g_max = (1 << dut.g_bits) - 1
    codes = rng.integers(0, g_max + 1, (cfg.rows, cfg.cols))
    codes[0, :] = rng.integers(0, 3, cfg.cols)  # cells at the bounds: the clamp is exercised
    codes[-1, :] = g_max - rng.integers(0, 3, cfg.cols)
    want = codes.copy()

    async def bench(ctx):
        await load_codes(ctx, dut, codes)
        for burst in range(2):
            step = int(rng.integers(1, 2000)) if burst else 1
            ctx.set(dut.rpu_step, step)
            n_slots = int(rng.integers(5, 4 * cfg.bl_max // 2))
            hold_seen = 0
            for _ in range(n_slots):
                r = rng.random(cfg.rows) < 0.5
                c = rng.random(cfg.cols) < 0.5
                up = bool(rng.integers(0, 2))
                ctx.set(dut.rpu_valid, 1)
                ctx.set(dut.row_pulse, bus(r, 1))
                ctx.set(dut.col_pulse, bus(c, 1))
                ctx.set(dut.rpu_up, int(up))
                for i, j in zip(*np.nonzero(np.outer(r, c)), strict=True):
                    want[i, j] = min(want[i, j] + step, g_max) if up else max(want[i, j] - step, 0)
                await ctx.tick()
                hold_seen += ctx.get(dut.analog.hold)
            ctx.set(dut.rpu_valid, 0)
            ctx.set(dut.row_pulse, 0)
            ctx.set(dut.col_pulse, 0)
            assert hold_seen > 0
            clocks = 0
            while ctx.get(dut.analog.hold):
                await ctx.tick()
                clocks += 1
                assert clocks < n_slots * (cfg.rows + 2) + 4, "hold never fell"
            for rc in np.ndindex(want.shape):
                assert await read_code(ctx, dut, *rc) == want[rc], (burst, rc)
        assert not np.array_equal(want, codes)

    run_sim(dut, bench)


def test_saturating_lanes_equal_the_clamp():
    """The one-adder lanes (the RPU queue's, and the programming pulse's single lane) give
    min(code + amount, 2^b - 1) / max(code - amount, 0), for every 5-bit code
    and amount (amount < 2^b) in both directions; with ``other`` selected a lane is
    ``other`` (the array's write data outside the RPU queue's writes)."""
    from amaranth.hdl import Module, Signal

    bits = 5
    m = Module()
    codes = [Signal(bits, name=f"c{k}") for k in range(2)]
    amount, up = Signal(bits), Signal()
    other, use_other = Signal(bits), Signal()
    opd = lane_operand(amount, up, bits)
    lanes = saturating_lanes(m, codes, opd, up, bits, "lane")
    picked = saturating_lanes(m, codes, opd, up, bits, "pick", other=other,
                              use_other=use_other)
    top = (1 << bits) - 1

    async def bench(ctx):
        for a in range(1 << bits):
            ctx.set(amount, a)
            for u in (0, 1):
                ctx.set(up, u)
                for c in range(1 << bits):
                    ctx.set(codes[0], c)
                    ctx.set(codes[1], top - c)
                    ctx.set(other, (c * 7 + a) & top)
                    for code, k in ((c, 0), (top - c, 1)):
                        want = min(code + a, top) if u else max(code - a, 0)
                        assert ctx.get(lanes[k]) == want, (code, a, u)
                        for use in (0, 1):
                            ctx.set(use_other, use)
                            assert ctx.get(picked[k]) == ((c * 7 + a) & top if use else want)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def _flops(text):
    """Flip-flop bits of a Yosys-written Verilog module: widths of registers written in
    ``always @(posedge clk)`` blocks (the memory array itself excluded)."""
    widths = {}
    for msb, lsb, name in re.findall(r"reg (?:signed )?\[(\d+):(\d+)\] (\S+)(?: =[^;]*)?;", text):
        widths[name] = int(msb) - int(lsb) + 1
    for name in re.findall(r"\breg (?:signed )?([A-Za-z_\\$][^\s\[;]*)(?: =[^;]*)?;", text):
        widths.setdefault(name, 1)
    assigned = set(re.findall(r"always @\(posedge clk\)(?:\s*begin)?\s+(?:if \([^)]*\) begin\s+)?"
                              r"(\S+) <=", text))
    return sum(widths.get(a, 1) for a in assigned)


def test_verilog_full():
    cfg = PRESETS["full"]
    t0 = time.perf_counter()
    text = verilog.convert(AnalogMacro(cfg), name="cimflow_analog_macro", emit_src=False)
    elapsed = time.perf_counter() - t0  # printed only: speed belongs in benchmarks
    assert "module cimflow_analog_macro" in text
    est = macro_resources(cfg)
    flops = _flops(text)
    print(f"\nfull AnalogMacro: {elapsed:.1f} s, {text.count(chr(10))} lines, "
          f"{flops} flops in the Verilog (estimate {est['flops']}), memory {est['memory_shape']}"
          f" = {est['memory_bits']} bits")
    assert est["memory_bits"] == 256 * 256 * 16
    # the estimate counts the same registers (the RAM's read register of one row excluded)
    assert abs(flops - cfg.cols * 16 - est["flops"]) < 0.05 * est["flops"], flops


def _sign_mag(v, w):
    """Line register word: sign 1 = positive (zero: sign 1), magnitude right-aligned."""
    return (int(v >= 0) << (w - 1)) | abs(int(v))


@pytest.mark.parametrize("name, seed, n_mvms, offset_bits",
                         [("tiny", 11, 10, 0), ("small", 12, 5, 30)])
def test_macro_with_mvm_engine(name, seed, n_mvms, offset_bits):
    """MvmEngine + AnalogMacro + LfsrChains wired as in the core: the written-back codes equal
    the golden CycleCore's, and every WL_PULSE adds wl_pulse_cycles - 1 held clocks to the
    MVM."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from cimflow.golden.cycle import mvm_clocks
    from cimflow.hdl.lfsr import LfsrChains
    from cimflow.hdl.mvm_engine import MvmEngine

    cfg = PRESETS[name].replace(input_bits=8, output_bits=10)
    w, rows = cfg.line_bits, cfg.rows
    rng = np.random.default_rng(seed)
    m = Module()
    m.submodules.eng = eng = MvmEngine(cfg, nrn_flags=True)  # the macro reads the flags
    m.submodules.mac = mac = AnalogMacro(cfg, offset_bits=offset_bits)
    m.submodules.lfsr = lfsr = LfsrChains(cfg)
    wiring.connect(m, eng.analog, mac.analog)
    m.d.comb += [
        mac.noise_bits.eq(lfsr.bits[:rows]), lfsr.en.eq(eng.lfsr_en),
        eng.lfsr_ready.eq(lfsr.ready),
    ]
    mode = eng.mode
    qmax = no_clip(cfg)

    async def bench(ctx):
        xbar = random_case(cfg, rng)
        await load_codes(ctx, mac, xbar.codes())
        for _ in range(n_mvms):
            st, ni = random_settings(rng, offsets=offset_bits > 0)
            seeds = [int(rng.integers(1, 1 << max(t))) for t in (cfg.lfsr_a_taps, cfg.lfsr_b_taps)]
            off = ni.offsets(rows, st.v_read, rng)
            if offset_bits:
                ctx.set(mac.off_we, 1)
                for k in range(rows):
                    ctx.set(mac.off_nrn, k)
                    ctx.set(mac.off_wdata, int(off[k]))
                    await ctx.tick()
                ctx.set(mac.off_we, 0)
            ctx.set(lfsr.seed_a, seeds[0])
            ctx.set(lfsr.seed_b, seeds[1])
            ctx.set(lfsr.load, 1)
            await ctx.tick()
            ctx.set(lfsr.load, 0)
            clip = ni.clip_units(st.v_read)
            ctx.set(mac.d_units, st.d_units)
            ctx.set(mac.inject_units, st.inject_units)
            ctx.set(mac.clip_units, qmax if clip is None else clip)
            x = random_input(xbar, st, rng)
            bl = rng.integers(0, 1 << w, rows)
            sl = rng.integers(0, 1 << w, rows)
            if st.direction is Direction.BACKWARD:
                sl[:x.size] = [_sign_mag(v, w) for v in x]
                in_len = x.size
            else:
                bl[0:2 * x.size:2] = [_sign_mag(v, w) for v in x]
                bl[1:2 * x.size:2] = [_sign_mag(-v, w) for v in x]
                in_len = 2 * x.size
            for port, value in [
                ("direction", st.direction.value), ("adc_mode", st.adc_mode.value),
                ("out_k", st.k), ("in_m", max(st.in_bits - 1, 1)), ("act", st.activation.value),
                ("inject_steps", st.inject_steps), ("in_len", in_len),
            ]:
                ctx.set(getattr(mode, port), value)
            ctx.set(eng.bl_values, bus(bl, w))
            ctx.set(eng.sl_values, bus(sl, w))
            await ctx.tick()  # the mode is set at least a clock before ``start``
            while not ctx.get(lfsr.ready):
                await ctx.tick()
            ctx.set(mode.start, 1)
            await ctx.tick()
            ctx.set(mode.start, 0)
            cycles, wb = 1, None
            while not ctx.get(mode.done):
                if ctx.get(eng.wb_en):
                    wb = (ctx.get(eng.wb_bank), ctx.get(eng.wb_data))
                await ctx.tick()
                cycles += 1
            pulses = max(st.in_bits - 1, 1)
            # the word delay and the clock of done, plus the held clocks of every WL_PULSE
            assert cycles == mvm_clocks(st) + pulses * (wl_pulse_cycles(cfg) - 1)
            core = CycleCore(xbar, nonideal=ni, offsets=off, lfsr=GoldenChains(cfg, *seeds))
            res = core.run(x[None], st)
            out_bl = st.direction is not Direction.FORWARD
            assert wb is not None and wb[0] == int(out_bl)
            codes = np.array([(wb[1] >> (k * w)) & ((1 << w) - 1) for k in range(rows)])
            assert np.array_equal(codes >> (w - 1), res.sign[0]), (st, x)
            assert np.array_equal(codes & ((1 << (w - 1)) - 1), res.mag[0]), (st, x)

    run_sim(m, bench)
