"""Algorithmic MVM against closed forms (docs/model.md#voltage-mode-mvm to #two-phase-inputs)."""

from dataclasses import replace

import numpy as np
import pytest

from cimflow.config import PRESETS
from cimflow.golden.array import G_FRAC_BITS, Crossbar, Direction
from cimflow.golden.mvm import (
    MvmSettings,
    bit_planes,
    input_schedule,
    mvm,
    quantize_inputs,
    recover,
    settle,
    split_two_phase,
    two_phase_mvm,
)
from cimflow.golden.neuron import CHARGE_FRAC_BITS
from cimflow.golden.nonideal import NonIdeal
from cimflow.modes import AdcMode

F = 1 << CHARGE_FRAC_BITS


def _xbar(name="medium", n_in=20, n_out=30, seed=0):
    rng = np.random.default_rng(seed)
    xb = Crossbar(PRESETS[name])
    w = rng.standard_normal((n_in, n_out))
    xb.program(w)
    return xb, w, rng


def _dg(xb):
    """G+ - G- (uS) of the programmed pairs, (n_in, n_out), from the grid codes."""
    m, g = xb.mapping, xb.codes() / (1 << G_FRAC_BITS)
    return g[0:2 * m.n_in:2, :m.n_out] - g[1:2 * m.n_in:2, :m.n_out]


def test_settle_formula_and_differential_form():
    rng = np.random.default_rng(1)
    g = rng.uniform(1, 40, (12, 7))
    v_ref, v_read = 0.9, 0.3
    s = rng.integers(-1, 2, 6)
    v = np.empty(12)
    v[0::2], v[1::2] = v_ref + s * v_read, v_ref - s * v_read
    got = settle(v, g, np.ones(12, bool))
    loop = [sum(v[i] * g[i, j] for i in range(12)) / sum(g[:, j]) for j in range(7)]
    np.testing.assert_allclose(got, loop, rtol=1e-14)
    diff = v_read * (s @ (g[0::2] - g[1::2])) / g.sum(axis=0)
    np.testing.assert_allclose(got - v_ref, diff, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", range(1, 9))
def test_input_schedule(n):
    pulses, cycles = input_schedule(n)
    if n == 1:
        assert (pulses, cycles) == (1, 1)
    else:
        assert (pulses, cycles) == (n - 1, 2 ** (n - 1) - 1)
    assert input_schedule(4) == (3, 7)


def test_bit_planes_reassemble():
    x = np.arange(-127, 128)
    p = bit_planes(x, 8)
    assert p.shape == (7, 255) and set(np.unique(p)) <= {-1, 0, 1}
    assert np.array_equal((p * (1 << np.arange(7))[:, None]).sum(axis=0), x)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ideal_charge_closed_form(n):
    """Q = C_s V_read sum_i x_i (G+ - G-) / sum G, up to the floor of each sample."""
    xb, _, rng = _xbar()
    top = 2 ** (n - 1) - 1
    x = rng.integers(-top, top + 1, (50, 20))
    r = mvm(xb, x, MvmSettings(in_bits=n, out_bits=8))
    den = xb.codes()[:40].sum(axis=0)[:30] / (1 << G_FRAC_BITS)
    expect = (x @ _dg(xb)) / den
    q = r.charge[:, :30] / F
    assert np.all(q <= expect + 1e-12) and np.all(expect - q < top / F + 1e-12)


def _half_bins(res):
    """Worst error of each reconstructed code in LSB: 1/2, or 1 for sign 0, code 0."""
    return np.where((res.sign == 0) & (res.mag == 0), 1.0, 0.5)


def test_recover_forward_backward_recurrent():
    xb, _, rng = _xbar()
    we = _dg(xb) * xb.mapping.w_max / xb.mapping.g_max  # weights the conductances hold
    x = rng.integers(-7, 8, (40, 20))
    st = MvmSettings(in_bits=4, out_bits=10, v_decr=4.0)
    res = mvm(xb, x, st)
    assert res.mag.max() < 511  # no saturation
    fwd = recover(res, xb)
    lsb = st.lsb_units / F * xb.mapping.w_max / xb.mapping.g_max
    den = xb.codes()[:40].sum(axis=0)[:30] / (1 << G_FRAC_BITS)
    # each code is read at its bin's middle, +-1/2 LSB; sign 0 code 0 at its end, 0
    half = _half_bins(res)[:, :30]
    assert np.all(np.abs(fwd - x @ we) <= half * lsb * den + 1e-9)
    assert (half == 1).any()  # the bin (-1, 0] LSB is exercised
    rec = mvm(xb, x, MvmSettings(Direction.RECURRENT, 4, 10, v_decr=4.0))
    assert np.allclose(recover(rec, xb), fwd)
    # recurrent codes are the forward codes permuted from SL to BL order
    f = mvm(xb, x, st)
    c = xb.config.corelet
    for n in range(xb.config.rows):
        i, j = divmod(n, c)
        assert np.array_equal(rec.mag[:, c * i + j], f.mag[:, c * j + i])
    d = rng.integers(-7, 8, (40, 30))
    bst = MvmSettings(Direction.BACKWARD, 4, 10, v_decr=8.0)
    bres = mvm(xb, d, bst)
    assert bres.mag.max() < 511
    bwd = recover(bres, xb)
    g = xb.codes()[:40, :30] / (1 << G_FRAC_BITS)
    blsb = bst.lsb_units / F * xb.mapping.w_max / xb.mapping.g_max
    half = _half_bins(bres)[:, :40]
    bound = blsb * (half[:, 0::2] * g[0::2].sum(axis=1) + half[:, 1::2] * g[1::2].sum(axis=1))
    assert np.all(np.abs(bwd - d @ we.T) <= bound + 1e-9)


def test_two_phase_shift_add_is_exact_in_charge():
    xb, _, rng = _xbar()
    x = rng.integers(-31, 32, (60, 20))
    st = MvmSettings(in_bits=6, out_bits=10, v_decr=1.0)
    q6 = mvm(xb, x, st).charge
    x_msb, x_lsb, b_msb, b_lsb = split_two_phase(x, 6, 3)
    assert (b_msb, b_lsb) == (3, 4)
    assert np.array_equal(8 * np.abs(x_msb) + np.abs(x_lsb), np.abs(x))
    q_msb = mvm(xb, x_msb, MvmSettings(in_bits=3)).charge
    q_lsb = mvm(xb, x_lsb, MvmSettings(in_bits=4)).charge
    assert np.array_equal(8 * q_msb + q_lsb, q6)
    # codes: equal LSBs and no saturation -> y = 8 y_MSB + y_LSB within 10 of the 6-bit code
    # (each code is within 1 LSB of its charge)
    st = MvmSettings(out_bits=10, v_decr=4.0)
    est, r_msb, r_lsb = two_phase_mvm(xb, x, 6, 3, st, st)
    y6 = mvm(xb, x, MvmSettings(in_bits=6, out_bits=10, v_decr=4.0))
    assert max(r_msb.mag.max(), r_lsb.mag.max(), y6.mag.max()) < 511
    y = 8 * r_msb.value + r_lsb.value
    assert np.abs(y - y6.value).max() <= 10
    lsb = st.lsb_units
    assert np.all(np.abs(y * lsb - q6) <= 10 * lsb)
    assert est.shape == (60, 30)


def test_bad_inputs_name_the_problem():
    xb, _, _ = _xbar()
    with pytest.raises(ValueError, match="length 19"):
        mvm(xb, np.zeros((2, 19), np.int64), MvmSettings())
    with pytest.raises(ValueError, match="out of range for in_bits = 4"):
        mvm(xb, np.full((2, 20), 8), MvmSettings(in_bits=4))
    with pytest.raises(ValueError, match="integers"):
        mvm(xb, np.zeros((2, 20)), MvmSettings())
    with pytest.raises(ValueError, match="in_bits = 9"):
        MvmSettings(in_bits=9)
    with pytest.raises(ValueError, match="out_bits = 11"):
        MvmSettings(out_bits=11)
    with pytest.raises(ValueError, match="adc_mode"):
        MvmSettings(adc_mode="flash")
    with pytest.raises(ValueError, match="n_lsb"):
        split_two_phase(np.zeros(3, np.int64), 4, 3)
    with pytest.raises(ValueError, match="lfsr"):
        from cimflow.golden.neuron import Activation
        mvm(xb, np.zeros((1, 20), np.int64),
            MvmSettings(activation=Activation.STOCHASTIC, inject_steps=2))
    with pytest.raises(ValueError, match="one per neuron"):
        mvm(xb, np.zeros((1, 20), np.int64), MvmSettings(), offsets=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="out_bits >= 2"):
        recover(mvm(xb, np.zeros((1, 20), np.int64), MvmSettings(out_bits=1)), xb)


def test_quantize_inputs():
    assert list(quantize_inputs(np.array([-1.0, -0.5, 0.0, 0.49, 1.0]), 4)) == [-7, -4, 0, 3, 7]
    assert list(quantize_inputs(np.array([0.2, 0.8]), 1)) == [0, 1]


def test_noise_moves_codes_but_keeps_shape_and_seed_reproducible():
    xb, _, rng = _xbar()
    x = rng.integers(-7, 8, (30, 20))
    st = MvmSettings(in_bits=4, out_bits=8, v_decr=0.5)
    ni = NonIdeal(read_noise_v=5e-3, ir_drop_ohm=200.0, cmp_noise_v=1e-3)
    a = mvm(xb, x, st, ni, np.random.default_rng(5))
    b = mvm(xb, x, st, ni, np.random.default_rng(5))
    c = mvm(xb, x, st)
    assert np.array_equal(a.value, b.value) and not np.array_equal(a.value, c.value)
    # IR drop scales each input line's swing by 1 / (1 + R sum_j G_ij): one active input
    one = np.zeros((1, 20), np.int64)
    one[0, 3] = 7
    ni = NonIdeal(ir_drop_ohm=500.0)
    d = mvm(xb, one, st, ni)
    g = xb.codes() / (1 << G_FRAC_BITS)
    a6, a7 = 1 / (1 + 500.0 * g[6:8].sum(axis=1) * 1e-6)
    expect = 7 * (a6 * g[6, :30] - a7 * g[7, :30]) / g[:40, :30].sum(axis=0) * F
    assert np.all(np.abs(d.charge[0, :30] - expect) <= 7 + 1)  # 1 + 2 + 4 floored samples
    # integrator swing clips the charge
    e = mvm(xb, x, st, NonIdeal(integrator_swing_v=0.01))
    assert np.abs(e.charge).max() <= NonIdeal(integrator_swing_v=0.01).clip_units(0.5)


def test_settings_from_config():
    cfg = PRESETS["small"].replace(input_bits=6, output_bits=9, adc_mode="counting")
    st = MvmSettings.from_config(cfg, v_decr=0.2)
    assert (st.in_bits, st.out_bits, st.adc_mode, st.v_decr) == (6, 9, AdcMode.COUNTING, 0.2)


def test_stochastic_binary_neuron_with_lfsr_follows_binomial():
    """Binary neurons (out_bits 1) with T LFSR pulses of +-A: P(sign 1) = P(Q + A(2B-T) > 0)."""
    from scipy.stats import binom

    from cimflow.golden.lfsr import LfsrChains
    from cimflow.golden.neuron import Activation

    xb, _, rng = _xbar("small", 8, 16)
    x = np.repeat(rng.integers(-7, 8, (1, 8)), 3000, axis=0)
    t = 16
    st = MvmSettings(in_bits=4, out_bits=1, activation=Activation.STOCHASTIC, inject_steps=t,
                     v_inject=0.01)
    r = mvm(xb, x, st, lfsr=LfsrChains(PRESETS["small"], 0x1234, 0x567))
    q0 = mvm(xb, x[:1], MvmSettings(in_bits=4, out_bits=1)).charge[0, :16]
    a = st.inject_units
    need = np.floor((t * a - q0) / (2 * a)).astype(int) + 1
    expect = binom.sf(need - 1, t, 0.5)
    p = r.sign[:, :16].mean(axis=0)
    assert np.all(np.abs(p - expect) < 4 * np.sqrt(expect * (1 - expect) / 3000) + 0.01)
    assert np.any((expect > 0.05) & (expect < 0.95))  # some neurons are genuinely random


def _integer_charge(xb, x, st):
    """Reference charge in int64 arithmetic on the physical lines: every plane drives its
    pulses (differential pairs interleaved), sum_b 2^b floor(2^24 num_b / Den)."""
    from cimflow.golden.mvm import drive_lines
    from cimflow.golden.neuron import sample_units

    s, driven, g = drive_lines(xb, st.direction, bit_planes(x, st.in_bits))
    den = g[driven].sum(axis=0)
    return sum((1 << b) * sample_units(s[b].astype(np.int64) @ g, den) for b in range(len(s)))


@pytest.mark.parametrize("g_max_us, dtype", [(40.0, np.float32), (600.0, np.float64)])
@pytest.mark.parametrize("direction", [Direction.FORWARD, Direction.BACKWARD])
def test_float_product_and_quotient_are_exact_on_a_full_core(g_max_us, dtype, direction):
    """The folded float product and the float quotient give the exact integer charge, for
    float32 (column sums < 2^24 codes) and float64 operands (here 600 uS cells)."""
    from cimflow.golden.mvm_operands import mvm_operands

    cfg = PRESETS["full"]
    rng = np.random.default_rng(7)
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((cfg.rows // 2, cfg.cols)))
    xb.set_conductances(rng.uniform(0.0, g_max_us, (cfg.rows, cfg.cols)))
    assert mvm_operands(xb, direction).matrix.dtype == dtype
    n = cfg.rows // 2 if direction is Direction.FORWARD else cfg.cols
    x = rng.choice([-127, -126, -1, 0, 1, 126, 127], (64, n))
    x[0], x[1] = 127, -127  # full-scale inputs: |num| = Den on every line
    st = MvmSettings(direction, in_bits=8, out_bits=10)
    assert np.array_equal(mvm(xb, x, st).charge, _integer_charge(xb, x, st))


def test_conductance_sums_beyond_the_exact_limit_are_refused():
    xb, _, _ = _xbar("small", 4, 4)
    xb.set_conductances(np.full(xb.target.shape, 1.0e5))  # 0.1 S cells: 8 driven rows
    with pytest.raises(ValueError, match="exact-MVM limit"):
        mvm(xb, np.zeros((1, 4), np.int64), MvmSettings())


@pytest.mark.parametrize("direction", list(Direction))
def test_recover_reads_zero_charge_and_relu_as_zero(direction):
    """An all-zero input recovers as exactly 0 (not -1/2 LSB) in every direction; outputs a
    ReLU cleared recover as 0; the centred codes of the other bins stay +-(c + 1/2) LSB."""
    from cimflow.golden.neuron import Activation

    xb, _, rng = _xbar()
    n = xb.vector_lengths(direction)[0]
    st = MvmSettings(direction, in_bits=4, out_bits=8, v_decr=2.0)
    zero = mvm(xb, np.zeros((2, n), np.int64), st)
    assert np.all(zero.charge == 0) and np.all(recover(zero, xb) == 0.0)
    x = rng.integers(-7, 8, (40, n))
    relu = mvm(xb, x, replace(st, activation=Activation.RELU))
    ident = mvm(xb, x, st)
    r_relu, r_id = recover(relu, xb), recover(ident, xb)
    if direction is not Direction.FORWARD:
        return  # outputs in BL order / differential: the forward checks cover the rule
    neg = ident.sign[:, :30] == 0
    assert neg.any() and (~neg).any()
    assert np.all(r_relu[neg] == 0.0) and np.array_equal(r_relu[~neg], r_id[~neg])
    scale = st.lsb_units / F * xb.mapping.w_max / xb.mapping.g_max
    den = xb.codes(target=True)[:40].sum(axis=0)[:30] / (1 << G_FRAC_BITS)
    mag = ident.mag[:, :30]
    code = np.where(ident.sign[:, :30] == 1, mag + 0.5, np.where(mag > 0, -(mag + 0.5), 0.0))
    np.testing.assert_allclose(r_id, code * scale * den, rtol=1e-12)


def test_positive_threshold_reads_one_code_low():
    """The comparator reads a zero residual as negative: a charge of exactly c LSB > 0 gives
    code c - 1 (bin (c - 1, c] LSB), which recover centres at c - 1/2 LSB."""
    from cimflow.golden.neuron import adc_exact

    st = MvmSettings(out_bits=5, v_read=0.5, v_decr=0.25)
    lsb = st.lsb_units
    s, m = adc_exact(np.array([3 * lsb, 3 * lsb + 1, -3 * lsb, 0]), st.d_units, st.k)
    assert s.tolist() == [1, 1, 0, 0] and m.tolist() == [2, 3, 3, 0]


def test_v_decr_grid_is_applied_visibly_or_refused():
    """V_decr has a resolution of V_read / 2^15: small roundings are applied and reported by
    v_decr_applied; a V_decr the grid would move by more than 1 % is refused (it used to be
    replaced silently, e.g. by one whole step when below it)."""
    step = 0.5 / 2**15
    st = MvmSettings(v_read=0.5, v_decr=100.3 * step)
    assert st.d_units == 100 << 9 and st.v_decr_applied == 100 * step
    assert MvmSettings(v_read=0.5, v_decr=3 * step).d_units == 3 << 9  # on the grid: exact
    for bad in (0.4 * step, 1.4 * step, 30.4 * step):
        with pytest.raises(ValueError, match=r"v_decr = .* too fine .* v_read / 2\^15"):
            MvmSettings(v_read=0.5, v_decr=bad)


def test_settings_are_checked_against_the_core_widths():
    """The config's input_bits / output_bits bound what mvm and the cycle level accept."""
    from cimflow.golden.cycle import CycleCore

    cfg = PRESETS["small"].replace(input_bits=5, output_bits=6)
    xb = Crossbar(cfg)
    xb.program(np.ones((4, 4)))
    x = np.ones((1, 4), np.int64)
    ok = MvmSettings(in_bits=5, out_bits=6)
    assert mvm(xb, x, ok).mag.shape == (1, cfg.cols)
    CycleCore(xb).run(x, ok)
    for st, msg in ((MvmSettings(in_bits=6, out_bits=6), "in_bits = 6 exceeds .*input_bits = 5"),
                    (MvmSettings(in_bits=5, out_bits=7), "out_bits = 7 exceeds .*output_bits = 6")):
        with pytest.raises(ValueError, match=msg):
            mvm(xb, x, st)
        with pytest.raises(ValueError, match=msg):
            CycleCore(xb).run(x, st)
    with pytest.raises(ValueError, match="in_bits = 8 exceeds"):
        MvmSettings.from_config(cfg, in_bits=8)
