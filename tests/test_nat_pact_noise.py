"""PACT and weight-noise injection against closed forms and sampling statistics.

Weight noise: the empirical std of W_noisy - W equals nu max|W| (docs/model.md#training-noise),
within 5 standard errors of a sample std (relative error 1/sqrt(2N)); fixed seeds.
"""

import io

import numpy as np
import pytest
import torch
from torch import nn

from cimflow.golden.nat import NatConfig, NoiseAware, Pact, noise_aware, plain, set_noise
from cimflow.golden.nat.aware import ALLOWED_PLAIN, aware_layers, quant_settings
from cimflow.golden.nat.noise import noisy_weight

torch.set_num_threads(1)
D = torch.float64


@pytest.mark.parametrize("bits,signed", [(3, False), (4, False), (4, True)])
def test_pact_forward_is_clip_then_round(bits, signed):
    a = 1.7
    q = Pact(bits, a, signed).double()
    x = torch.linspace(-3, 3, 2001, dtype=D) + 1e-4 * np.pi  # off the rounding ties
    s = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    xn = x.numpy()
    ref = np.round(np.clip(xn, -a if signed else 0.0, a) * s / a) * a / s
    np.testing.assert_allclose(q(x).detach().numpy(), ref, atol=1e-9)
    assert len(np.unique(np.round(ref, 9))) == (2 * s + 1 if signed else s + 1)
    codes = q.integers(x)
    assert float(codes.max()) == s and float(codes.min()) == (-s if signed else 0)


@pytest.mark.parametrize("signed", [False, True])
def test_pact_gradients_are_the_pact_rule(signed):
    a = 1.3
    q = Pact(4, a, signed).double()
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(500, generator=g, dtype=D) * 2).requires_grad_()
    up = torch.randn(500, generator=g, dtype=D)
    (q(x) * up).sum().backward()
    lo = -a if signed else 0.0
    xd = x.detach()
    assert torch.equal(x.grad, up * ((xd > lo) & (xd < a)))
    d_alpha = up[xd >= a].sum() - (up[xd <= -a].sum() if signed else 0.0)
    assert torch.isclose(q.alpha.grad.double(), d_alpha, atol=1e-9)


def test_pact_refuses_bad_settings_in_one_line():
    for kw, msg in (({"bits": 0}, "activation bits"), ({"alpha": 0.0}, "alpha must be > 0"),
                    ({"bits": 1, "signed": True}, "signed activations")):
        with pytest.raises(ValueError, match=msg) as e:
            Pact(**kw)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("nu", [0.1, 0.3])
def test_injected_noise_std_is_nu_max_abs_w(nu):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(400, 500, generator=g, dtype=D)
    d = noisy_weight(w, nu, g) - w
    n = d.numel()
    sigma = nu * float(w.abs().max())
    assert abs(float(d.std()) / sigma - 1) < 5 / np.sqrt(2 * n)
    assert abs(float(d.mean())) < 5 * sigma / np.sqrt(n)


def _linear_layer(nu, nu_test, act_bits=None):
    torch.manual_seed(0)
    lin = nn.Linear(300, 200).double()
    return lin, NoiseAware(lin, NatConfig(nu=nu, nu_test=nu_test, act_bits=act_bits)).double()


def test_noise_is_fresh_each_pass_and_follows_train_and_eval_levels():
    lin, m = _linear_layer(0.2, 0.05)
    x = torch.eye(300, dtype=D)  # the output rows are W^T + bias: the noise is visible
    w = lin.weight.detach()
    m.train()
    with torch.no_grad():
        d1, d2 = m(x) - lin(x), m(x) - lin(x)
    sigma = 0.2 * float(w.abs().max())
    assert abs(float(d1.std()) / sigma - 1) < 5 / np.sqrt(2 * d1.numel())
    r = np.corrcoef(d1.detach().flatten(), d2.detach().flatten())[0, 1]
    assert abs(r) < 5 / np.sqrt(d1.numel())  # independent draws
    m.eval()
    d3 = (m(x) - lin(x)).detach()
    assert abs(float(d3.std()) / (0.05 * float(w.abs().max())) - 1) < 5 / np.sqrt(2 * d3.numel())
    set_noise(m, nu_test=0.0)
    assert torch.equal(m(x), lin(x))


def test_gradient_reaches_weights_as_at_the_noisy_point():
    lin, m = _linear_layer(0.3, 0.0)
    m.train()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 300, generator=g, dtype=D)
    up = torch.randn(16, 200, generator=g, dtype=D)
    (m(x) * up).sum().backward()
    assert torch.allclose(lin.weight.grad, up.T @ x)  # d/dW of (x W_noisy^T) is noise-free
    assert torch.allclose(lin.bias.grad, up.sum(0))


def _net():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Sequential(nn.Linear(4 * 13 * 13, 16), nn.ReLU()), nn.Linear(16, 3))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_switch_wraps_every_layer_and_plain_undoes_it_for_torchscript():
    net = _net()
    x = torch.rand(5, 1, 28, 28)
    ref = net(x)
    nat = noise_aware(net, NatConfig(nu=0.1, nu_test=0.1, act_bits=4, adc_bits=5))
    assert len(aware_layers(nat)) == 3
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) and not isinstance(p, NoiseAware)
                   for p in nat.modules() for m in p.children())
    exported = plain(nat)
    assert all(isinstance(m, ALLOWED_PLAIN) for m in exported.modules())
    assert torch.equal(exported(x), ref)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(exported), buf)
    buf.seek(0)
    assert torch.equal(torch.jit.load(buf)(x), ref)
    s = quant_settings(nat)
    assert [d["layer"] for d in s] == ["Conv2d", "Linear", "Linear"]
    assert s[0]["act_bits"] == 4 and s[0]["adc_bits"] == 5 and len(s[2]["offset"]) == 3


def test_bad_config_is_refused_in_one_line():
    for kw, msg in (({"nu": -0.1}, "nu must be"), ({"adc_mode": "x"}, "adc_mode must be"),
                    ({"act_bits": 0}, "activation bits")):
        with pytest.raises(ValueError, match=msg) as e:
            NatConfig(**kw)
        assert "\n" not in str(e.value)
    with pytest.raises(TypeError, match="wraps nn.Linear or nn.Conv2d"):
        NoiseAware(nn.ReLU(), NatConfig())


def test_switch_refuses_what_it_cannot_wrap_or_has_wrapped():
    lin = nn.Linear(4, 2)
    assert isinstance(noise_aware(lin, NatConfig()), NoiseAware)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        noise_aware(nn.Sequential(nn.ReLU()), NatConfig())
    net = noise_aware(_net(), NatConfig())
    with pytest.raises(ValueError, match="already noise-aware"):
        noise_aware(net, NatConfig(nu=0.1))
