"""SRMP noise model and model-driven calibration against closed forms and sampling.

Sampling bounds are 5 binomial standard errors (two-sided false-alarm rate about 6e-7 per
assertion); seeds are fixed.
"""

import numpy as np
import pytest
import torch
from torch import nn

from cimflow.golden.nat import NatConfig, Srmp, active_lines, calibrate, noise_aware, set_noise
from cimflow.golden.nat.adc import Adc
from cimflow.golden.nat.aware import NoiseAware, aware_layers
from cimflow.golden.nat.calibrate import (
    adc_step,
    layer_charge,
    layer_inputs,
    operating_point,
    record_offsets,
)
from cimflow.golden.neuron import C_INTEG, C_SAMPLE

torch.set_num_threads(1)
D = torch.float64


def test_active_lines_count_nonzero_inputs_behind_each_output():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 50, generator=g) * (torch.rand(6, 50, generator=g) > 0.6)
    lin = nn.Linear(50, 7)
    n = active_lines(lin, x)
    assert torch.equal(n, (x != 0).sum(1, keepdim=True).float().expand(6, 7))
    conv = nn.Conv2d(3, 5, 3, padding=1)
    xc = torch.rand(2, 3, 8, 8, generator=g) * (torch.rand(2, 3, 8, 8, generator=g) > 0.5)
    nc = active_lines(conv, xc)
    padded = torch.nn.functional.pad((xc != 0).float(), (1, 1, 1, 1))
    for i, j in ((0, 0), (3, 4), (7, 7)):  # brute-force receptive fields, padding excluded
        ref = padded[:, :, i:i + 3, j:j + 3].sum((1, 2, 3))
        assert torch.equal(nc[:, 0, i, j], ref) and torch.equal(nc[:, 4, i, j], ref)
    with pytest.raises(TypeError, match="nn.Linear or nn.Conv2d"):
        active_lines(nn.ReLU(), x)


def test_srmp_error_rate_is_the_logistic_tail_and_grows_with_open_lines():
    # input at a level: a conversion is wrong when |noise| > LSB / 2, with probability
    # 2 (1 - F(1 / (2 s))), s the SRMP scale in LSBs
    srmp = Srmp(0.1, 0.5)
    adc = Adc(bits=5, mode="ste", srmp=srmp).double().eval()
    adc.set_step(0.2)
    n_samples = 100000
    rates = []
    for lines in (4, 64, 256):
        y = torch.full((n_samples,), 0.2 * 3, dtype=D)
        n = torch.full_like(y, float(lines))
        torch.manual_seed(lines)
        wrong = (adc(y, n) - y).abs() > 1e-9
        s = 0.1 + 0.5 * np.sqrt(lines / 256)
        p = 2 / (1 + np.exp(1 / (2 * s)))
        rate = float(wrong.to(D).mean())
        assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / n_samples), (lines, rate, p)
        rates.append(rate)
    assert rates[0] < rates[1] < rates[2]
    with pytest.raises(ValueError, match="SRMP s1 must be"):
        Srmp(0.1, -1.0)


def test_operating_point_meets_swing_and_fills_the_adc():
    g = torch.Generator().manual_seed(1)
    q = torch.rand(200000, generator=g, dtype=D) * 20 - 10  # |q| uniform on [0, 10]
    op = operating_point(q, swing=0.5, headroom=0.9, pct=99.0, v_decr_max=10.0)
    assert abs(op.q_hi - 9.9) < 0.02  # the 99th percentile of U[0, 10]
    v_integ = C_SAMPLE * op.v_read * op.q_hi / C_INTEG
    assert abs(v_integ - 0.45) < 1e-12  # the swing binds: V_read below its maximum
    assert abs(2 * op.v_decr - op.v_read * op.q_hi) < 1e-12  # full scale at the percentile
    assert abs(op.clipped - 0.01) < 5 * np.sqrt(0.01 * 0.99 / q.numel())
    small = operating_point(q / 100, swing=0.5)
    assert small.v_read == 0.5  # small charges: V_read stays at its maximum
    capped = operating_point(q, swing=100.0, v_decr_max=0.5)
    assert abs(capped.v_decr - 0.5) < 1e-12 and capped.v_read < 0.5
    with pytest.raises(ValueError, match="operating_point needs"):
        operating_point(q, swing=0.0)


def test_adc_step_covers_the_percentiles_on_both_sides():
    y = torch.linspace(-1, 3, 40001, dtype=D)
    step = adc_step(y, 4, pct=100.0)
    assert abs(step - 3 / 7) < 1e-12  # the top level 7 steps reaches the maximum
    y2 = torch.linspace(-3, 1, 40001, dtype=D)
    assert abs(adc_step(y2, 4, pct=100.0) - 3 / 8) < 1e-12  # the bottom level -8 steps


def test_layer_charge_is_the_differential_normalised_sum():
    torch.manual_seed(3)
    lin = nn.Linear(20, 6).double()
    m = NoiseAware(lin, NatConfig(act_bits=4)).double()
    m.act.alpha.data.fill_(1.0)
    x = torch.rand(9, 20, dtype=D) * 1.2
    q = layer_charge(m, x).numpy()
    codes = np.clip(np.round(np.clip(x.numpy(), 0, 1) * 15), 0, 15)
    w = lin.weight.detach().numpy()
    w_max = np.abs(w).max()
    ref = np.zeros((9, 6))
    for j in range(6):  # docs: G+- = max(+-g_max W / w_max, g_min), Den = sum of both cells
        gp = np.maximum(40 * w[j] / w_max, 1.0)
        gn = np.maximum(-40 * w[j] / w_max, 1.0)
        ref[:, j] = codes @ (gp - gn) / (gp + gn).sum()
    np.testing.assert_allclose(q, ref, rtol=1e-12, atol=1e-12)


def test_record_offsets_recovers_static_offsets():
    g = torch.Generator().manual_seed(5)
    ref = torch.randn(400, 8, 5, 5, generator=g, dtype=D)
    off = torch.linspace(-0.3, 0.3, 8, dtype=D)
    meas = ref + off.view(1, 8, 1, 1) + 0.1 * torch.randn(ref.shape, generator=g, dtype=D)
    got = record_offsets(meas, ref)
    assert bool(((got - off).abs() < 5 * 0.1 / np.sqrt(400 * 25)).all())
    with pytest.raises(ValueError, match="measured shape"):
        record_offsets(meas[:, :4], ref)


def test_calibrate_fills_each_layer_adc_and_cancels_offsets():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    nat = noise_aware(net, NatConfig(nu=0.2, nu_test=0.1, act_bits=4, adc_bits=6))
    x = torch.rand(2000, 1, 8, 8)
    off = torch.linspace(-1, 1, 32)

    def measure(i, m, xin):  # a "chip" whose first layer has static offsets
        y = m.mvm(xin)
        return y + off.view(1, -1) if i == 0 else y

    points = calibrate(nat, x, measure=measure, pct=99.0)
    layers = aware_layers(nat)
    assert len(points) == 2 and all(0 < p.v_read <= 0.5 for p in points)
    assert torch.allclose(layers[0].offset, off, atol=1e-5)
    assert torch.allclose(layers[1].offset, torch.zeros(10), atol=1e-6)
    assert [m.nu_test for m in layers] == [0.1, 0.1]  # restored after calibration
    first_in = x.flatten(1)
    alpha0 = float(layers[0].act.alpha.detach())
    assert abs(alpha0 - float(np.percentile(first_in.numpy(), 99))) < 1e-3
    nat.eval()
    set_noise(nat, nu_test=0.0)
    for m in layers:  # the ADC range ends at the 1st or the 99th percentile: 1-2 % clip
        with torch.no_grad():
            y = m.mvm(layer_inputs(nat, x, m))
        a = float(m.adc.alpha.detach())
        top, bottom = (2 ** 5 - 1) * a, -(2 ** 5) * a
        clipped = float(((y > top) | (y < bottom)).float().mean())
        assert 0.01 - 5 * np.sqrt(0.01 * 0.99 / y.numel()) < clipped < 0.021, clipped
