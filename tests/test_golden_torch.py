"""The golden MVM on torch tensors: every device this run has, both CPU paths (fused numba
kernel and torch operations), many cores per call, and draws made on the device."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from test_golden_cycle import _case
from torch.overrides import TorchFunctionMode

from cimflow.config import PRESETS
from cimflow.golden import fused_cpu, mvm_kernels
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import CycleCore
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import MvmSettings, bit_planes, drive_lines, mvm, mvm_cores
from cimflow.golden.mvm_operands import mvm_operands
from cimflow.golden.neuron import (
    Activation,
    adc_exact,
    charge_units,
    integ_units,
    sample_units,
    signed_value,
)
from cimflow.golden.nonideal import REALISTIC, NonIdeal

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = ([("cpu", "fused")] * fused_cpu.AVAILABLE + [(d, "torch") for d in DEVICES]
            + [("cpu", "torch-cudalike")])


class CudaScalarDivision(TorchFunctionMode):
    """The CPU torch path under CUDA's semantics of a division by a scalar: CUDA computes
    a / b as a * (1 / b) (two roundings), the CPU divides (one). An exact floor built on the
    CPU's division passes on the CPU and fails on a GPU (it did: a code one low at an exact
    multiple of the LSB); under this mode the CPU run fails the same way."""

    _DIV = {torch.Tensor.__truediv__: torch.Tensor.__mul__, torch.Tensor.div: torch.Tensor.mul,
            torch.div: torch.mul, torch.true_divide: torch.mul,
            torch.Tensor.__itruediv__: torch.Tensor.__imul__, torch.Tensor.div_: torch.Tensor.mul_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        mul = self._DIV.get(func)
        if (mul is not None and kwargs.get("rounding_mode") is None and len(args) == 2
                and isinstance(args[1], (int, float)) and isinstance(args[0], torch.Tensor)
                and args[0].is_floating_point()):
            return mul(args[0], 1.0 / args[1])
        return func(*args, **kwargs)


@pytest.fixture
def backend(request, monkeypatch):
    device, path = request.param
    monkeypatch.setattr(mvm_kernels, "use_fused", path == "fused")
    if path != "torch-cudalike":
        yield device
        return
    with CudaScalarDivision():
        yield device


def _codes(res):
    return [np.asarray(t.cpu()) if isinstance(t, torch.Tensor) else t
            for t in (res.sign, res.mag, res.charge)]


def _full_core(seed, g_max_us=40.0):
    cfg = PRESETS["full"]
    rng = np.random.default_rng(seed)
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((cfg.rows // 2, cfg.cols)))
    xb.set_conductances(rng.uniform(0.0, g_max_us, (cfg.rows, cfg.cols)))
    return xb, rng


@pytest.mark.parametrize("backend", BACKENDS, indirect=True, ids="-".join)
@pytest.mark.parametrize("g_max_us", [40.0, 600.0])  # float32 and float64 products
@pytest.mark.parametrize("direction", [Direction.FORWARD, Direction.BACKWARD])
def test_charge_is_the_integer_reference_on_every_device(backend, g_max_us, direction):
    """Tensor inputs on the device: charge = sum_b 2^b floor(2^24 num_b / Den) computed in
    int64 on the physical, interleaved lines, full-scale inputs (|num| = Den) included."""
    xb, rng = _full_core(3, g_max_us)
    n = 128 if direction is Direction.FORWARD else 256
    x = rng.choice([-127, -126, -1, 0, 1, 126, 127], (40, n))
    x[0], x[1] = 127, -127
    st_ = MvmSettings(direction, in_bits=8, out_bits=10)
    s, driven, g = drive_lines(xb, direction, bit_planes(x, 8))
    den = g[driven].sum(axis=0)
    ref = sum((1 << b) * sample_units(s[b].astype(np.int64) @ g, den) for b in range(len(s)))
    res = mvm(xb, torch.from_numpy(x).to(backend), st_)
    assert isinstance(res.charge, torch.Tensor) and res.charge.device.type == backend
    assert np.array_equal(res.charge.cpu().numpy(), ref)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True, ids="-".join)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["tiny", "small", "medium"]),
       direction=st.sampled_from(list(Direction)), in_bits=st.integers(1, 8),
       out_bits=st.integers(1, 10), mode=st.sampled_from(["binary", "counting"]),
       act=st.sampled_from(list(Activation)), static=st.booleans())
def test_cycle_equals_algorithmic_on_every_path(backend, seed, name, direction, in_bits,
                                                out_bits, mode, act, static):
    """The cycle level (integer reference) == the algorithmic level on this device/path."""
    if mode == "counting":
        out_bits = min(out_bits, 7)
    xb, ni, s, x, off, cfg = _case(seed, name, direction, in_bits, out_bits, mode, act, static)
    a = mvm(xb, torch.from_numpy(x).to(backend), s, ni, offsets=off,
            lfsr=LfsrChains(cfg, 5, 9))
    c = CycleCore(xb, ni, offsets=off, lfsr=LfsrChains(cfg, 5, 9)).run(x, s)
    got = _codes(a)
    assert np.array_equal(got[2], c.charge)
    assert np.array_equal(got[0], c.sign) and np.array_equal(got[1], c.mag)


STATIC = [
    NonIdeal(adc_offset_v=1e-3, integrator_swing_v=0.05),
    NonIdeal(relaxation=True, adc_offset_v=1e-3, integrator_swing_v=0.03),
]
NOISE = [
    NonIdeal(read_noise_v=2e-3),
    NonIdeal(read_noise_v=2e-3, adc_offset_v=1e-3, integrator_swing_v=0.05),
    NonIdeal(cmp_noise_v=0.5e-3, adc_offset_v=1e-3),
    NonIdeal(read_noise_v=1e-3, cmp_noise_v=1e-3, integrator_swing_v=0.3),
]
ALPHA = 1e-3
"""Significance of each statistical test below (seeded, so a pass is reproducible; a
correct implementation fails one with probability ALPHA per seed)."""
needs_numba = pytest.mark.skipif(not fused_cpu.AVAILABLE, reason="numba is not installed")


def _both_paths(monkeypatch, xb, x, st_, ni, seed, offsets=None):
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(mvm_kernels, "use_fused", fused)
        out[fused] = mvm(xb, x, st_, ni, np.random.default_rng(seed), offsets=offsets)
    return out


@needs_numba
@pytest.mark.parametrize("ni", STATIC)
@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("batch", [1, 75])
def test_fused_kernel_equals_torch_path_exactly_without_noise(monkeypatch, ni, direction,
                                                              batch):
    """Static effects only (offsets, swing, relaxed conductances): both CPU paths give
    identical charge and codes; the swing clips (the charge reaches it)."""
    xb, rng = _full_core(5)
    xb.set_conductances(ni.perturb(xb.target, rng))
    x = rng.integers(-7, 8, (batch, 128 if direction is not Direction.BACKWARD else 256))
    st_ = MvmSettings(direction, in_bits=4, out_bits=8, v_decr=0.3)
    out = _both_paths(monkeypatch, xb, x, st_, ni, 11)
    for a, b in zip(_codes(out[True]), _codes(out[False]), strict=True):
        assert np.array_equal(a, b)
    assert np.abs(out[True].charge).max() == ni.clip_units(st_.v_read)


@needs_numba
@pytest.mark.parametrize("aggregate", [True, False], ids=["aggregate", "sequential"])
@pytest.mark.parametrize("ni", NOISE)
@pytest.mark.parametrize("direction", [Direction.FORWARD, Direction.BACKWARD])
def test_fused_kernel_codes_have_the_torch_paths_distribution(monkeypatch, ni, direction,
                                                              aggregate):
    """Under noise the two CPU paths draw different samples (the kernel its own streams)
    from the same distributions: the histograms of code - ideal code over 600 repeats of
    one input on every line pass a two-sample chi-square test at ALPHA, and seeded runs
    repeat; for both of the kernel's samplers (aggregate and sequential)."""
    monkeypatch.setattr(mvm_kernels, "aggregate_noise", aggregate)
    xb, rng = _full_core(5)
    n = 128 if direction is not Direction.BACKWARD else 256
    x = np.repeat(rng.integers(-7, 8, (1, n)), 600, axis=0)
    st_ = MvmSettings(direction, in_bits=4, out_bits=8, v_decr=0.3)
    off = ni.offsets(256, st_.v_read, np.random.default_rng(3)) if ni.adc_offset_v else None
    ideal = mvm(xb, x[:1], st_, offsets=off).value
    out = _both_paths(monkeypatch, xb, x, st_, ni, 11, off)
    dev = [(out[f].value - ideal).ravel() for f in (True, False)]
    assert dev[0].std() > 0.5  # the noise moves codes
    lo, hi = min(d.min() for d in dev), max(d.max() for d in dev)
    table = np.stack([np.bincount(d - lo, minlength=hi - lo + 1) for d in dev])
    table = _merge_sparse_bins(table)
    assert scipy_stats.chi2_contingency(table).pvalue > ALPHA
    again = _both_paths(monkeypatch, xb, x, st_, ni, 11, off)
    assert np.array_equal(again[True].mag, out[True].mag)


def _merge_sparse_bins(table, least=5):
    """Merge neighbouring histogram bins until each column expects >= ``least`` counts."""
    cols, acc = [], np.zeros(table.shape[0], np.int64)
    for c in table.T:
        acc = acc + c
        if acc.min() >= least:
            cols.append(acc)
            acc = np.zeros_like(acc)
    if cols:
        cols[-1] = cols[-1] + acc
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_read_noise_moments_are_the_closed_form(backend):
    """Read noise alone: charge - ideal charge = sum over planes b of rint(N(0, sigma^2 2^b))
    (each plane's 2^b samples summed), so mean 0, variance sigma^2 (2^P - 1) + P / 12 and
    excess kurtosis 0; each within 5 standard errors (normal approximation)."""
    xb, rng = _full_core(7)
    x = torch.from_numpy(np.repeat(rng.integers(-7, 8, (1, 128)), 400, axis=0)).to(backend)
    ni, st_ = NonIdeal(read_noise_v=2e-3), MvmSettings(v_decr=0.3)
    sigma = float(charge_units(ni.read_noise_v, st_.v_read))
    gen = np.random.default_rng(5) if backend == "cpu" else torch.Generator(backend).manual_seed(5)
    e = (mvm(xb, x, st_, ni, gen).charge - mvm(xb, x[:1], st_).charge).cpu().numpy().ravel()
    n, var = e.size, sigma**2 * 7 + 3 / 12
    assert abs(e.mean()) < 5 * np.sqrt(var / n)
    assert abs(e.var() / var - 1) < 5 * np.sqrt(2 / n)
    assert abs(scipy_stats.kurtosis(e)) < 5 * np.sqrt(24 / n)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_comparator_noise_is_logistic(backend):
    """Zero charge (all-zero input) against per-line offsets o from -4 s to 4 s: the sign
    reads 1 with probability P(o + L > 0) = 1 / (1 + exp(-o / s)), L ~ Logistic(0, s); each
    line's frequency over 3,000 MVMs within 5 binomial standard errors."""
    xb, _ = _full_core(7)
    ni, st_ = NonIdeal(cmp_noise_v=0.5e-3), MvmSettings(v_decr=0.3)
    scale = integ_units(ni.cmp_noise_v, st_.v_read)
    off = np.rint(np.linspace(-4, 4, 256) * scale).astype(np.int64)
    x = torch.zeros((3000, 128), dtype=torch.int64, device=backend)
    gen = np.random.default_rng(6) if backend == "cpu" else torch.Generator(backend).manual_seed(6)
    res = mvm(xb, x, st_, ni, gen, offsets=off)
    line_off = off[mvm_operands(xb, Direction.FORWARD).neuron]  # codes come in line order
    p = 1 / (1 + np.exp(-line_off / scale))
    freq = res.sign.cpu().numpy().mean(axis=0)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / 3000))


@needs_numba
def test_kernel_normals_are_standard_normal_and_independent():
    """The kernel's ziggurat normals (counter-based streams): Kolmogorov-Smirnov against
    N(0, 1) at ALPHA, the mass beyond the ziggurat's base r = 3.4426 (its tail branch)
    within 5 standard errors of the closed form, neighbouring counters uncorrelated, and
    other keys other samples."""
    z = fused_cpu.normals(np.uint64(12345), 0, 400_000)
    assert scipy_stats.kstest(z, "norm").pvalue > ALPHA
    tail = 2 * scipy_stats.norm.sf(fused_cpu._ZIG_R)
    assert abs(np.mean(np.abs(z) > fused_cpu._ZIG_R) - tail) < 5 * np.sqrt(tail / z.size)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(z.size)
    other = fused_cpu.normals(np.uint64(12346), 0, 1000)
    assert abs(np.corrcoef(z[:1000], other)[0, 1]) < 5 / np.sqrt(1000)


@needs_numba
def test_kernel_exp_is_accurate_where_comparisons_use_it():
    """The kernel's polynomial e^t on the comparator's range |t| <= 16.64: relative error
    below 1e-9 against libm."""
    t = np.linspace(-fused_cpu._CMP_CUT, fused_cpu._CMP_CUT, 100_001)
    got = np.array([fused_cpu._exp(v) for v in t[::7]])
    assert np.max(np.abs(got / np.exp(t[::7]) - 1)) < 1e-9


@needs_numba
def test_kernel_rough_exp_is_within_its_margin():
    """The rough e^t that decides most comparisons: within half its stated margin of the
    kernel's _exp on the comparator's range (1.4e-3 against 1/256)."""
    t = np.linspace(-fused_cpu._CMP_CUT, fused_cpu._CMP_CUT, 200_001)
    err = np.array([fused_cpu._exp_rough(v) / fused_cpu._exp(v) - 1 for v in t])
    assert np.max(np.abs(err)) < fused_cpu._ROUGH_MARGIN / 2


def _splitmix_words(key: int, ctr: np.ndarray) -> np.ndarray:
    """splitmix64's output function of key + ctr * gamma, in NumPy's wrapping uint64."""
    z = np.uint64(key) + ctr.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@needs_numba
def test_noisy_search_decides_every_comparison_by_exp():
    """The kernel's noisy binary search equals, code for code, a NumPy reference that
    decides every comparison by the full u (1 + _exp(r / s)) < 1 (the kernel decides most
    of them from rough bounds): charges spread over the ADC's range, the noise scale a
    third of an LSB, 63 x 48 codes of 8 comparisons (about 10 between the bounds)."""
    rng = np.random.default_rng(7)
    b_n, o_n, k, d, scale = 63, 48, 7, 1 << 21, 10_000.0  # 2 rows a pass, the last 1
    lsb = d >> (k - 1)
    q = rng.integers(-2 * d, 2 * d, (1, b_n, 1, o_n)).astype(np.float32)
    q[0, :8] = (rng.integers(-20, 20, (8, 1, o_n)) * lsb).astype(np.float32)  # thresholds
    ids = rng.permutation(256)[:o_n].astype(np.uint64)
    key, row0 = 0x1234_5678_9ABC_DEF0, 3
    off = rng.integers(-5000, 5000, (1, o_n)).astype(np.float64)
    sign = np.empty((1, b_n, o_n), np.uint8)
    mag = np.empty((1, b_n, o_n), np.int64)
    charge = np.empty((1, b_n, o_n), np.int64)
    one = np.ones((1, o_n))  # den = 2^24 units: the sampled charge is num itself
    fused_cpu.charge_adc(q, one * (1 << 24), one, np.array([key], np.uint64), row0,
                         np.zeros(0), -1.0, off, d, k, 1.0 / scale, ids, 256, charge, sign, mag)
    assert np.array_equal(charge[0], q[0, :, 0])
    exp = np.vectorize(fused_cpu._exp)
    r = q[0, :, 0].astype(np.float64) + off
    rows = np.arange(row0, row0 + b_n)[:, None]
    negs = []
    for m in range(k + 1):
        ctr = ((rows * (k + 1) + m) * 256 + ids.astype(np.int64)) * 2 + 1
        u = ((_splitmix_words(key, ctr) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
        t = r / scale
        tc = np.clip(t, -fused_cpu._CMP_CUT, fused_cpu._CMP_CUT)
        neg = np.where(np.abs(t) < fused_cpu._CMP_CUT, u * (1.0 + exp(tc)) < 1.0, r < 0)
        negs.append(neg)
        r = r + np.where(neg, 1.0, -1.0) * float(d >> m)
    want_sign = ~negs[0]
    want_mag = np.zeros_like(mag[0])
    for neg in negs[1:]:
        want_mag = 2 * want_mag + (neg != want_sign)
    assert np.array_equal(sign[0], want_sign)
    assert np.array_equal(mag[0], want_mag)


@needs_numba
def test_fused_kernel_with_ir_drop_matches_torch_path_up_to_product_rounding(monkeypatch):
    """With IR drop the float32 products are not integers, so the BLAS libraries' summation
    orders may differ by an ulp; each sample's floor then moves by at most one unit, so the
    charge by at most 1 + 2 + 4 units (three planes)."""
    xb, rng = _full_core(6)
    x = rng.integers(-7, 8, (64, 128))
    ni = NonIdeal(ir_drop_ohm=100.0, adc_offset_v=1e-3, integrator_swing_v=0.3)
    out = _both_paths(monkeypatch, xb, x, MvmSettings(v_decr=0.3), ni, 2)
    assert np.abs(out[True].charge - out[False].charge).max() <= 7
    assert np.mean(out[True].mag == out[False].mag) > 0.99


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_in_numpy_out_tensor_in_tensor_out(device):
    xb, rng = _full_core(8)
    x = rng.integers(-7, 8, (2, 3, 128))
    a = mvm(xb, x, MvmSettings())
    b = mvm(xb, torch.from_numpy(x).to(device), MvmSettings())
    assert isinstance(a.mag, np.ndarray) and a.mag.shape == (2, 3, 256)
    assert isinstance(b.mag, torch.Tensor) and b.mag.device.type == device
    assert b.sign.dtype == torch.uint8 and b.mag.dtype == b.charge.dtype == torch.int64
    for u, v in zip(_codes(a), _codes(b), strict=True):
        assert np.array_equal(u, v)
    with pytest.raises(ValueError, match="must be integers"):
        mvm(xb, torch.zeros(1, 128, device=device), MvmSettings())
    with pytest.raises(ValueError, match="out of range"):
        mvm(xb, torch.full((1, 128), 8, device=device), MvmSettings())


@pytest.mark.parametrize("backend", BACKENDS, indirect=True, ids="-".join)
@pytest.mark.parametrize("direction", list(Direction))
def test_many_cores_in_one_call_equal_one_call_per_core(backend, direction):
    """mvm_cores on 5 differently programmed cores (static effects and offsets included)
    gives each core's codes exactly as mvm does."""
    cores, xs, offs = [], [], []
    ni = NonIdeal(relaxation=True, adc_offset_v=1e-3, integrator_swing_v=0.2)
    for i in range(5):
        xb, rng = _full_core(20 + i)
        xb.set_conductances(ni.perturb(xb.target, rng))
        cores.append(xb)
        xs.append(rng.integers(-7, 8, (9, 128 if direction is not Direction.BACKWARD else 256)))
        offs.append(ni.offsets(256, 0.5, rng))
    st_ = MvmSettings(direction, v_decr=0.3, activation=Activation.RELU)
    x = torch.from_numpy(np.stack(xs)).to(backend)
    many = mvm_cores(cores, x, st_, ni, offsets=np.stack(offs))
    assert many.mag.shape == (5, 9, 256) and many.mag.device.type == backend
    for i, xb in enumerate(cores):
        one = mvm(xb, xs[i], st_, ni, offsets=offs[i])
        for u, v in zip(_codes(one), _codes(many), strict=True):
            assert np.array_equal(u, v[i])
    with pytest.raises(ValueError, match="cores = 5"):
        mvm_cores(cores, x[:4], st_)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_generator_draws_on_the_device(device):
    """A torch Generator makes the noise where the tensors are: seeded runs repeat, the
    noise moves codes, and the codes stay within range."""
    xb, rng = _full_core(9)
    x = torch.from_numpy(rng.integers(-7, 8, (50, 128))).to(device)
    st_ = MvmSettings(v_decr=0.3)
    runs = [mvm(xb, x, st_, REALISTIC, torch.Generator(device).manual_seed(4)) for _ in "ab"]
    ideal = mvm(xb, x, st_)
    assert torch.equal(runs[0].mag, runs[1].mag) and not torch.equal(runs[0].mag, ideal.mag)
    assert int(runs[0].mag.max()) <= 127 and runs[0].mag.device.type == device
    # the noise is small: most codes within a few LSB of the ideal ones; value stays a tensor
    # on the device, equal to the NumPy value of the same codes
    value = runs[0].value
    assert isinstance(value, torch.Tensor) and value.device.type == device
    assert np.array_equal(value.cpu().numpy(),
                          signed_value(runs[0].sign.cpu().numpy(), runs[0].mag.cpu().numpy(), 7))
    assert float((value - ideal.value).abs().float().median()) <= 4


@pytest.mark.parametrize("backend", BACKENDS, indirect=True, ids="-".join)
@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_closed_form_adc_at_every_threshold(backend, k):
    """The closed-form converter on tensors at and next to every threshold c LSB, for V_decr
    values whose reciprocal product lands below an integer (lsb = 49: 49 * (1 / 49) < 1):
    equals the integer transfer of the module docstring
    (q > 0: min(ceil(q / lsb) - 1, 2^K - 1); q <= 0: min(floor(-q / lsb), 2^K - 1))."""
    for d in (512 * 49, 512 * 103, 512 * 161, 512 * 1234567):  # 49 * (1 / 49) < 1
        lsb = d >> (k - 1)
        c = np.arange(-(1 << k) - 1, (1 << k) + 2, dtype=np.int64)
        q = (c[:, None] * lsb + np.array([-1, 0, 1])).ravel()
        sign, mag = adc_exact(torch.from_numpy(q).to(backend), d, k)
        top = (1 << k) - 1
        want = np.where(q > 0, np.minimum(-(-q // lsb) - 1, top), np.minimum(-q // lsb, top))
        assert np.array_equal(sign.cpu().numpy(), (q > 0).astype(np.uint8))
        assert np.array_equal(mag.cpu().numpy(), want)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_many_cores_draw_independent_noise(backend):
    """mvm_cores on three copies of one core under read noise: each core gets its own
    stream (the codes differ between copies, but not more than noise does), and a seeded
    call repeats."""
    xb, rng = _full_core(30)
    x = torch.from_numpy(np.repeat(rng.integers(-7, 8, (1, 8, 128)), 3, axis=0)).to(backend)
    ni, st_ = NonIdeal(read_noise_v=2e-3), MvmSettings(v_decr=0.3)

    def gen():
        return (np.random.default_rng(8) if backend == "cpu"
                else torch.Generator(backend).manual_seed(8))

    a, b = (mvm_cores([xb] * 3, x, st_, ni, gen()) for _ in "ab")
    ideal = mvm_cores([xb] * 3, x, st_)
    assert torch.equal(torch.as_tensor(a.charge), torch.as_tensor(b.charge))
    e = (a.charge - ideal.charge).cpu().numpy().reshape(3, -1)
    assert not np.array_equal(e[0], e[1]) and not np.array_equal(e[1], e[2])
    assert abs(np.corrcoef(e)[0, 1]) < 5 / np.sqrt(e.shape[1])


# ------------------------------------------------------------------ restricted output lines
_LINES = np.array([200, 3, 0, 77, 255, 128, 4, 31])  # unsorted, both ends of the array


@pytest.mark.parametrize("backend", BACKENDS, indirect=True, ids="-".join)
@pytest.mark.parametrize("direction", list(Direction))
def test_restricted_lines_equal_the_full_evaluation_code_for_code(backend, direction):
    """Noise off (static effects, comparator offsets and the integrator swing on):
    ``lines`` gives exactly the full evaluation's codes and charge of those lines, for
    mvm_cores and mvm, in every direction (recurrent: BL order)."""
    ni = NonIdeal(relaxation=True, adc_offset_v=1e-3, integrator_swing_v=0.2)
    cores, xs, offs = [], [], []
    for i in range(3):
        xb, rng = _full_core(40 + i)
        xb.set_conductances(ni.perturb(xb.target, rng))
        cores.append(xb)
        xs.append(rng.integers(-7, 8, (11, 128 if direction is not Direction.BACKWARD else 256)))
        offs.append(ni.offsets(256, 0.5, rng))
    st_ = MvmSettings(direction, v_decr=0.3)
    x = torch.from_numpy(np.stack(xs)).to(backend)
    full = mvm_cores(cores, x, st_, ni, offsets=np.stack(offs))
    part = mvm_cores(cores, x, st_, ni, offsets=np.stack(offs), lines=_LINES)
    assert part.mag.shape == (3, 11, _LINES.size)
    for u, v in zip(_codes(full), _codes(part), strict=True):
        assert np.array_equal(u[..., _LINES], v)
    one = mvm(cores[1], xs[1], st_, ni, offsets=offs[1], lines=_LINES)
    for u, v in zip(_codes(full), _codes(one), strict=True):
        assert np.array_equal(u[1][..., _LINES], v)
    if direction is not Direction.RECURRENT:  # (recurrent: den stays in SL order)
        assert np.array_equal(part.extra["den"], full.extra["den"][:, _LINES])


def test_restricted_lines_are_refused_when_out_of_range():
    xb, _ = _full_core(3)
    for bad in ([], [256], [-1], [[1, 2]], [0.5]):
        with pytest.raises(ValueError, match="lines must be"):
            mvm(xb, np.zeros((1, 128), np.int64), MvmSettings(), lines=np.array(bad))


_NOISY = NonIdeal(read_noise_v=2e-3, line_noise_v=1e-3, cmp_noise_v=2e-3)


@needs_numba
def test_restricted_lines_draw_the_full_evaluations_noise_on_the_fused_path():
    """The fused kernel's noise counters use the physical line, so under read, line and
    comparator noise a restricted call repeats the full call's codes for its lines."""
    xb, rng = _full_core(50)
    x = rng.integers(-7, 8, (2, 40, 128))
    st_ = MvmSettings(v_decr=0.3)
    full = mvm_cores([xb, xb], x, st_, _NOISY, np.random.default_rng(5))
    part = mvm_cores([xb, xb], x, st_, _NOISY, np.random.default_rng(5), lines=_LINES)
    ideal = mvm_cores([xb, xb], x, st_)
    assert not np.array_equal(full.mag, ideal.mag)
    for u, v in zip(_codes(full), _codes(part), strict=True):
        assert np.array_equal(u[..., _LINES], v)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b[1] == "torch"], indirect=True,
                         ids="-".join)
def test_restricted_lines_equal_the_full_evaluation_in_distribution(backend):
    """The torch path draws its noise per evaluated line, so a restricted call has other
    samples: the codes' and charges' deviations from the noiseless ones on the kept lines
    have the full call's distribution. Two-sample tests at ALPHA = 1e-3 each (chi-square
    on the code deviations, Kolmogorov-Smirnov on the charge deviations), so a correct
    kernel fails one of them with probability below 2e-3 per seed."""
    xb, rng = _full_core(51)
    x = torch.from_numpy(rng.integers(-7, 8, (1, 600, 128))).to(backend)
    st_ = MvmSettings(v_decr=0.3)

    def deviations(lines, seed):
        r = mvm_cores([xb], x, st_, _NOISY, torch.Generator(backend).manual_seed(seed),
                      lines=lines)
        i = mvm_cores([xb], x, st_, lines=lines)
        keep = _LINES if lines is None else slice(None)
        return ((r.value - i.value).cpu().numpy()[..., keep].ravel(),
                (r.charge - i.charge).cpu().numpy()[..., keep].ravel().astype(np.float64))

    full_v, full_q = deviations(None, 2)
    part_v, part_q = deviations(_LINES, 3)
    assert np.std(part_v) > 0.5  # the noise moves codes by more than a step
    edges = np.array([-np.inf, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, np.inf])
    table = np.stack([np.histogram(v, edges)[0] for v in (full_v, part_v)])
    table = table[:, table.min(axis=0) >= 5]
    assert scipy_stats.chi2_contingency(table).pvalue > ALPHA
    assert scipy_stats.ks_2samp(full_q, part_q).pvalue > ALPHA
