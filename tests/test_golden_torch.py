"""The golden MVM on torch tensors: every device this run has, both CPU paths (fused numba
kernel and torch operations), many cores per call, and draws made on the device."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_golden_cycle import _case
from torch.overrides import TorchFunctionMode

from cimflow.config import PRESETS
from cimflow.golden import fused_cpu, mvm_kernels
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import CycleCore
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import MvmSettings, bit_planes, drive_lines, mvm, mvm_cores
from cimflow.golden.neuron import Activation, adc_exact, sample_units, signed_value
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


NOISE = [
    NonIdeal(read_noise_v=2e-3),
    NonIdeal(read_noise_v=2e-3, adc_offset_v=1e-3, integrator_swing_v=0.05),
    NonIdeal(cmp_noise_v=0.5e-3, adc_offset_v=1e-3),
    NonIdeal(read_noise_v=1e-3, cmp_noise_v=1e-3, integrator_swing_v=0.3),
]


@pytest.mark.skipif(not fused_cpu.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize("ni", NOISE)
@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("batch", [1, 75])  # 75 rows: three blocks of 32, the last short
def test_fused_kernel_equals_torch_path_draw_for_draw(monkeypatch, ni, direction, batch):
    """The fused CPU kernel and the torch operations consume the same draws in the same
    order and give identical codes and charge (noisy search, read noise, clipping)."""
    xb, rng = _full_core(5)
    n = 128 if direction is not Direction.BACKWARD else 256
    x = rng.integers(-7, 8, (batch, n))
    st_ = MvmSettings(direction, in_bits=4, out_bits=8, v_decr=0.3)
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(mvm_kernels, "use_fused", fused)
        out[fused] = _codes(mvm(xb, x, st_, ni, np.random.default_rng(11)))
    for a, b in zip(out[True], out[False], strict=True):
        assert np.array_equal(a, b)
    assert np.abs(out[True][2]).max() > 0


@pytest.mark.skipif(not fused_cpu.AVAILABLE, reason="numba is not installed")
def test_fused_kernel_with_ir_drop_matches_torch_path_up_to_product_rounding(monkeypatch):
    """With IR drop the float32 products are not integers, so the BLAS libraries' summation
    orders may differ by an ulp; each sample's floor then moves by at most one unit, so the
    charge by at most 1 + 2 + 4 units (three planes)."""
    xb, rng = _full_core(6)
    x = rng.integers(-7, 8, (64, 128))
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(mvm_kernels, "use_fused", fused)
        out[fused] = mvm(xb, x, MvmSettings(v_decr=0.3), REALISTIC, np.random.default_rng(2))
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
