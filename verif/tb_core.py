"""cocotb testbenches for the whole digital core (``cimflow_core``).

The analog side is closed by the golden cycle-level model (``PyMacro`` wraps
``cimflow.golden.cycle.CycleCore``): each cycle the testbench reads the core's control
word, checks it against the golden ``mvm_program`` sequence, steps the golden array and
neurons with it and drives the comparator bits back before the clock edge that samples
them. Results are read back through the core's own host port and compared with the golden
registers. Configuration and seeds come in through CIMFLOW_CONFIG / CIMFLOW_SEEDS;
figures (cycles compared, coverage points) go to CIMFLOW_METRICS as JSON lines.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge
from cocotb.utils import get_sim_time

from cimflow.golden.array import Direction
from cimflow.golden.cycle import Control, CycleCore, NrnIn, Phase, mvm_program
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import mvm
from cimflow.golden.neuron import Activation
from cimflow.golden.stochastic_translator import (
    StrTrace,
    signed_coincidences,
    str_update,
    thresholds,
)

from .mvm_scenario import encode_line, mode_registers, random_case
from .tb_str_bank import _env, _record, _unpack

OP = dict(NOP=0x0, SET_MODE=0x1, SET_PRECISION=0x2, SET_INJECT=0x3, SET_IN_LEN=0x4,
          MVM=0x5, RPU_UPDATE=0x6, SEED_A=0x7, SEED_B=0x8, SEED_LOAD=0x9, SET_PULSE=0xA,
          SET_WIDTH=0xB, PROGRAM=0xC, POWER=0xE, CLEAR_ERROR=0xF, SET_GAIN=0x10,
          SET_TIMING=0x11)


def _codes(value: int, lines: int) -> np.ndarray:
    bits = _unpack([value], 2 * lines)[0]
    return (bits[0::2] + 2 * bits[1::2]).astype(np.uint8)


def _pack_bits(bits) -> int:
    return int.from_bytes(np.packbits(np.asarray(bits, bool), bitorder="little").tobytes(),
                          "little")


class CoreTb:
    """Host-side driver of the core: commands, register port, SPI; golden macro loop."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.w = cfg.line_bits
        self.cycles = 0  # control words compared with the golden sequence

    @property
    def simulated(self) -> int:
        """Clock cycles simulated so far (10 ns clock)."""
        return int(get_sim_time("ns")) // 10

    async def start(self) -> None:
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        d = self.dut
        for name in ("rst", "sck", "mosi", "p_we", "p_re", "p_addr", "p_wdata", "cmd_valid",
                     "cmd_op", "cmd_arg", "cmp", "hold", "g_read"):
            getattr(d, name).value = 0
        d.cs_n.value = 1
        d.rst.value = 1
        await self.tick(2)
        d.rst.value = 0
        await self.tick(2)

    @classmethod
    async def seeded(cls, dut, seed_pair=None):
        """A started testbench whose LFSR is loaded with the first CIMFLOW_SEEDS pair (or
        ``seed_pair``), and the golden LFSR that mirrors it."""
        cfg, seeds, budget = _env()
        tb = cls(dut, cfg)
        await tb.start()
        seed_a, seed_b = seed_pair or seeds[0]
        await tb.seeds(seed_a, seed_b)
        return tb, LfsrChains(cfg, seed_a, seed_b), (seed_a, seed_b), budget

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await FallingEdge(self.dut.clk)

    async def cmd(self, op: str | int, arg: int = 0, *, expect_ok: bool = True) -> int:
        """Issue one command; wait for ``done`` (accepted) or return at once if refused."""
        d = self.dut
        err_before = int(d.error.value)
        d.cmd_op.value = OP[op] if isinstance(op, str) else op
        d.cmd_arg.value = arg
        d.cmd_valid.value = 1
        await self.tick()
        d.cmd_valid.value = 0
        if int(d.error.value) and not err_before:
            assert not expect_ok, f"command {op} refused, status {int(d.status.value):#x}"
            return int(d.status.value)
        return int(d.status.value)

    async def wait_done(self, limit: int = 1_000_000) -> None:
        """Let the simulator run (no Python per cycle) until ``done``, then resync."""
        if int(self.dut.done.value):
            return
        result = await First(RisingEdge(self.dut.done), ClockCycles(self.dut.clk, limit))
        if not int(self.dut.done.value) and isinstance(result, ClockCycles):
            raise AssertionError(f"no done within {limit} cycles")
        await FallingEdge(self.dut.clk)

    async def write_reg(self, bank: int, line: int, value: int) -> None:
        d = self.dut
        d.p_addr.value = (bank << 8) | line
        d.p_wdata.value = int(value)
        d.p_we.value = 1
        await self.tick()
        while not int(d.p_ready.value):
            await self.tick()
        d.p_we.value = 0

    async def read_reg(self, bank: int, line: int) -> int:
        d = self.dut
        d.p_addr.value = (bank << 8) | line
        d.p_re.value = 1
        await self.tick()
        while not int(d.p_ready.value):
            await self.tick()
        d.p_re.value = 0
        await self.tick()
        return int(d.p_rdata.value)

    async def write_bank(self, bank: int, values) -> None:
        for line, v in enumerate(values):
            await self.write_reg(bank, line, int(v))

    async def read_bank(self, bank: int, n: int) -> np.ndarray:
        return np.array([await self.read_reg(bank, k) for k in range(n)], dtype=np.int64)

    async def spi_frame(self, bits: list[int], half: int = 4) -> list[int]:
        """Bit-bang one SPI mode-0 frame (MSB first); returns the MISO bits."""
        d = self.dut
        d.cs_n.value = 0
        await self.tick(half)
        miso = []
        for b in bits:
            d.mosi.value = b
            await self.tick(half)
            d.sck.value = 1
            await self.tick(1)
            miso.append(int(d.miso.value))
            await self.tick(half - 1)
            d.sck.value = 0
        await self.tick(half)
        d.cs_n.value = 1
        await self.tick(2 * half)
        return miso

    async def select_cell(self, r: int, c: int) -> None:
        """Select cell (r, c) for programming: its BL and SL registers 1, the previously
        selected ones back to 0 (the banks start all zero)."""
        prev_r, prev_c = getattr(self, "_selected", (None, None))
        if r != prev_r:
            if prev_r is not None:
                await self.write_reg(0, prev_r, 0)
            await self.write_reg(0, r, 1)
        if c != prev_c:
            if prev_c is not None:
                await self.write_reg(1, prev_c, 0)
            await self.write_reg(1, c, 1)
        self._selected = (r, c)

    async def set_code(self, code: int) -> int:
        """Raise the selected (zero) cell to ``code`` with at most two SET pulses: amplitude
        255 for code // 255 clocks, then the remainder for one clock. Returns the pulses."""
        pulses = 0
        for amp, width in ((255, code // 255), (code % 255, 1)):
            if amp and width:
                await self.cmd("SET_PULSE", amp)
                await self.cmd("SET_WIDTH", width)
                await self.cmd("PROGRAM", 1)
                await self.wait_done()
                pulses += 1
        return pulses

    async def seeds(self, seed_a: int, seed_b: int) -> None:
        cfg = self.cfg
        for op, seed, deg in (("SEED_A", seed_a, max(cfg.lfsr_a_taps)),
                              ("SEED_B", seed_b, max(cfg.lfsr_b_taps))):
            for k in reversed(range((deg + 15) // 16)):
                await self.cmd(op, (seed >> (16 * k)) & 0xFFFF)
                await self.wait_done()
        await self.cmd("SEED_LOAD")
        await self.wait_done()

    async def set_mode(self, regs: dict, neuron_test: bool = False) -> None:
        """Load the mode registers (verif.mvm_scenario.mode_registers) by commands."""
        await self.cmd("SET_MODE", regs["direction"] | regs["adc_mode"] << 2
                       | regs["act"] << 3 | int(neuron_test) << 5)
        await self.cmd("SET_PRECISION", regs["out_k"] | regs["in_m"] << 4)
        await self.cmd("SET_IN_LEN", regs["in_len"])
        await self.cmd("SET_INJECT", regs["inject_steps"])
        await self.cmd("SET_TIMING", regs["t_wl"] | regs["t_sample"] << 4
                       | regs["t_integ"] << 8)

    async def run_mvm(self, case, lfsr) -> tuple[np.ndarray, np.ndarray, CycleCore]:
        """Program the mode, start an MVM, close the loop with the golden macro."""
        d, cfg = self.dut, self.cfg
        st = case["st"]
        await self.set_mode(mode_registers(case))
        await self.tick()
        core = CycleCore(case["xb"], case["ni"], offsets=case["off"], lfsr=lfsr)
        core.configure(st)
        want = list(mvm_program(case["xb"], case["x"], st))
        await self.cmd("MVM")
        i = 0
        rows, cols = cfg.rows, cfg.cols
        while i < len(want):
            exp = want[i]
            ph = int(d.phase.value)
            if ph == 0:  # waiting (e.g. LFSR not ready) or the start cycle
                assert i == 0, f"idle word inside an MVM at step {i}"
                await self.tick()
                continue
            if exp.phase in (Phase.PRECHARGE, Phase.WL_PULSE):
                drv_bl = _codes(int(d.drv_bl.value), rows)
                drv_sl = _codes(int(d.drv_sl.value), cols)
                wl = _unpack([int(d.wl_en.value)], rows)[0]
            else:
                drv_bl, drv_sl, wl = exp.drv_bl, exp.drv_sl, exp.wl_en
                assert int(d.drv_bl.value) == 0 and int(d.drv_sl.value) == 0, f"step {i}"
                assert int(d.wl_en.value) == 0, f"step {i}"
            got = Control(Phase(ph), drv_bl, drv_sl, wl, NrnIn(int(d.nrn_in.value)),
                          int(d.dac_code.value), bool(int(d.out_bl.value)))
            where = f"step {i}: expected {exp.phase.name}, got {got.phase.name}"
            assert got.phase is exp.phase, where
            assert np.array_equal(got.drv_bl, exp.drv_bl), where + " (drv_bl)"
            assert np.array_equal(got.drv_sl, exp.drv_sl), where + " (drv_sl)"
            assert np.array_equal(got.wl_en, exp.wl_en), where + " (wl_en)"
            assert got.nrn_in is exp.nrn_in and got.out_bl == exp.out_bl, where
            assert got.dac_code == exp.dac_code, where + " (dac_code)"
            if exp.phase is Phase.INJECT:
                want_bits = core.lfsr.bits(1)[0, :rows]
                assert int(d.noise_bits.value) == _pack_bits(want_bits), where + " (noise)"
                core.lfsr = _Replay(want_bits)
            core.step(got)
            if exp.phase is Phase.INJECT:
                core.lfsr = lfsr
            d.cmp.value = _pack_bits(core.bank.cmp)
            i += 1
            self.cycles += 1
            await self.tick()
        await self.wait_done()
        out_bank = 0 if st.direction is Direction.FORWARD else 1
        n = rows if out_bank == 0 else cols
        regs_out = await self.read_bank(1 - out_bank, n)  # bank bit: 0 = BL, 1 = SL
        return regs_out >> (self.w - 1), regs_out & ((1 << (self.w - 1)) - 1), core


class _Replay:
    """Feeds CycleCore the noise bits already drawn for the check above."""

    def __init__(self, bits):
        self._bits = bits

    def bits(self, n):
        return self._bits[None, :]


def coverage_point(case) -> dict:
    st = case["st"]
    return {"mode": "mvm", "direction": st.direction.name.lower(), "in_bits": st.in_bits,
            "out_bits": st.out_bits, "activation": st.activation.name.lower(),
            "adc": st.adc_mode.name.lower()}


@cocotb.test()
async def test_mvm_random(dut):
    """Random MVMs: control words and output codes bit-exact with the golden cycle level."""
    tb, lfsr, (seed_a, seed_b), budget = await CoreTb.seeded(dut)
    cfg = tb.cfg
    rng = np.random.default_rng(seed_a)
    points, mvms, t0 = [], 0, time.perf_counter()
    while tb.cycles < budget:
        case = random_case(cfg, rng, static=False)
        await tb.write_bank(0, case["bl"])
        await tb.write_bank(1, case["sl"])
        sign, mag, core = await tb.run_mvm(case, lfsr)
        out_bl = case["st"].direction is not Direction.FORWARD
        c_sign = core.bl_sign if out_bl else core.sl_sign
        c_mag = core.bl_mag if out_bl else core.sl_mag
        what = f"{case['st']}, x = {case['x'].tolist()}"
        assert np.array_equal(sign, c_sign), f"signs {sign} != golden {c_sign}: {what}"
        assert np.array_equal(mag, c_mag), f"magnitudes {mag} != golden {c_mag}: {what}"
        if case["st"].activation.name != "STOCHASTIC":
            a = mvm(case["xb"], case["x"][None], case["st"], case["ni"], offsets=case["off"])
            assert np.array_equal(sign, a.sign[0]) and np.array_equal(mag, a.mag[0])
        points.append(coverage_point(case))
        mvms += 1
    _record("core.mvm_random", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles, mvms=mvms,
            simulated=tb.simulated, seconds=time.perf_counter() - t0, coverage=points)


@cocotb.test()
async def test_rpu_update(dut):
    """RPU update from the line registers: pulse trains and per-cell coincidence counts."""
    tb, lfsr, (seed_a, seed_b), _ = await CoreTb.seeded(dut)
    cfg = tb.cfg
    rng = np.random.default_rng(seed_b)
    w, n = tb.w, cfg.str_bits
    points = []
    for trial in range(3):
        x = rng.integers(-(1 << (w - 1)) + 1, 1 << (w - 1), cfg.rows)
        dl = rng.integers(-(1 << (w - 1)) + 1, 1 << (w - 1), cfg.cols)
        if trial == 1:
            x = np.abs(x)  # non-negative x: two phases
        await tb.write_bank(0, [encode_line(v, w, rng) for v in x])
        await tb.write_bank(1, [encode_line(v, w, rng) for v in dl])
        gain = int(rng.integers(1, 1 << cfg.str_gain_bits))
        bl = int(rng.integers(1, min(cfg.bl_max, 40) + 1))
        await tb.cmd("SET_GAIN", gain)
        await tb.wait_done()
        shift = n - (w - 1)
        mags = np.abs(np.concatenate([x, dl]))
        mags = mags << shift if shift >= 0 else mags >> -shift
        thr = thresholds(cfg, mags, gain)
        sign = (np.concatenate([x, dl]) < 0).astype(np.int64)
        r = cfg.rows
        want = str_update(cfg, lfsr, thr[:r], sign[:r], thr[r:], sign[r:], bl)
        await tb.cmd("RPU_UPDATE", bl)
        rows_got, cols_got, up_got = [], [], []
        for _ in range(cfg.lines + 4 * bl + 10):
            if int(tb.dut.rpu_valid.value):
                rows_got.append(int(tb.dut.row_pulse.value))
                cols_got.append(int(tb.dut.col_pulse.value))
                up_got.append(int(tb.dut.rpu_up.value))
                tb.cycles += 1
            if int(tb.dut.done.value):
                break
            await tb.tick()
        else:
            raise AssertionError("RPU update did not finish")
        assert up_got == want.up.astype(int).tolist(), "up/down phase sequence differs"
        got_r = _unpack(rows_got, cfg.rows) if rows_got else want.row_pulse
        got_c = _unpack(cols_got, cfg.cols) if cols_got else want.col_pulse
        assert np.array_equal(got_r, want.row_pulse) and np.array_equal(got_c, want.col_pulse)
        counts = signed_coincidences(StrTrace(want.phase, got_r, got_c))
        assert np.array_equal(counts, signed_coincidences(want))
        points.append({"mode": "rpu_update", "phases": len(set(want.phase.tolist()))})
    _record("core.rpu_update", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles,
            coverage=points)


class _Device:
    """Deterministic behavioural cell for the programming tests: a SET or RESET pulse moves
    the conductance code by the amplitude code (times the pulse width), clamped to 16 bits;
    READ returns the code."""

    def __init__(self, rows, cols, rng):
        self.g = rng.integers(0, 40_000, (rows, cols))

    def pulse(self, op, amp, width, r, c):
        if op == 1:
            self.g[r, c] = min(self.g[r, c] + amp * width, 0xFFFF)
        elif op == 2:
            self.g[r, c] = max(self.g[r, c] - amp * width, 0)


@cocotb.test()
async def test_program_and_read_back(dut):
    """Write-verify a few cells through PROGRAM SET/RESET/READ; read-back equals target."""
    cfg, seeds, _ = _env()
    tb = CoreTb(dut, cfg)
    await tb.start()
    rng = np.random.default_rng(seeds[0][0])
    dev = _Device(cfg.rows, cfg.cols, rng)
    d = tb.dut
    cells = [(int(rng.integers(cfg.rows)), int(rng.integers(cfg.cols))) for _ in range(4)]
    points = []
    for i, (r, c) in enumerate(cells):
        await tb.write_bank(0, [1 if k == r else 0 for k in range(cfg.rows)])
        await tb.write_bank(1, [1 if k == c else 0 for k in range(cfg.cols)])
        # alternate targets above and below the cell's state: both SET and RESET run
        g0 = int(dev.g[r, c])
        target = min(g0 + 5_000, 60_000) if i % 2 == 0 else max(g0 - 5_000, 500)
        for _ in range(64):  # incremental write-verify, driven by the host
            op, amp = await _program(tb, dev, 3, 0, 1)
            g = int(d.read_data.value)
            assert g == dev.g[r, c], "READ result differs from the cell"
            if abs(g - target) <= 64:
                break
            dist = abs(target - g)
            width = max(1, min(dist // 510, 64))
            step = min(dist // (2 * width) + 1, 255)
            await _program(tb, dev, 1 if g < target else 2, step, width)
            points.append({"mode": "program", "op": "set" if g < target else "reset"})
        assert abs(dev.g[r, c] - target) <= 64, "write-verify did not converge"
        points.append({"mode": "program", "op": "read"})
    _record("core.program", seeds=[f"{seeds[0][0]}"], cycles=tb.simulated, coverage=points)


async def _program(tb, dev, op, amp, width):
    d = tb.dut
    await tb.cmd("SET_PULSE", amp)
    await tb.cmd("SET_WIDTH", width)
    await tb.cmd("PROGRAM", op)
    pulses = 0
    sel_r = sel_c = None
    for _ in range(width + 10):
        if int(d.prog_pulse.value):
            pulses += 1
            sel_r = int(d.prog_sel_bl.value).bit_length() - 1
            sel_c = int(d.prog_sel_sl.value).bit_length() - 1
            assert int(d.prog_op.value) == op and int(d.prog_amp.value) == amp
            d.g_read.value = int(dev.g[sel_r, sel_c])
        if int(d.done.value):
            break
        await tb.tick()
    assert pulses == width, f"pulse lasted {pulses} cycles, programmed {width}"
    dev.pulse(op, amp, width, sel_r, sel_c)
    return op, amp


@cocotb.test()
async def test_bad_inputs(dut):
    """Unknown opcode, command while busy, bad argument, malformed SPI frame, bad address:
    the error flag rises, the command is ignored and every register keeps its value."""
    cfg, seeds, _ = _env()
    tb = CoreTb(dut, cfg)
    await tb.start()
    d = tb.dut
    rng = np.random.default_rng(3)
    w = tb.w
    bl = rng.integers(2, 1 << w, cfg.rows)  # no value 1: no cell selected by accident
    sl = rng.integers(2, 1 << w, cfg.cols)
    await tb.write_bank(0, bl)
    await tb.write_bank(1, sl)
    await tb.cmd("SET_PRECISION", 3 | 2 << 4)
    status0 = int(d.status.value)
    points = []

    async def expect_error(name, action):
        await action()
        await tb.tick(2)
        assert int(d.error.value) == 1, f"{name}: no error flag"
        assert np.array_equal(await tb.read_bank(0, cfg.rows), bl), f"{name}: BL changed"
        assert np.array_equal(await tb.read_bank(1, cfg.cols), sl), f"{name}: SL changed"
        await tb.cmd("CLEAR_ERROR")
        await tb.tick(2)
        assert int(d.error.value) == 0 and int(d.status.value) & 0x3D == status0 & 0x3D
        points.append({"mode": "error", "case": name})

    await expect_error("unknown opcode", lambda: tb.cmd(0x1F, 0, expect_ok=False))
    await expect_error("bad argument", lambda: tb.cmd("SET_PRECISION", 0xF, expect_ok=False))

    async def busy():
        await tb.cmd("SET_WIDTH", 50)
        await tb.write_reg(0, 0, 1)  # select one cell so PROGRAM is accepted
        await tb.write_reg(1, 0, 1)
        await tb.cmd("PROGRAM", 3)
        await tb.cmd("SET_PRECISION", 1 | 1 << 4, expect_ok=False)  # refused: busy
        await tb.wait_done()
        bl[0], sl[0] = 1, 1

    await expect_error("command while busy", busy)
    await expect_error("malformed SPI frame (short)",
                       lambda: tb.spi_frame([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))
    if cfg.rows < 256:
        await expect_error("address out of range", lambda: tb.write_reg(0, cfg.rows, 5))
    # a well-formed SPI write and read still work afterwards
    frame = [1, 0, 0, 0, 0, 0, 0, 1] + [int(b) for b in f"{2:08b}"] + \
        [int(b) for b in f"{0x5A & ((1 << w) - 1):016b}"]
    await tb.spi_frame(frame)
    assert await tb.read_reg(1, 2) == 0x5A & ((1 << w) - 1)
    assert int(d.error.value) == 0
    _record("core.bad_inputs", seeds=["-"], cycles=tb.simulated, coverage=points)


@cocotb.test()
async def test_gating_and_neuron_test(dut):
    """Power gating refuses commands, clock gating refuses operations, neuron-test mode
    keeps every WL at ground while the drivers still apply the inputs."""
    cfg, seeds, _ = _env()
    tb = CoreTb(dut, cfg)
    await tb.start()
    d = tb.dut
    points = []
    await tb.cmd("POWER", 1)
    assert int(d.pwr_gate.value) == 1
    status = await tb.cmd("SET_PRECISION", 1 | 1 << 4, expect_ok=False)
    assert (status >> 3) & 7 == 4, "a command while power-gated must fail POWER_GATED"
    await tb.cmd("POWER", 0)
    await tb.cmd("CLEAR_ERROR")
    points.append({"mode": "gating", "case": "power gate"})
    await tb.cmd("POWER", 2)
    assert int(d.clk_gate.value) == 1
    status = await tb.cmd("MVM", expect_ok=False)
    assert (status >> 3) & 7 == 4 and int(d.busy.value) == 0
    await tb.cmd("POWER", 0)
    await tb.cmd("CLEAR_ERROR")
    points.append({"mode": "gating", "case": "clock gate"})
    rng = np.random.default_rng(5)
    case = random_case(cfg, rng, direction=Direction.FORWARD, act=Activation.IDENTITY,
                       static=False, mode="binary", in_bits=3, out_bits=4)
    case["x"][0] = 3  # at least one driven input
    case["bl"][0] = encode_line(3, tb.w, rng)
    await tb.write_bank(0, case["bl"])
    regs = mode_registers(case)
    await tb.set_mode(regs, neuron_test=True)  # forward, binary, identity
    await tb.cmd("MVM")
    pulses = 0
    for _ in range(2000):
        if int(d.phase.value) == Phase.WL_PULSE:
            pulses += 1
            assert int(d.wl_en.value) == 0, "neuron test: a WL was raised"
        if int(d.done.value):
            break
        await tb.tick()
    assert pulses == regs["in_m"] and int(d.error.value) == 0
    points.append({"mode": "gating", "case": "neuron test"})
    _record("core.gating", seeds=["-"], cycles=tb.simulated, coverage=points)


@cocotb.test()
async def test_smoke(dut):
    """One forward and one backward MVM, bit-exact: cheap enough for the full 256 x 256."""
    cfg, seeds, _ = _env()
    tb = CoreTb(dut, cfg)
    await tb.start()
    seed_a, seed_b = seeds[0]
    rng = np.random.default_rng(seed_a)
    lfsr = LfsrChains(cfg, 1, 1)
    points = []
    for direction in (Direction.FORWARD, Direction.BACKWARD):
        case = random_case(cfg, rng, direction=direction, act=Activation.IDENTITY,
                           static=False, in_bits=4, out_bits=8, mode="binary")
        await tb.write_bank(0, case["bl"])
        await tb.write_bank(1, case["sl"])
        sign, mag, core = await tb.run_mvm(case, lfsr)
        out_bl = direction is not Direction.FORWARD
        assert np.array_equal(sign, core.bl_sign if out_bl else core.sl_sign)
        assert np.array_equal(mag, core.bl_mag if out_bl else core.sl_mag)
        points.append(coverage_point(case))
    _record("core.smoke", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles, coverage=points)


