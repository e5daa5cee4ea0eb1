"""Analog layers: exact against torch with a perfect periphery, the periphery model of 1.5
against its closed form, and the optimiser's update against -lr * gradient."""

import copy
import math

import pytest
import torch
from scipy import stats
from torch import nn

from cimflow.golden.rpu import (
    AnalogConv2d,
    AnalogLinear,
    AnalogSGD,
    IdealDevice,
    IOParameters,
    RPUConfig,
    convert_to_analog,
)
from cimflow.golden.rpu.io import analog_mvm

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PERFECT = dict(forward=IOParameters(is_perfect=True), backward=IOParameters(is_perfect=True))


@pytest.mark.parametrize("device", DEVICES)
def test_convert_keeps_function_and_gradients(device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5)).double().to(device)
    analog = convert_to_analog(model, RPUConfig(device=IdealDevice(), **PERFECT)).to(device)
    assert isinstance(analog[0], AnalogConv2d) and isinstance(analog[3], AnalogLinear)
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    xa = x.detach().clone().requires_grad_(True)
    y, ya = model(x), analog(xa)
    assert torch.allclose(y, ya, atol=1e-12)
    y.sum().backward()
    ya.sum().backward()
    assert torch.allclose(x.grad, xa.grad, atol=1e-12)
    # the recorded (x, d) pairs of the conv layer sum to -dL/dW (im2col bookkeeping)
    xs, ds = analog[0].tile._pending[0]
    w_grad = torch.cat([model[0].weight.grad.reshape(3, -1), model[0].bias.grad[:, None]], 1)
    assert torch.allclose(ds.T @ xs, -w_grad, atol=1e-9)


def test_expected_step_is_minus_lr_grad():
    # E[dW] = -lr dL/dW over 2000 steps from the same start; |z| <= 4.5 per cell (30 cells,
    # family-wise false alarm 2e-4); z uses the per-cell sample std.
    cfg = RPUConfig(device=IdealDevice(), **PERFECT)
    layer = AnalogLinear(5, 6, bias=False, rpu_config=cfg)
    opt = AnalogSGD(layer.parameters(), lr=0.01)
    x = torch.rand(1, 5)
    w0 = layer.tile.w.clone()
    steps = []
    for _ in range(2000):
        layer.tile.w.copy_(w0)
        opt.zero_grad()
        (layer(x) ** 2).sum().mul(0.5).backward()
        opt.step()
        steps.append(layer.tile.w - w0)
    s = torch.stack(steps).double()
    grad = (x @ w0.T).T.double() @ x.double()
    z = (s.mean(0) + 0.01 * grad) / (s.std(0) / math.sqrt(len(s))).clamp_min(1e-12)
    assert z.abs().max() <= 4.5


def test_digital_parameters_take_sgd():
    layer = nn.Sequential(AnalogLinear(3, 2, rpu_config=RPUConfig(**PERFECT)), nn.Linear(2, 1))
    opt = AnalogSGD(layer.parameters(), lr=0.1)
    w = layer[1].weight.detach().clone()
    layer(torch.rand(4, 3)).sum().backward()
    g = layer[1].weight.grad.clone()
    opt.step()
    assert torch.allclose(layer[1].weight, w - 0.1 * g)


def test_periphery_noise_bound_and_step():
    io = IOParameters(noise_management="none", inp_bits=0, out_bits=0)
    w = torch.full((1, 4), 0.5)
    x = torch.full((20000, 4), 0.5)
    y = analog_mvm(x, w, io, torch.Generator().manual_seed(0))[:, 0]
    # sample variance: chi-square two-sided at alpha = 0.001
    n = len(y)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
    assert lo <= (y.var() / 0.06**2).item() <= hi
    big = analog_mvm(torch.full((1, 4), 1.0), torch.full((3, 4), 5.0), IOParameters())
    assert torch.all(big == 12.0)  # saturates at b_out (1.9.8)
    io_q = IOParameters(out_noise=0.0, noise_management="none")
    yq = analog_mvm(torch.rand(500, 4) - 0.5, torch.rand(3, 4), io_q)
    step = 2 * 12 / (2**9 - 2)
    assert torch.allclose(yq / step, torch.round(yq / step), atol=1e-4)
    xq = analog_mvm(torch.rand(500, 4) - 0.5, torch.eye(4), io_q)
    assert len(torch.unique(torch.round(xq / step))) > 5


def test_bad_input_messages():
    with pytest.raises(ValueError, match="noise_management"):
        IOParameters(noise_management="max")
    with pytest.raises(ValueError, match="bl must be"):
        RPUConfig(bl=0)
    with pytest.raises(ValueError, match="expects 3 input features"):
        AnalogLinear(3, 2)(torch.rand(1, 4))
    with pytest.raises(ValueError, match="w_min < 0 < w_max"):
        IdealDevice().__class__(w_min=0.1)


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.Tanh, nn.ReLU])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("batch,input_grad", [(1, False), (4, True)])
def test_sequential_chain_equals_layer_by_layer(act, fused, batch, input_grad):
    # the one-node chain of AnalogSequential does the per-layer graph's operations in the
    # same order with the same generators: outputs, input gradients, recorded updates and
    # the weights after three AnalogSGD steps must be bit-identical (torch.equal)
    from cimflow.golden.rpu import AnalogSequential, ConstantStepDevice

    base = nn.Sequential(act(), nn.Linear(12, 9), act(), nn.Linear(9, 7), act(),
                         nn.Linear(7, 5))
    chain = convert_to_analog(base, RPUConfig(device=ConstantStepDevice(), fused=fused))
    assert type(chain) is AnalogSequential
    plain = copy.deepcopy(chain)
    plain.__class__ = nn.Sequential  # the layer-by-layer forward
    opts = [AnalogSGD(m.parameters(), lr=0.05) for m in (chain, plain)]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(batch, 12, generator=g)
        y = torch.randint(0, 5, (batch,), generator=g)
        outs, grads = [], []
        for m, opt in zip((chain, plain), opts, strict=True):
            xi = x.clone().requires_grad_(input_grad)
            opt.zero_grad()
            out = m(xi)
            nn.functional.cross_entropy(out, y, reduction="sum").backward()
            outs.append(out.detach())
            grads.append(xi.grad)
            recs = [m[k].tile._pending[0] for k in (1, 3, 5)]
            if m is chain:
                rec_chain = recs
            else:
                for a, b in zip(rec_chain, recs, strict=True):
                    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            opt.step()
        assert torch.equal(outs[0], outs[1])
        assert (grads[0] is None) == (not input_grad)
        if input_grad:
            assert torch.equal(grads[0], grads[1])
    for k in (1, 3, 5):
        assert torch.equal(chain[k].tile.w, plain[k].tile.w)
    fresh = convert_to_analog(base)
    assert not all(torch.equal(chain[k].tile.w, fresh[k].tile.w) for k in (1, 3, 5))  # trained
