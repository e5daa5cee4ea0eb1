"""MvmEngine under Amaranth's simulator with the golden CycleCore as the analog macro.

Every cycle the engine's control word is compared with golden ``mvm_program`` (phase,
drivers, wl_en, nrn_in, out_bl, dac_code; dec_en and lfsr_en too), then executed by
``CycleCore.step``; the core's comparator bits go back into ``cmp`` before the clock edge.
The written-back codes are compared with CycleCore's registers and with algorithmic mvm().
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.sim import Simulator

from cimflow.config import PRESETS
from cimflow.golden.array import Direction, corelet_map
from cimflow.golden.cycle import WORD_DELAY, Control, NrnIn, Phase, cycle_count
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import mvm
from cimflow.golden.neuron import Activation
from cimflow.hdl.interfaces import NEURON_GROUP, NeuronFlag, flat_ports
from cimflow.hdl.mvm_engine import MvmEngine
from cimflow.modes import AdcMode
from cimflow.verif.harness import Lockstep
from cimflow.verif.mvm_scenario import mode_registers, pack, random_case, unpack

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

_NEURON_FLAG = {Phase.PRECHARGE: NeuronFlag.PRECHARGE, Phase.INTEGRATE: NeuronFlag.INTEGRATE,
                Phase.INJECT: NeuronFlag.INJECT, Phase.DECREMENT: NeuronFlag.DECREMENT,
                Phase.COMPARE_SIGN: NeuronFlag.COMPARE, Phase.COMPARE: NeuronFlag.COMPARE}


def want_flags(word: Control, rows: int) -> int:
    """The ``nrn_flags`` of a golden word: one flag per group of NEURON_GROUP neurons, the
    same in every group (SAMPLE's by the sensed side)."""
    if word.phase is Phase.SAMPLE:
        flag = NeuronFlag.SAMPLE_BL if word.nrn_in is NrnIn.BL else NeuronFlag.SAMPLE_SL
    elif word.phase in _NEURON_FLAG:
        flag = _NEURON_FLAG[word.phase]
    else:
        return 0
    groups = -(-rows // NEURON_GROUP)
    return sum(1 << (len(NeuronFlag) * g + flag) for g in range(groups))

SEEDS = (5, 9)


def _cfg(name, in_bits=8, out_bits=10):
    return PRESETS[name].replace(input_bits=in_bits, output_bits=out_bits)


def pins(dut):
    """The engine's ports by their flat (Verilog) names, as raw values (enums read as int)."""
    return SimpleNamespace(**{k: Value.cast(v) for k, (_, v) in flat_ports(dut).items()})


def run_cases(cfg, cases, rng, *, hold_p=0.0, start_p=0.0, lfsr_wait=0, gate="hold",
              nrn_flags=True):
    """Run ``cases`` back to back on one simulated engine; check every word and readout.

    ``gate`` names the input that holds the engine with probability ``hold_p``: the macro's
    ``hold`` or the controller's ``clk_gate`` (clock gating acts as a hold). ``nrn_flags``:
    the engine is built with the neuron phase flags (checked against the golden word)."""
    dut = MvmEngine(cfg, nrn_flags=nrn_flags)
    p = pins(dut)
    w = cfg.line_bits
    rows, cols = cfg.rows, cfg.cols
    bl_of, sl_of = corelet_map(cfg)
    stats = {"cycles": 0, "held": 0, "mag>0": 0, "sign0": 0, "sign1": 0}

    async def bench(ctx):
        for case in cases:
            st = case["st"]
            for name, value in mode_registers(case).items():
                ctx.set(getattr(p, name), value)
            ctx.set(p.bl_values, pack(case["bl"], w))
            ctx.set(p.sl_values, pack(case["sl"], w))
            stoch = st.activation is Activation.STOCHASTIC and st.inject_steps > 0
            ctx.set(p.lfsr_ready, 0 if (lfsr_wait and stoch) else 1)
            golden = Lockstep(case, LfsrChains(cfg, *SEEDS))
            core, want = golden.core, golden.want
            assert len(want) == cycle_count(st)
            assert not ctx.get(p.busy)
            await ctx.tick()  # the mode is set at least a clock before ``start``
            ctx.set(p.start, 1)
            await ctx.tick()
            ctx.set(p.start, 0)
            if lfsr_wait and stoch:
                for _ in range(lfsr_wait):
                    assert ctx.get(p.busy) and ctx.get(p.phase) == 0
                    assert ctx.get(p.lfsr_en) == 0
                    await ctx.tick()
                ctx.set(p.lfsr_ready, 1)  # seen at the next edge: one more idle word
                assert ctx.get(p.busy) and ctx.get(p.phase) == 0
                await ctx.tick()
            for _ in range(WORD_DELAY):  # the word register: the word delay, busy already
                assert ctx.get(p.busy) and ctx.get(p.phase) == 0
                await ctx.tick()
            i = 0
            wb = None
            stalled = False  # hold (or the clock gate) was high in the previous clock
            while i < len(want):
                ph = ctx.get(p.phase)
                drv_bl = unpack(ctx.get(p.drv_bl), rows, 2).astype(np.uint8)
                drv_sl = unpack(ctx.get(p.drv_sl), cols, 2).astype(np.uint8)
                wl = unpack(ctx.get(p.wl_en), rows, 1).astype(bool)
                assert ctx.get(p.busy) and not ctx.get(p.done)
                was_stalled, stalled = stalled, bool(rng.random() < hold_p)
                ctx.set(getattr(p, gate), int(stalled))
                ctx.set(p.start, int(rng.random() < start_p))  # ignored while busy
                if was_stalled:  # a stall makes the next clock's word IDLE
                    assert ph == 0 and not drv_bl.any() and not drv_sl.any() and not wl.any()
                    assert ctx.get(p.nrn_in) == 0 and not ctx.get(p.lfsr_en)
                    assert not nrn_flags or ctx.get(p.nrn_flags) == 0
                    assert not ctx.get(p.wb_en)
                    ctx.set(p.cmp, int(rng.integers(0, 1 << rows)))  # must be ignored
                    stats["held"] += 1
                    await ctx.tick()
                    continue
                got = Control(Phase(ph), drv_bl, drv_sl, wl, NrnIn(ctx.get(p.nrn_in)),
                              ctx.get(p.dac_code), bool(ctx.get(p.out_bl)))
                exp = want[i]
                where = f"cycle {i}: {exp.phase.name} vs {got.phase.name}"
                assert got.phase is exp.phase, where  # before the engine-only checks
                assert ctx.get(p.lfsr_en) == (exp.phase is Phase.INJECT), where
                assert ctx.get(p.wb_en) == (exp.phase is Phase.READOUT), where
                if nrn_flags:
                    assert ctx.get(p.nrn_flags) == want_flags(exp, rows), where
                if exp.phase is Phase.DECREMENT:
                    dec = unpack(ctx.get(p.dec_en), rows, 1).astype(bool)
                    if st.adc_mode is AdcMode.COUNTING:
                        assert np.array_equal(dec, core.bank.active), where
                    else:
                        assert dec.all(), where
                if exp.phase is Phase.READOUT:
                    wb = (ctx.get(p.wb_bank), ctx.get(p.wb_data))
                ctx.set(p.cmp, pack(golden.check(got), 1))
                i += 1
                await ctx.tick()
            ctx.set(getattr(p, gate), 0)
            ctx.set(p.start, 0)
            assert ctx.get(p.done) and not ctx.get(p.busy)
            stats["cycles"] += len(want)
            # results: CycleCore registers and algorithmic mvm(), bit for bit
            out_bl = st.direction is not Direction.FORWARD
            assert wb[0] == int(out_bl)
            codes = unpack(wb[1], rows, w)
            sign = codes >> (w - 1)
            mag = codes & ((1 << (w - 1)) - 1)
            c_sign, c_mag = golden.outputs(out_bl)
            assert np.array_equal(sign, c_sign)
            assert np.array_equal(mag, c_mag)
            a = mvm(case["xb"], case["x"][None], st, case["ni"], offsets=case["off"],
                    lfsr=LfsrChains(cfg, *SEEDS))
            assert np.array_equal(sign, a.sign[0]) and np.array_equal(mag, a.mag[0])
            line = bl_of if out_bl else sl_of
            stats["mag>0"] += int((mag > 0).sum())
            stats["sign0"] += int((sign == 0).sum())
            stats["sign1"] += int((sign == 1).sum())
            assert np.array_equal(sign[line], core.bank.sign)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        sim.run()
    return stats


@pytest.mark.parametrize("name,seed,n", [("tiny", 1, 30), ("small", 2, 16), ("small", 3, 16)])
def test_random_mvms_match_golden(name, seed, n):
    cfg = _cfg(name)
    rng = np.random.default_rng(seed)
    cases = [random_case(cfg, rng) for _ in range(n)]
    stats = run_cases(cfg, cases, rng)
    assert min(stats["mag>0"], stats["sign0"], stats["sign1"]) > 0, stats


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("mode", ["binary", "counting"])
def test_every_direction_and_mode(direction, mode):
    """Each direction x mode with all three activations and the widest counting K."""
    cfg = _cfg("small")
    rng = np.random.default_rng(100 + direction.value * 2 + (mode == "counting"))
    cases = [random_case(cfg, rng, direction=direction, mode=mode, act=a, in_bits=ib,
                         out_bits=ob, static=False)
             for a, ib, ob in [(Activation.IDENTITY, 4, 8 if mode == "counting" else 10),
                               (Activation.RELU, 2, 5), (Activation.STOCHASTIC, 1, 1)]]
    run_cases(cfg, cases, rng)


def test_hold_and_start_while_busy_leave_sequence_unchanged():
    cfg = _cfg("tiny")
    rng = np.random.default_rng(11)
    cases = [random_case(cfg, rng, max_counting_k=4) for _ in range(10)]
    stats = run_cases(cfg, cases, rng, hold_p=0.3, start_p=0.2)
    assert stats["held"] > 50


def test_clock_gate_holds_like_hold():
    cfg = _cfg("tiny")
    rng = np.random.default_rng(13)
    cases = [random_case(cfg, rng, max_counting_k=4) for _ in range(4)]
    stats = run_cases(cfg, cases, rng, hold_p=0.3, gate="clk_gate")
    assert stats["held"] > 20


def test_neuron_test_grounds_every_word_line():
    """Neuron test mode: the WL_PULSE words drive the lines but enable no WL."""
    cfg = _cfg("tiny")
    rng = np.random.default_rng(14)
    case = random_case(cfg, rng, direction=Direction.FORWARD)
    dut = MvmEngine(cfg)
    p = pins(dut)

    async def bench(ctx):
        for name, value in mode_registers(case).items():
            ctx.set(getattr(p, name), value)
        ctx.set(p.bl_values, pack(case["bl"], cfg.line_bits))
        ctx.set(p.lfsr_ready, 1)
        pulses = {}
        for neuron_test in (0, 1):
            ctx.set(p.neuron_test, neuron_test)
            await ctx.tick()  # the mode is set at least a clock before ``start``
            ctx.set(p.start, 1)
            await ctx.tick()
            ctx.set(p.start, 0)
            wl, drv = 0, 0
            while ctx.get(p.busy):
                if ctx.get(p.phase) == Phase.WL_PULSE.value:
                    wl |= ctx.get(p.wl_en)
                    drv |= ctx.get(p.drv_bl)
                await ctx.tick()
            pulses[neuron_test] = (wl, drv)
        assert pulses[0][0] != 0 and pulses[1][0] == 0  # WLs on, then grounded
        assert pulses[1][1] == pulses[0][1] != 0  # the same driver codes either way

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_stochastic_waits_for_lfsr_ready():
    cfg = _cfg("tiny")
    rng = np.random.default_rng(12)
    cases = [random_case(cfg, rng, act=Activation.STOCHASTIC, mode="binary", out_bits=4,
                         inject_steps=t) for t in (1, 3, 7)]
    run_cases(cfg, cases, rng, lfsr_wait=5)


@pytest.mark.parametrize("in_bits,out_bits", [(4, 8), (1, 1), (8, 3)])
def test_config_line_widths(in_bits, out_bits):
    """Default-width registers (W = 8), W = 1 (single bit: sign and magnitude bit 0), W = 8."""
    cfg = _cfg("tiny", in_bits, out_bits)
    rng = np.random.default_rng(20 + in_bits)
    directions = [Direction.BACKWARD] if in_bits == out_bits == 1 else list(Direction)
    cases = [random_case(cfg, rng, direction=d) for d in directions for _ in range(2)]
    run_cases(cfg, cases, rng)


def test_neuron_flags_are_an_option():
    """Without ``nrn_flags`` (the default: the core for the chip's macro) the engine has no
    ``nrn_flags`` port and none of its flag registers, every other port as with them, the
    per-group ``dec_en`` copies kept; its words and readouts still equal the golden ones."""
    cfg = _cfg("small")

    def ports(dut):
        dut._MustUse__silence = True  # ports only
        return {k: (member.flow, len(Value.cast(v)))
                for k, (member, v) in flat_ports(dut).items()}

    with_flags = ports(MvmEngine(cfg, nrn_flags=True))
    without = ports(MvmEngine(cfg))
    assert with_flags["nrn_flags"][1] == len(NeuronFlag) * (cfg.rows // NEURON_GROUP)
    assert "nrn_flags" not in without
    assert without == {k: v for k, v in with_flags.items() if k != "nrn_flags"}
    texts = {flags: verilog.convert(MvmEngine(cfg, nrn_flags=flags), name="eng",
                                    emit_src=False)
             for flags in (False, True)}
    for flag in NeuronFlag:
        assert f"ana_{flag.name.lower()}0 " in texts[True].replace(";", " ")
        assert f"ana_{flag.name.lower()}" not in texts[False]
    assert "ana_counting0" in texts[False]  # dec_en's copies serve every macro
    tiny = _cfg("tiny")
    rng = np.random.default_rng(15)
    cases = [random_case(tiny, rng, max_counting_k=4) for _ in range(6)]
    stats = run_cases(tiny, cases, rng, hold_p=0.2, nrn_flags=False)
    assert stats["held"] > 10


def test_verilog_full_preset_converts():
    text = verilog.convert(MvmEngine(PRESETS["full"]), name="cimflow_mvm_engine",
                           emit_src=False)
    assert "module cimflow_mvm_engine" in text
