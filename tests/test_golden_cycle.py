"""Two levels, one truth: the cycle level gives the algorithmic level's codes bit for bit."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimflow.config import PRESETS
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import (
    DRV_FLOAT,
    DRV_HIGH,
    DRV_LOW,
    DRV_REF,
    WRITEBACK_DELAY,
    Control,
    CycleCore,
    Phase,
    cycle_count,
    mvm_program,
)
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import MvmSettings, mvm
from cimflow.golden.neuron import Activation, NeuronBank, adc_exact
from cimflow.golden.nonideal import NonIdeal


def _case(seed, name, direction, in_bits, out_bits, mode, act, static):
    cfg = PRESETS[name]
    rng = np.random.default_rng(seed)
    xb = Crossbar(cfg)
    n_in = int(rng.integers(1, cfg.rows // 2 + 1))
    n_out = int(rng.integers(1, cfg.cols + 1))
    xb.program(rng.standard_normal((n_in, n_out)) * rng.uniform(0.1, 10))
    ni = NonIdeal()
    if static:
        ni = NonIdeal(relaxation=True, prog_sigma_us=0.5, adc_offset_v=2e-3,
                      integrator_swing_v=float(rng.uniform(0.02, 0.5)))
        xb.set_conductances(ni.perturb(xb.target, rng))
    s = MvmSettings(direction, in_bits, out_bits, mode, act, v_read=float(rng.uniform(0.1, 0.5)),
                    v_decr=float(rng.uniform(0.005, 0.8)), inject_steps=int(rng.integers(0, 6)),
                    v_inject=float(rng.uniform(0, 0.05)))
    n = n_out if direction is Direction.BACKWARD else n_in
    if in_bits == 1:
        x = rng.integers(0, 2, (3, n))
    else:
        top = (1 << (in_bits - 1)) - 1
        x = rng.integers(-top, top + 1, (3, n))
        x[0, :] = 0  # an all-zero input: every charge exactly 0
    off = ni.offsets(cfg.rows, s.v_read, rng)
    return xb, ni, s, x, off, cfg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(["tiny", "small", "medium"]),
    direction=st.sampled_from(list(Direction)),
    in_bits=st.integers(1, 8),
    out_bits=st.integers(1, 10),
    mode=st.sampled_from(["binary", "counting"]),
    act=st.sampled_from(list(Activation)),
    static=st.booleans(),
)
def test_cycle_equals_algorithmic(seed, name, direction, in_bits, out_bits, mode, act, static):
    if mode == "counting":
        out_bits = min(out_bits, 7)  # 2^K - 1 steps: keep the cycle run short
    xb, ni, s, x, off, cfg = _case(seed, name, direction, in_bits, out_bits, mode, act, static)
    a = mvm(xb, x, s, ni, offsets=off, lfsr=LfsrChains(cfg, 5, 9))
    c = CycleCore(xb, ni, offsets=off, lfsr=LfsrChains(cfg, 5, 9)).run(x, s)
    assert np.array_equal(a.charge, c.charge)
    assert np.array_equal(a.sign, c.sign)
    assert np.array_equal(a.mag, c.mag)


def test_full_size_core_agrees():
    xb, ni, s, x, off, cfg = _case(7, "full", Direction.FORWARD, 4, 8, "binary",
                                   Activation.IDENTITY, True)
    a = mvm(xb, x, s, ni, offsets=off)
    c = CycleCore(xb, ni, offsets=off).run(x, s)
    assert np.array_equal(a.value, c.value) and (a.mag > 0).any() and (a.sign == 0).any()


@pytest.mark.parametrize("mode", ["binary", "counting"])
@pytest.mark.parametrize("in_bits", [1, 2, 4, 8])
def test_program_phases_and_counts(mode, in_bits):
    xb = Crossbar(PRESETS["small"])
    xb.program(np.ones((4, 3)))
    s = MvmSettings(in_bits=in_bits, out_bits=5, adc_mode=mode)
    x = np.ones(4, np.int64)
    prog = list(mvm_program(xb, x, s))
    assert len(prog) == cycle_count(s)
    phases = [c.phase for c in prog]
    m = max(in_bits - 1, 1)
    assert phases.count(Phase.WL_PULSE) == m
    assert phases.count(Phase.SAMPLE) == phases.count(Phase.INTEGRATE) == 2**m - 1
    assert phases[0] is Phase.PRECHARGE and phases[-1] is Phase.READOUT
    # the DAC settles for two clocks: the code two words before each DECREMENT is its own
    # (binary m = 0..K-1, counting K-1), and nothing else reads the code
    dec = [prog[i - 2].dac_code for i, c in enumerate(prog) if c.phase is Phase.DECREMENT]
    assert dec == ([0, 1, 2, 3] if mode == "binary" else [3] * 15)
    # first pulse: pairs driven +/- for x = +1 on the LSB plane, outputs float
    p = prog[1]
    assert list(p.drv_bl[:8]) == [DRV_HIGH, DRV_LOW] * 4
    assert np.all(p.drv_bl[8:] == DRV_FLOAT) and np.all(p.drv_sl == DRV_FLOAT)
    assert list(p.wl_en[:9]) == [True] * 8 + [False]
    assert np.all(prog[0].drv_bl == DRV_REF)


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_stochastic_program_adds_each_pulse_a_word_late(steps):
    """T INJECT words, then one INTEGRATE (the last pulse waits on C_sample), then
    COMPARE_SIGN; the charge after the i-th INJECT holds the first i - 1 pulses (the sum of
    +/-A over the LFSR bits, no swing limit here) and the INTEGRATE adds the last."""
    cfg = PRESETS["tiny"]
    xb = Crossbar(cfg)
    xb.program(np.ones((2, 2)))
    s = MvmSettings(in_bits=2, out_bits=3, activation=Activation.STOCHASTIC,
                    inject_steps=steps, v_inject=0.01)
    prog = list(mvm_program(xb, np.array([1, -1]), s))
    plain = MvmSettings(in_bits=2, out_bits=3)
    assert len(prog) == cycle_count(s) == cycle_count(plain) + (steps + 1 if steps else 0)
    phases = [c.phase for c in prog]
    first = phases.index(Phase.COMPARE_SIGN) - steps - (1 if steps else 0)
    tail = [Phase.INJECT] * steps + ([Phase.INTEGRATE] if steps else []) + [Phase.COMPARE_SIGN]
    assert phases[first - 1] is Phase.INTEGRATE and phases[first:first + len(tail)] == tail
    core = CycleCore(xb, lfsr=LfsrChains(cfg, 5, 9))
    core.configure(s)
    bits = LfsrChains(cfg, 5, 9).bits(max(steps, 1))[:, :cfg.rows]
    pulses = np.where(bits == 1, s.inject_units, -s.inject_units)
    assert s.inject_units > 0
    base = None
    for i, c in enumerate(prog):
        if i == first:
            base = core.bank.q_integ.copy()
        core.step(c)
        if first <= i < first + steps:  # after INJECT number i - first + 1
            done = i - first
            assert np.array_equal(core.bank.q_integ, base + pulses[:done].sum(axis=0))
        elif steps and i == first + steps:  # the INTEGRATE after the last INJECT
            assert np.array_equal(core.bank.q_integ, base + pulses[:steps].sum(axis=0))


def test_backward_program_drives_sls_and_all_wls():
    xb = Crossbar(PRESETS["small"])
    xb.program(np.ones((4, 3)))
    s = MvmSettings(Direction.BACKWARD, in_bits=2, out_bits=3)
    p = list(mvm_program(xb, np.array([1, 0, -1]), s))[1]
    assert p.phase is Phase.WL_PULSE
    assert list(p.drv_sl[:4]) == [DRV_HIGH, DRV_REF, DRV_LOW, DRV_FLOAT]
    assert np.all(p.drv_bl == DRV_FLOAT) and np.all(p.wl_en)


def test_trace_and_errors():
    xb = Crossbar(PRESETS["tiny"])
    xb.program(np.ones((2, 2)))
    core = CycleCore(xb)
    core.trace = []
    s = MvmSettings(in_bits=3, out_bits=4)
    core.run(np.array([[3, -2]]), s)
    assert len(core.trace) == core.cycles == cycle_count(s)
    with pytest.raises(ValueError, match="static and integer"):
        CycleCore(xb, NonIdeal(read_noise_v=1e-3))
    with pytest.raises(ValueError, match="one input vector"):
        list(mvm_program(xb, np.zeros((2, 2), np.int64), s))
    with pytest.raises(ValueError, match="lfsr"):
        CycleCore(xb).run(np.array([[1, 1]]),
                          MvmSettings(activation=Activation.STOCHASTIC, inject_steps=1))


def test_write_back_lands_a_clock_after_readout():
    """READOUT's codes are pending through its own step and land at the next one (the clock
    of done, WRITEBACK_DELAY = 1): the registers equal mvm()'s codes only then."""
    xb = Crossbar(PRESETS["tiny"])
    xb.program(np.array([[1.0, -2.0], [0.5, 3.0]]))
    core = CycleCore(xb)
    s = MvmSettings(in_bits=3, out_bits=4)
    core.configure(s)
    x = np.array([3, -2])
    want = mvm(xb, x[None], s)
    before = (core.sl_sign.copy(), core.sl_mag.copy())
    for c in mvm_program(xb, x, s):
        core.step(c)
    assert WRITEBACK_DELAY == 1
    assert core.pending is not None  # READOUT stepped: nothing landed yet
    assert np.array_equal(core.sl_sign, before[0]) and np.array_equal(core.sl_mag, before[1])
    assert (want.mag[0] != before[1]).any()  # a case in which landing is visible
    n = xb.config.rows
    core.step(Control(Phase.IDLE, np.zeros(n, np.uint8), np.zeros(n, np.uint8),
                      np.zeros(n, bool)))
    assert core.pending is None
    assert np.array_equal(core.sl_sign, want.sign[0])
    assert np.array_equal(core.sl_mag, want.mag[0])


def _closed_form_code(q: int, lsb: int, k: int) -> tuple[int, int]:
    """The chip's transfer in Python integers (tie rule: a comparison reads 1 only for a
    residual > 0): q > 0 -> (1, min(ceil(q / lsb) - 1, 2^K - 1)), q <= 0 -> (0, min(floor(-q /
    lsb), 2^K - 1))."""
    top = (1 << k) - 1
    if q > 0:
        return 1, min(-(-q // lsb) - 1, top)
    return 0, min(-q // lsb, top)


@pytest.mark.parametrize("mode", ["binary", "counting"])
@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_cycle_neuron_converts_every_integer_charge(mode, k):
    """The cycle-level NeuronBank, driven by the sequencer's own ADC control words, on every
    integer charge in [-3 V_decr, +3 V_decr] (every threshold, zero and saturation), against
    the closed form in Python integers and against the functional converter."""
    xb = Crossbar(PRESETS["tiny"])
    xb.program(np.ones((2, 4)))
    s = MvmSettings(in_bits=2, out_bits=k + 1, adc_mode=mode, v_read=0.5,
                    v_decr=0.5 / (1 << 15))  # V_decr = 2^9 units: the finest grid
    d = s.d_units
    assert d == 1 << 9
    q = np.arange(-3 * d, 3 * d + 1)
    core = CycleCore(xb)
    core.configure(s)
    core.bank = NeuronBank(q.size)
    prog = list(mvm_program(xb, np.zeros(2, np.int64), s))
    # from the last INTEGRATE (C_sample empty: it adds 0), whose DAC code the first
    # DECREMENT uses (the DAC settles for two clocks)
    first = [c.phase for c in prog].index(Phase.COMPARE_SIGN) - 1
    assert prog[first].phase is Phase.INTEGRATE
    adc = [c for c in prog[first:] if c.phase is not Phase.READOUT]
    core.bank.q_integ[:] = q
    for c in adc:
        core.step(c)
    sign, mag = core.bank.readout(k, mode == "counting", Activation.IDENTITY)
    want = np.array([_closed_form_code(int(v), d >> (k - 1), k) for v in q])
    assert np.array_equal(sign, want[:, 0]) and np.array_equal(mag, want[:, 1])
    s_f, m_f = adc_exact(q, d, k)
    assert np.array_equal(sign, s_f) and np.array_equal(mag, m_f)
    assert (sign[q == 0], mag[q == 0]) == (0, 0)  # zero charge: sign 0, code 0
