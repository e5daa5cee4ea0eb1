"""Golden neuron ADCs, activations and non-idealities (docs/model.md#neuron-and-adc)."""

import numpy as np
import pytest
from scipy.stats import binom

from cimflow.golden.adc_reference import adc_reference
from cimflow.golden.neuron import (
    MAX_MAG_BITS,
    Activation,
    NeuronBank,
    adc_binary,
    adc_closed_form,
    adc_convert,
    adc_counting,
    adc_exact,
    apply_activation,
    dac_levels,
    decr_units,
    sample_units,
    signed_value,
)
from cimflow.golden.nonideal import NonIdeal, inject_weight_noise, relaxation_sigma


@pytest.mark.parametrize("k", range(0, MAX_MAG_BITS + 1))
def test_binary_search_and_counting_equal_exact_form_on_every_integer(k):
    d = 1 << MAX_MAG_BITS  # smallest V_decr: every charge below is a threshold somewhere
    q = np.arange(-3 * d, 3 * d + 1)
    s0, m0 = adc_exact(q, d, k)
    s1, m1 = adc_binary(q, d, k)
    assert np.array_equal(s0, s1) and np.array_equal(m0, m1)
    if k <= 7:
        s2, m2 = adc_counting(q, d, k)
        assert np.array_equal(s0, s2) and np.array_equal(m0, m2)
    # zero charge is a clean 0 with sign 0 (the latched sign drives the first step)
    assert s0[q == 0][0] == 0 and m0[q == 0][0] == 0


@pytest.mark.parametrize("k", [1, 3, 7, 9])
def test_closed_form_off_thresholds_fine_grid(k):
    q = np.linspace(-2.5, 2.5, 50_001) + 1.234e-7
    t = np.abs(q) * 2.0 ** (k - 1)
    q = q[np.abs(t - np.rint(t)) > 1e-6]
    mag = np.minimum(np.floor(np.abs(q) * 2.0 ** (k - 1)), 2**k - 1)
    d = 1 << 40
    for s, m in (adc_closed_form(q, k), adc_reference(q, k),
                 adc_exact(np.rint(q * d).astype(np.int64), d, k)):
        assert np.array_equal(s, (q > 0).astype(np.uint8))
        assert np.array_equal(m, mag)
    # both signs saturate at 2^K - 1 beyond full scale +-2
    assert set(mag[np.abs(q) >= 2]) == {2**k - 1}


def test_sign_zero_inverts_raw_bits_and_paper_example():
    # q = -0.3, K = 3: raw comparator bits 110, inverted to 001 = floor(0.3 * 4)
    d = 1 << 20
    bank = NeuronBank(1)
    bank.q_integ[:] = int(-0.3 * d)
    bank.compare_sign()
    for m in range(3):
        bank.decrement(d >> m)
        bank.compare(counting=False)
    assert bank.sign[0] == 0 and bank.mag[0] == 0b110
    s, m = bank.readout(3, False, Activation.IDENTITY)
    assert (s[0], m[0]) == (0, 0b001)
    # paper: sign 1 and C_s V_decr > Q -> first bit 0; then +V_decr/2 and the bit is still 0
    bank.precharge()
    bank.q_integ[:] = int(0.3 * d)
    assert bank.compare_sign()[0] == 1
    bank.decrement(d)
    assert bank.compare(False)[0] == 0 and bank.q_integ[0] < 0
    bank.decrement(d >> 1)
    assert bank.q_integ[0] == int(0.3 * d) - d + d // 2
    assert bank.compare(False)[0] == 0


@pytest.mark.parametrize("n", range(2, 11))
def test_shared_dac_has_2n_minus_2_levels(n):
    lv = dac_levels(0.9, 0.4, n - 1)
    assert len(np.unique(lv)) == 2 * (n - 1)
    np.testing.assert_allclose(lv[lv > 0.9] - 0.9, 0.4 / 2.0 ** np.arange(n - 1)[::-1])


def test_decr_units_and_sample_units_exact():
    d = decr_units(0.1, 0.5)
    assert d % (1 << MAX_MAG_BITS) == 0 and abs(d / 2**24 - 0.2) < 1e-4
    num = np.array([-7, 0, 5, 3])
    den = np.array([3, 4, 0, 3])
    assert list(sample_units(num, den)) == [(-7 << 24) // 3, 0, 0, 1 << 24]


def test_relu_and_signed_values():
    s, m = apply_activation(np.array([1, 0, 0]), np.array([5, 3, 0]), Activation.RELU)
    assert list(m) == [5, 0, 0]
    assert list(signed_value(np.array([1, 0]), np.array([5, 3]), 4)) == [5, -3]
    assert list(signed_value(np.array([1, 0]), np.array([0, 0]), 0)) == [1, -1]


@pytest.mark.parametrize("sampler", ["numpy", "fast_random"])
def test_logistic_comparator_noise_probability(sampler):
    from cimflow.golden.fast_random import logistic

    rng = np.random.default_rng(1)
    scale = 1000.0
    if sampler == "numpy":
        noise = lambda shape: rng.logistic(0.0, scale, shape)  # noqa: E731
    else:
        noise = lambda shape: logistic(rng, shape, scale)  # noqa: E731
    q = np.repeat(np.array([-2000, -500, 0, 500, 2000]), 20_000)
    s, _ = adc_convert(q, 1 << 20, 3, "binary", noise=noise)
    p = s.reshape(5, -1).mean(axis=1)
    expect = 1 / (1 + np.exp(-np.array([-2000, -500, 0, 500, 2000]) / scale))
    assert np.all(np.abs(p - expect) < 4 * np.sqrt(expect * (1 - expect) / 20_000) + 1e-3)


def test_stochastic_injection_follows_binomial():
    """Sign after T +-A pulses of fair bits: P(sign=1) = P(Q + A(2B - T) > 0), B ~ Bin(T)."""
    rng = np.random.default_rng(2)
    t, a, n = 8, 100, 20_000
    for q in (-250, -50, 0, 150):
        bank = NeuronBank(n)
        bank.q_integ[:] = q
        for _ in range(t):
            bank.inject(rng.integers(0, 2, n), a)
        p = bank.compare_sign().mean()
        need = int(np.floor((t * a - q) / (2 * a))) + 1  # smallest B with Q + A(2B-T) > 0
        expect = binom.sf(need - 1, t, 0.5)
        assert abs(p - expect) < 4 * np.sqrt(expect * (1 - expect) / n) + 1e-3


def test_nonideal_defaults_off_and_validation():
    ni = NonIdeal()
    assert ni.ideal and not ni.dynamic
    g = np.array([[0.0, 1.0, 20.0]])
    assert np.array_equal(ni.perturb(g, np.random.default_rng(0)), g)
    with pytest.raises(ValueError, match="read_noise_v"):
        NonIdeal(read_noise_v=-1.0)
    with pytest.raises(ValueError, match="relaxation"):
        NonIdeal(relaxation=1)
    assert NonIdeal(cmp_noise_v=1e-3).dynamic


def test_relaxation_statistics_match_crosssim_fit():
    # the fit averages ~2 uS over 1..40 uS (the paper's std after 3 iterations) and peaks
    # near 14 uS, the low-conductance peak the paper reports
    g = np.linspace(1.0, 40.0, 1000)
    assert abs(relaxation_sigma(g).mean() - 2.0) < 0.1
    assert 10 < g[np.argmax(relaxation_sigma(g))] < 16
    assert abs(relaxation_sigma(0.0) - 1.053) < 1e-12
    rng = np.random.default_rng(3)
    g = np.full((400, 400), 12.0)
    d = NonIdeal(relaxation=True).perturb(g, rng) - g
    assert abs(d.std() - relaxation_sigma(12.0)) < 0.05
    assert np.all(NonIdeal(relaxation=True).perturb(np.zeros((5, 5)), rng) == 0)  # unformed


def test_training_noise_injection_std():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((300, 300))
    d = inject_weight_noise(w, 0.10, rng) - w
    assert abs(d.std() / (0.10 * np.abs(w).max()) - 1) < 0.01


def test_ir_drop_gain_and_bad_k():
    ni = NonIdeal(ir_drop_ohm=100.0)
    gain = ni.line_gain(np.full((2, 100), 10.0))  # 1 mS load per line
    np.testing.assert_allclose(gain, 1 / 1.1)
    with pytest.raises(ValueError, match="magnitude bits"):
        adc_exact(np.array([1]), 1 << 20, 10)
    with pytest.raises(ValueError, match="mode"):
        adc_convert(np.array([1]), 1 << 20, 3, "flash")


def test_sample_units_is_the_exact_floor():
    """sample_units against Python's integer floor division, exact multiples included."""
    from cimflow.golden.neuron import CHARGE_FRAC_BITS, sample_units

    rng = np.random.default_rng(3)
    den = rng.integers(1, 256 * 65535, 20000)
    num = rng.integers(-1, 2, 20000) * (rng.random(20000) * den).astype(np.int64)
    exact_den = den.copy()
    exact_den[:2000] = 3 << 20  # the quotient is an exact integer for these
    num[:2000] = rng.integers(-3, 4, 2000) << 20
    num[2000:2100] = den[2000:2100]  # |num| = den: quotient exactly +-2**24
    num[2100:2200] = -den[2100:2200]
    den[:2000] = exact_den[:2000]
    got = sample_units(num, den)
    want = [(int(n) << CHARGE_FRAC_BITS) // int(d) for n, d in zip(num, den, strict=True)]
    assert got.tolist() == want
    assert sample_units(np.array([5]), np.array([0])).tolist() == [0]


def _binary_reference(q, d, k, offset, draws):
    """Noisy binary search in float64, step by step: comparison m is r + offset + n_m >= 0
    (the float32 converter's tie rule), then subtract or add d >> m."""
    r = np.asarray(q, np.int64) + offset
    c = [r + draws[0].astype(np.float64) >= 0]
    for m in range(k):
        r = np.where(c[-1], r - (d >> m), r + (d >> m))
        c.append(r + draws[m + 1].astype(np.float64) >= 0)
    sign = c[0]
    mag = np.zeros(r.shape, np.int64)
    for bit in c[1:]:
        mag = (mag << 1) | (bit == sign)
    return sign.astype(np.uint8), mag


@pytest.mark.parametrize("k", [1, 7, 9])
def test_noisy_binary_search_decides_as_its_noise_draws_imply(k):
    """The float32 converter against a float64 reference fed the same logistic draws: every
    decision is the one the draw implies while |q + offset| < 2^24."""
    from cimflow.golden.fast_random import logistic

    rng = np.random.default_rng(11)
    d = 1 << 22
    q = rng.integers(-(1 << 23), 1 << 23, 20_000)
    offset = rng.integers(-5000, 5000, q.size)
    draws = logistic(np.random.default_rng(12), (k + 1, q.size), d / (1 << k) * 0.7)
    s, m = adc_binary(q, d, k, offset, noise=lambda shape: draws.reshape(shape))
    rs, rm = _binary_reference(q, d, k, offset, draws)
    assert np.array_equal(s, rs) and np.array_equal(m, rm)
    s0, m0 = adc_exact(q, d, k, offset)
    assert 0.01 < np.mean(m != m0) < 0.9  # the noise really changes codes
