"""Soft-bounds devices, asymmetric SGD drift, Tiki-Taka and transfer bookkeeping (Gokmen & Haensch
2020, Sec. 2). The scalar problem f = (w - w_opt)^2 / 2 with zero-mean gradient noise runs on M
independent replicas (rows of an M x 1 array); the stationary mean is averaged over the
replicas and the second half of the run. Its standard error (about 0.005 here, replicas
independent) sets the tolerances, which are at least 4 standard errors.
"""

import pytest
import torch

from cimflow.golden.rpu.closed_form import apply_direction
from cimflow.golden.rpu.devices import DeviceState, IdealDevice, SoftBoundsDevice
from cimflow.golden.rpu.io import IOParameters
from cimflow.golden.rpu.layers import AnalogLinear
from cimflow.golden.rpu.pulses import BernoulliSource
from cimflow.golden.rpu.tile import RPUConfig, TransferConfig, TransferTile, shd_transfer
from cimflow.golden.rpu.update import pulsed_update

M, STEPS, W_OPT = 400, 3000, -0.3
ASYM = SoftBoundsDevice(dw_min=0.01, up_down=0.2, dw_min_dtod=0, dw_min_std=0, up_down_dtod=0,
                        w_max=1, w_min=-1, w_max_dtod=0, w_min_dtod=0)


def test_symmetry_point_formula_and_decay():
    d = 0.01
    st = DeviceState(*(torch.tensor([v], dtype=torch.float64) for v in (1.3 * d, 0.7 * d,
                                                                            0.8, -1.1)), 0.0,
                     True)
    sp = st.symmetry_point().item()
    ap, am = 1.3 * d, 0.7 * d
    assert sp == pytest.approx((ap - am) / (ap / 0.8 + am / 1.1))
    one = torch.ones(1, dtype=torch.float64)
    for start in (0.75, -1.05):
        w = torch.tensor([start], dtype=torch.float64)
        for _ in range(3000):
            w = apply_direction(apply_direction(w, st, True, one), st, False, one)
        assert abs(w.item() - sp) <= 2 * ap
    # symmetric normalised device: per-pair decay (1 - 2 delta) near the SP, to O(delta^2)
    sym = DeviceState(*(torch.tensor([v], dtype=torch.float64) for v in (d, d, 1.0, -1.0)),
                      0.0, True)
    w0 = torch.tensor([0.05], dtype=torch.float64)
    w1 = apply_direction(apply_direction(w0, sym, True, one), sym, False, one)
    w_star = -d / (2 - d)  # fixed point of one up-down pair
    assert (w1 - w_star).item() / (w0 - w_star).item() == pytest.approx(1 - 2 * d, abs=2 * d * d)


def scalar_sgd(st, sigma, dw=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    w, acc = torch.zeros(M, 1), []
    for t in range(STEPS):
        grad = (w[:, 0] - W_OPT) + sigma * torch.randn(M, generator=g)
        w = pulsed_update(w, st, torch.ones(1, 1), -grad[None, :], 0.05, bl=10, dw_min=dw,
                          source=BernoulliSource(), generator=g)
        if t >= STEPS // 2:
            acc.append(w.mean().item())
    return sum(acc) / len(acc)


def test_asymmetric_sgd_bias_grows_with_noise_and_ideal_is_unbiased():
    st = ASYM.sample((M, 1))
    assert st.symmetry_point()[0].item() == pytest.approx(0.2, abs=1e-6)
    means = [scalar_sgd(st, s) for s in (0.1, 0.5, 1.0)]
    bias = [m - W_OPT for m in means]
    assert 0 < bias[0] < bias[1] < bias[2]  # towards the SP (0.2), growing with the noise
    assert bias[2] > 0.15
    assert abs(scalar_sgd(IdealDevice(0.01).sample((M, 1)), 1.0) - W_OPT) <= 0.02


def tiki_taka_mean(c_device):
    cfg = RPUConfig(device=ASYM, transfer_device=c_device,
                    transfer=TransferConfig(transfer_lr=0.01,
                                            transfer_io=IOParameters(is_perfect=True)))
    tile = TransferTile(M, 1, cfg)
    assert torch.all(tile.a - tile.ref == 0)  # A starts at its SP and reads 0
    g = torch.Generator().manual_seed(0)
    acc = []
    for t in range(STEPS):
        grad = (tile.read()[:, 0] - W_OPT) + torch.randn(M, generator=g)
        tile.update(torch.ones(1, 1), -grad[None, :], 0.05)
        if t >= STEPS // 2:
            acc.append(tile.read().mean().item())
    return sum(acc) / len(acc)


def test_tiki_taka_removes_the_drift():
    sgd_bias = scalar_sgd(ASYM.sample((M, 1)), 1.0) - W_OPT
    # C on a symmetric device: unbiased; C on the same asymmetric device: bias cut by > 3x
    assert abs(tiki_taka_mean(IdealDevice(0.01)) - W_OPT) <= 0.02
    assert abs(tiki_taka_mean(None) - W_OPT) < sgd_bias / 3


def test_transfer_bookkeeping():
    n_s, n_in = 3, 4
    cfg = RPUConfig(device=IdealDevice(0.01),
                    transfer=TransferConfig(transfer_every=n_s, transfer_lr=0.5,
                                            transfer_io=IOParameters(is_perfect=True)))
    tile = TransferTile(2, n_in, cfg)
    tile.a.fill_(0.3)  # column reads are non-zero, so a transfer always writes C
    g = torch.Generator().manual_seed(1)
    for t in range(4 * n_s * n_in):
        c0 = tile.c.clone()
        x = torch.rand(1, n_in, generator=g)
        tile.update(x, 0.5 * torch.ones(1, 2), 0.1)
        changed = (tile.c != c0).any(dim=0)
        if (t + 1) % n_s == 0:
            k = ((t + 1) // n_s - 1) % n_in  # pointer period n_in / n_reads transfers
            assert changed.nonzero().flatten().tolist() in ([k], [])
            assert tile.pointer == (k + 1) % n_in
        else:
            assert not changed.any()
    assert tile.transfers == 4 * n_in


@pytest.mark.parametrize("tc", [TransferConfig(gamma=0.4), shd_transfer("shared_pair"),
                                shd_transfer("sp_reference")])
def test_effective_weight_is_forward_input(tc):
    cfg = RPUConfig(device=ASYM, transfer=tc, forward=IOParameters(is_perfect=True),
                    backward=IOParameters(is_perfect=True))
    layer = AnalogLinear(5, 3, bias=False, rpu_config=cfg)
    x = torch.rand(2, 5)
    for _ in range(3):
        layer(x).sum().backward()
        layer.tile.step(0.1)
    t = layer.tile
    w = t.c + tc.gamma * (t.a - t.ref)
    assert torch.equal(layer(x), x @ w.T)
    if tc.reference == "symmetry_point":
        assert torch.all(t.ref == 0)


def test_bad_transfer_settings():
    with pytest.raises(ValueError, match="reference"):
        TransferConfig(reference="mirror")
    with pytest.raises(ValueError, match="SHD variant"):
        shd_transfer("both")


def test_ttv2_buffer_pulses_whole_steps():
    dw = 0.01
    cfg = RPUConfig(device=IdealDevice(dw),
                    transfer=TransferConfig(transfer_lr=0.5, buffered=True,
                                            transfer_io=IOParameters(is_perfect=True)))
    tile = TransferTile(3, 2, cfg)
    tile.a.copy_(torch.tensor([[0.013, 0.0], [-0.051, 0.0], [0.004, 0.0]]))
    c0 = tile.c.clone()
    tile._transfer_column(0)
    # H = 0.5 * a / dw = (0.65, -2.55, 0.2): whole steps (0, -2, 0) written, remainders kept
    assert torch.allclose(tile.c[:, 0] - c0[:, 0], torch.tensor([0.0, -2 * dw, 0.0]),
                          atol=1e-7)
    assert torch.allclose(tile.h[:, 0], torch.tensor([0.65, -0.55, 0.2]), atol=1e-5)
    tile._transfer_column(0)  # H = (1.3, -3.1, 0.4): one more step up in row 0, -3 in row 1
    assert torch.allclose(tile.c[:, 0] - c0[:, 0], torch.tensor([dw, -5 * dw, 0.0]), atol=1e-7)
    assert torch.equal(tile.c[:, 1], c0[:, 1])
