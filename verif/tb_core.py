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
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from cimflow.golden.array import Direction
from cimflow.golden.cycle import Control, NrnIn, Phase
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import mvm
from cimflow.golden.neuron import Activation
from cimflow.golden.stochastic_translator import (
    StrTrace,
    line_thresholds,
    signed_coincidences,
    str_update,
)
from cimflow.hdl.controller import COMMAND_LATENCY

from .commands import (
    Op,
    ProgOp,
    mode_commands,
    selection_writes,
    set_mode_arg,
    set_precision_arg,
    set_pulses,
)
from .harness import Lockstep, pack_bits, record, tb_env, unpack_bits
from .mvm_scenario import encode_line, mode_registers, random_case

__all__ = ["CoreTb", "coverage_point", "driver_codes"]


def driver_codes(value: int, lines: int) -> np.ndarray:
    """A packed 2-bit-per-line driver bus as one code per line."""
    bits = unpack_bits([value], 2 * lines)[0]
    return (bits[0::2] + 2 * bits[1::2]).astype(np.uint8)


class CoreTb:
    """Host-side driver of the core: commands, register port, SPI; golden macro loop."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.w = cfg.line_bits
        self.cycles = 0  # control words compared with the golden sequence
        self.refused = 0  # parallel-port cycles refused because SPI had the register file

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
        env = tb_env()
        tb = cls(dut, env.cfg)
        await tb.start()
        seed_a, seed_b = seed_pair or env.seeds[0]
        await tb.seeds(seed_a, seed_b)
        return tb, LfsrChains(env.cfg, seed_a, seed_b), (seed_a, seed_b), env.budget

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await FallingEdge(self.dut.clk)

    async def cmd(self, op: Op | str | int, arg: int = 0, *, expect_ok: bool = True) -> int:
        """Issue one command (an ``Op``, its name, or a raw opcode); return the status."""
        d = self.dut
        err_before = int(d.error.value)
        d.cmd_op.value = int(Op[op] if isinstance(op, str) else op)
        d.cmd_arg.value = arg
        d.cmd_valid.value = 1
        await self.tick()
        d.cmd_valid.value = 0
        await self.tick(COMMAND_LATENCY)  # the command is decided now
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

    async def _parallel(self, strobe) -> None:
        """Hold ``strobe`` until a clock edge accepts it.

        The port accepts at the edge that ends a cycle with the strobe and ``p_ready`` both
        high, so ``p_ready`` is sampled once this cycle's inputs have settled (ReadOnly),
        before that edge; sampled after it, a cycle refused for SPI traffic would pass
        for accepted and the access would be lost.
        """
        strobe.value = 1
        while True:
            await ReadOnly()
            accepted = int(self.dut.p_ready.value)
            await FallingEdge(self.dut.clk)
            if accepted:
                break
            self.refused += 1
        strobe.value = 0

    async def write_reg(self, bank: int, line: int, value: int) -> None:
        d = self.dut
        d.p_addr.value = (bank << 8) | line
        d.p_wdata.value = int(value)
        await self._parallel(d.p_we)

    async def read_reg(self, bank: int, line: int) -> int:
        d = self.dut
        d.p_addr.value = (bank << 8) | line
        await self._parallel(d.p_re)
        return int(d.p_rdata.value)  # valid in the cycle after the accepting edge

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

    async def clear_banks(self) -> None:
        """Zero both line-register banks and forget the selection (``select_cell`` assumes
        every register but the selected ones is 0)."""
        await self.write_bank(0, [0] * self.cfg.rows)
        await self.write_bank(1, [0] * self.cfg.cols)
        self._selected = (None, None)

    async def select_cell(self, r: int, c: int) -> None:
        """Select cell (r, c) for programming: its BL and SL registers 1, the previously
        selected ones back to 0 (the banks start all zero)."""
        for bank, line, value in selection_writes(getattr(self, "_selected", (None, None)),
                                                  (r, c)):
            await self.write_reg(bank, line, value)
        self._selected = (r, c)

    async def set_code(self, code: int) -> int:
        """Raise the selected (zero) cell to ``code`` with at most two SET pulses: amplitude
        255 for code // 255 clocks, then the remainder for one clock. Returns the pulses."""
        pulses = 0
        for amp, width in set_pulses(code):
            await self.cmd("SET_PULSE", amp)
            await self.cmd("SET_WIDTH", width)
            await self.cmd("PROGRAM", ProgOp.SET)
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
        for op, arg in mode_commands(regs, neuron_test):
            await self.cmd(op, arg)

    async def run_mvm(self, case, lfsr, *, set_mode: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, Lockstep]:
        """Program the mode (unless ``set_mode`` is False: the registers must already hold
        it), start an MVM, close the loop with the golden macro in lockstep."""
        d, cfg = self.dut, self.cfg
        st = case["st"]
        if set_mode:
            await self.set_mode(mode_registers(case))
        await self.tick()
        golden = Lockstep(case, lfsr)
        await self.cmd("MVM")
        rows, cols = cfg.rows, cfg.cols
        while not golden.done:
            exp = golden.expected
            ph = int(d.phase.value)
            if ph == 0:  # waiting (e.g. LFSR not ready) or the start cycle
                assert golden.step == 0, f"idle word inside an MVM at step {golden.step}"
                await self.tick()
                continue
            if exp.phase in (Phase.PRECHARGE, Phase.WL_PULSE):
                drv_bl = driver_codes(int(d.drv_bl.value), rows)
                drv_sl = driver_codes(int(d.drv_sl.value), cols)
                wl = unpack_bits([int(d.wl_en.value)], rows)[0]
            else:  # the macro ignores the drivers here: they must be idle
                drv_bl, drv_sl, wl = exp.drv_bl, exp.drv_sl, exp.wl_en
                where = f"step {golden.step}: drivers not idle in {exp.phase.name}"
                assert int(d.drv_bl.value) == 0 and int(d.drv_sl.value) == 0, where
                assert int(d.wl_en.value) == 0, where
            got = Control(Phase(ph), drv_bl, drv_sl, wl, NrnIn(int(d.nrn_in.value)),
                          int(d.dac_code.value), bool(int(d.out_bl.value)))
            cmp = golden.check(got, noise=int(d.noise_bits.value))
            d.cmp.value = pack_bits(cmp)
            self.cycles += 1
            await self.tick()
        await self.wait_done()
        out_bank = 0 if st.direction is Direction.FORWARD else 1
        n = rows if out_bank == 0 else cols
        regs_out = await self.read_bank(1 - out_bank, n)  # bank bit: 0 = BL, 1 = SL
        return regs_out >> (self.w - 1), regs_out & ((1 << (self.w - 1)) - 1), golden


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
        sign, mag, golden = await tb.run_mvm(case, lfsr)
        c_sign, c_mag = golden.outputs(case["st"].direction is not Direction.FORWARD)
        what = f"{case['st']}, x = {case['x'].tolist()}"
        assert np.array_equal(sign, c_sign), f"signs {sign} != golden {c_sign}: {what}"
        assert np.array_equal(mag, c_mag), f"magnitudes {mag} != golden {c_mag}: {what}"
        if case["st"].activation.name != "STOCHASTIC":
            a = mvm(case["xb"], case["x"][None], case["st"], case["ni"], offsets=case["off"])
            assert np.array_equal(sign, a.sign[0]) and np.array_equal(mag, a.mag[0])
        points.append(coverage_point(case))
        mvms += 1
    record("core.mvm_random", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles, mvms=mvms,
            simulated=tb.simulated, seconds=time.perf_counter() - t0, coverage=points)


@cocotb.test()
async def test_rpu_update(dut):
    """RPU update from the line registers: pulse trains and per-cell coincidence counts."""
    tb, lfsr, (seed_a, seed_b), _ = await CoreTb.seeded(dut)
    cfg = tb.cfg
    rng = np.random.default_rng(seed_b)
    w = tb.w
    points = []
    for trial in range(3):
        x = rng.integers(-(1 << (w - 1)) + 1, 1 << (w - 1), cfg.rows)
        dl = rng.integers(-(1 << (w - 1)) + 1, 1 << (w - 1), cfg.cols)
        if trial == 1:
            x = np.abs(x)  # non-negative x: two phases
        gain = int(rng.integers(1, 1 << cfg.str_gain_bits))
        bl = int(rng.integers(1, min(cfg.bl_max, 40) + 1))
        await tb.cmd("SET_GAIN", gain)
        await tb.wait_done()
        words = [encode_line(v, w, rng) for v in np.concatenate([x, dl])]
        await tb.write_bank(0, words[:cfg.rows])
        await tb.write_bank(1, words[cfg.rows:])
        thr, sign = line_thresholds(cfg, words, gain)
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
        # nothing captured is an empty train: it fails unless the golden one is empty too
        got_r = unpack_bits(rows_got, cfg.rows)
        got_c = unpack_bits(cols_got, cfg.cols)
        assert got_r.shape == want.row_pulse.shape, f"{len(rows_got)} row slots captured"
        assert got_c.shape == want.col_pulse.shape, f"{len(cols_got)} column slots captured"
        assert np.array_equal(got_r, want.row_pulse) and np.array_equal(got_c, want.col_pulse)
        counts = signed_coincidences(StrTrace(want.phase, got_r, got_c))
        assert np.array_equal(counts, signed_coincidences(want))
        points.append({"mode": "rpu_update", "phases": len(set(want.phase.tolist()))})
    record("core.rpu_update", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles,
            coverage=points)


class _Device:
    """Deterministic behavioural cell for the programming tests: a SET or RESET pulse moves
    the conductance code by the amplitude code (times the pulse width), clamped to 16 bits;
    READ returns the code."""

    def __init__(self, rows, cols, rng):
        self.g = rng.integers(0, 40_000, (rows, cols))

    def pulse(self, op, amp, width, r, c):
        if op == ProgOp.SET:
            self.g[r, c] = min(self.g[r, c] + amp * width, 0xFFFF)
        elif op == ProgOp.RESET:
            self.g[r, c] = max(self.g[r, c] - amp * width, 0)


@cocotb.test()
async def test_program_and_read_back(dut):
    """Write-verify a few cells through PROGRAM SET/RESET/READ; read-back equals target."""
    env = tb_env()
    cfg, seeds = env.cfg, env.seeds
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
            op, amp = await _program(tb, dev, ProgOp.READ, 0, 1)
            g = int(d.read_data.value)
            assert g == dev.g[r, c], "READ result differs from the cell"
            if abs(g - target) <= 64:
                break
            dist = abs(target - g)
            width = max(1, min(dist // 510, 64))
            step = min(dist // (2 * width) + 1, 255)
            await _program(tb, dev, ProgOp.SET if g < target else ProgOp.RESET, step, width)
            points.append({"mode": "program", "op": "set" if g < target else "reset"})
        assert abs(dev.g[r, c] - target) <= 64, "write-verify did not converge"
        points.append({"mode": "program", "op": "read"})
    record("core.program", seeds=[f"{seeds[0][0]}"], cycles=tb.simulated, coverage=points)


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
    env = tb_env()
    cfg = env.cfg
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
        await tb.cmd("PROGRAM", ProgOp.READ)
        await tb.cmd("SET_PRECISION", 1 | 1 << 4, expect_ok=False)  # refused: busy
        await tb.wait_done()
        bl[0], sl[0] = 1, 1

    await expect_error("command while busy", busy)
    await expect_error("malformed SPI frame (short)",
                       lambda: tb.spi_frame([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))
    if cfg.rows < 256:
        await expect_error("address out of range", lambda: tb.write_reg(0, cfg.rows, 5))
    # a well-formed SPI write and read still work afterwards
    await tb.spi_frame(spi_write_frame(1, 2, 0x5A & ((1 << w) - 1)))
    assert await tb.read_reg(1, 2) == 0x5A & ((1 << w) - 1)
    assert int(d.error.value) == 0
    await refused_mode_commands_change_nothing(tb, points)
    record("core.bad_inputs", seeds=["-"], cycles=tb.simulated, coverage=points)


async def refused_mode_commands_change_nothing(tb: CoreTb, points: list) -> None:
    """Mode commands refused while busy, with arguments unlike both the reset values and
    the loaded mode, must leave every mode register as it was.

    The mode registers are not ports, so they are re-read by their effect: an MVM started
    without reloading them must follow the loaded mode's golden control sequence and
    output codes, cycle for cycle.
    """
    cfg, d = tb.cfg, tb.dut
    rng = np.random.default_rng(11)
    lfsr = LfsrChains(cfg, 1, 1)  # identity/ReLU: the LFSR is never read
    case = random_case(cfg, rng, direction=Direction.BACKWARD, mode="counting",
                       act=Activation.RELU, static=False, in_bits=min(2, cfg.input_bits),
                       out_bits=min(3, cfg.output_bits), inject_steps=0)
    regs = mode_registers(case)
    await tb.set_mode(regs)
    other_k = (regs["out_k"] + 1) % cfg.output_bits if cfg.output_bits > 1 else 0
    refused = [
        (Op.SET_MODE, set_mode_arg(2, 0, 2, neuron_test=True)),  # rec, binary, stoch, test
        (Op.SET_PRECISION, set_precision_arg(other_k, 1 if regs["in_m"] != 1 else 2)),
        (Op.SET_IN_LEN, cfg.rows if regs["in_len"] != cfg.rows else 1),
        (Op.SET_INJECT, 0x1234),
        (Op.SET_TIMING, 3 | 3 << 4 | 7 << 8),
    ]
    # exactly one BL and one SL register equal 1, so PROGRAM is accepted: busy 40 cycles
    await tb.write_bank(0, [1] + [0] * (cfg.rows - 1))
    await tb.write_bank(1, [1] + [0] * (cfg.cols - 1))
    await tb.cmd("SET_WIDTH", 40)
    await tb.cmd("PROGRAM", ProgOp.READ)
    for op, arg in refused:
        status = await tb.cmd(op, arg, expect_ok=False)
        assert int(d.error.value) == 1 and (status >> 3) & 7 == 2, f"{op.name} not refused"
    assert int(d.neuron_test.value) == 0, "refused SET_MODE set neuron_test"
    await tb.wait_done()
    await tb.cmd("CLEAR_ERROR")
    await tb.write_bank(0, case["bl"])  # undo the cell selection
    await tb.write_bank(1, case["sl"])
    sign, mag, golden = await tb.run_mvm(case, lfsr, set_mode=False)
    c_sign, c_mag = golden.outputs(out_bl=True)
    assert np.array_equal(sign, c_sign) and np.array_equal(mag, c_mag), \
        "after refused mode commands the MVM no longer follows the loaded mode"
    points.append(coverage_point(case))


def spi_write_frame(bank: int, line: int, value: int) -> list[int]:
    """The 32 MOSI bits of an SPI register write (docs/core_architecture.md): a command
    byte (bit 7 write, bit 0 bank), the line byte and a 16-bit value, MSB first."""
    return ([1, 0, 0, 0, 0, 0, 0, bank] + [int(b) for b in f"{line:08b}"]
            + [int(b) for b in f"{value:016b}"])


@cocotb.test()
async def test_concurrent_ports(dut):
    """Parallel-port writes while SPI frames write the other bank: none is lost.

    Each parallel write is read back at once through the same port (distinct values, so a
    dropped write or a stale read cannot pass); the SPI writes are read back at the end.
    """
    env = tb_env()
    cfg = env.cfg
    tb = CoreTb(dut, cfg)
    await tb.start()
    rng = np.random.default_rng(env.seeds[0][0])
    mask = (1 << tb.w) - 1
    spi_vals = {}
    frames = 16

    async def spi_traffic():
        for k in range(frames):
            line = k % cfg.cols
            value = int(rng.integers(0, mask + 1))
            await tb.spi_frame(spi_write_frame(1, line, value), half=3)
            spi_vals[line] = value

    spi = cocotb.start_soon(spi_traffic())
    writes = 0
    while not spi.done():
        line = writes % cfg.rows
        counter = writes % mask + 1  # differs from the line's previous value
        await tb.write_reg(0, line, counter)
        got = await tb.read_reg(0, line)
        assert got == counter, f"parallel write {writes} (line {line}) lost: read {got}"
        writes += 1
    await spi
    for line, value in spi_vals.items():
        assert await tb.read_reg(1, line) == value, f"SPI write to SL {line} lost"
    assert tb.refused > 0, "no parallel access met an SPI access: the test checked nothing"
    record("core.concurrent_ports", seeds=["-"], cycles=tb.simulated, parallel_writes=writes,
           spi_writes=frames, refused_cycles=tb.refused, coverage=[])


@cocotb.test()
async def test_gating_and_neuron_test(dut):
    """Power gating refuses commands, clock gating refuses operations, neuron-test mode
    keeps every WL at ground while the drivers still apply the inputs."""
    env = tb_env()
    cfg = env.cfg
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
    record("core.gating", seeds=["-"], cycles=tb.simulated, coverage=points)


@cocotb.test()
async def test_smoke(dut):
    """One forward and one backward MVM, bit-exact: cheap enough for the full 256 x 256."""
    env = tb_env()
    cfg, seeds = env.cfg, env.seeds
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
        sign, mag, golden = await tb.run_mvm(case, lfsr)
        c_sign, c_mag = golden.outputs(direction is not Direction.FORWARD)
        assert np.array_equal(sign, c_sign) and np.array_equal(mag, c_mag)
        points.append(coverage_point(case))
    record("core.smoke", seeds=[f"{seed_a}:{seed_b}"], cycles=tb.cycles, coverage=points)


