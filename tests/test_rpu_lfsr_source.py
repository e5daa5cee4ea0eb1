"""The LFSR pulse source replays the RTL's streams: it must equal the golden stochastic
translator (itself bit-exact with the RTL) slot by slot, and drive a training step exactly."""

import numpy as np
import pytest
import torch

from cimflow.config import PRESETS
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.rpu import AnalogLinear, AnalogSGD, IdealDevice, IOParameters, RPUConfig
from cimflow.golden.rpu.pulses import LfsrSource
from cimflow.golden.stochastic_translator import signed_coincidences, str_update, thresholds

CFG = PRESETS["small"]


def reference(x, d, gain_code, bl, seeds):
    """Slot-by-slot loop over the translator trace: coincidences and half-selects."""
    n_bits = CFG.str_bits
    mag = lambda v: np.minimum(np.rint(np.abs(v) * 2**n_bits), 2**n_bits - 1).astype(int)  # noqa
    xr, dc = np.zeros(CFG.rows), np.zeros(CFG.cols)
    xr[: x.size], dc[: d.size] = x, d
    sr, sc = (xr < 0).astype(int), (dc < 0).astype(int)
    tr = str_update(CFG, LfsrChains(CFG, *seeds), thresholds(CFG, mag(xr), gain_code), sr,
                    thresholds(CFG, mag(dc), gain_code), sc, bl)
    n = np.zeros((x.size, d.size), int)
    h = np.zeros((x.size, d.size), int)
    for t in range(len(tr.phase)):
        for i in range(x.size):
            for j in range(d.size):
                r, c = tr.row_pulse[t, i], tr.col_pulse[t, j]
                if r and c:
                    n[i, j] += 1 if tr.up[t] else -1
                elif (r or c) and tr.phase[t] == 2 * sr[i] + (sr[i] ^ sc[j]):
                    h[i, j] += 1
    assert np.array_equal(n, signed_coincidences(tr)[: x.size, : d.size])
    return n, h


@pytest.mark.parametrize("seeds", [(1, 1), (0x5A5A, 0x1234), (77, 991)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_counts_equal_translator_slot_loop(seeds, gain):
    rng = np.random.default_rng(seeds[0])
    x, d = rng.uniform(-1, 1, 7), rng.uniform(-0.6, 0.6, 5)
    x[2] = 0.0
    src = LfsrSource(CFG, *seeds)
    n, h, _ = src.sample_counts(x, d, 6, gain)
    n_ref, h_ref = reference(x, d, src.gain_code(gain), 6, seeds)
    assert np.array_equal(n, n_ref)
    assert np.array_equal(h, h_ref)
    assert np.any(n != 0)


def test_layer_step_is_the_replayed_step():
    # ideal device: one training step changes W by exactly dw_min * (signed coincidences)
    seeds, lr, dw = (0x3C, 0x2A5), 0.16, 0.01  # C = sqrt(lr / (dw BL)) = 1.26 (code 20/16)
    cfg = RPUConfig(device=IdealDevice(dw), bl=10, source=LfsrSource(CFG, *seeds),
                    forward=IOParameters(is_perfect=True), backward=IOParameters(is_perfect=True))
    layer = AnalogLinear(9, 4, bias=False, rpu_config=cfg)
    opt = AnalogSGD(layer.parameters(), lr=lr)
    x = torch.rand(1, 9, dtype=torch.float32) - 0.3
    w0 = layer.tile.w.clone()
    y = layer(x)
    target = torch.zeros_like(y)
    ((y - target) ** 2).sum().mul(0.5).backward()
    opt.step()
    d = -(y - target).detach()
    n, _, _ = LfsrSource(CFG, *seeds).sample_counts(x[0].double().numpy(), d[0].double().numpy(),
                                                    10, (lr / (dw * 10)) ** 0.5)
    assert torch.allclose(layer.tile.w - w0, dw * torch.tensor(n.T, dtype=torch.float32),
                          atol=1e-6)
    assert np.any(n != 0)


def test_mean_counts_match_thresholds():
    # E[n_ij] = BL * (thr_i / 2^n) * (thr_j / 2^n) per sample; 400 samples, |z| <= 4.5 on
    # each of 12 cells (family-wise false alarm 8e-5).
    src = LfsrSource(CFG, 0x1111, 0x777)
    x, d = np.array([0.9, 0.5, 0.25, 0.7]), np.array([0.6, 0.3, 0.8])
    tot = np.zeros((4, 3))
    sq = np.zeros((4, 3))
    for _ in range(400):
        n, _, _ = src.sample_counts(x, d, 10, 1.0)
        tot += n
        sq += n**2
    thr_r, _, thr_c, _ = src.line_registers(x, d, 1.0)
    p = np.outer(thr_r[:4], thr_c[:3]) / 2 ** (2 * CFG.str_bits)
    mean, var = tot / 400, sq / 400 - (tot / 400) ** 2
    assert np.all(np.abs(mean - 10 * p) <= 4.5 * np.sqrt(np.maximum(var, 1e-9) / 400))


def test_layer_too_large_for_core():
    src = LfsrSource(CFG, 1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        src.counts(torch.rand(1, CFG.rows + 1), torch.rand(1, 2), 5, 1.0)


def test_merged_and_sequential_batches_agree_on_an_ideal_device():
    # the LFSR streams are consumed sample by sample either way; on an ideal device the sum
    # of the per-sample steps equals the step of the summed counts
    x, d = torch.rand(5, 6) - 0.2, 0.5 * (torch.rand(5, 3) - 0.5)
    ws = []
    for mode in ("merged", "sequential"):
        cfg = RPUConfig(device=IdealDevice(0.01), bl=6, source=LfsrSource(CFG, 0x55, 0x99),
                        batch_update=mode)
        layer = AnalogLinear(6, 3, bias=False, rpu_config=cfg)
        layer.tile.record(x, d)
        layer.tile.step(0.05)
        ws.append(layer.tile.w.clone())
    assert torch.allclose(ws[0], ws[1], atol=1e-6)
    with pytest.raises(ValueError, match="batch_update"):
        RPUConfig(batch_update="random")


def test_register_counts_match_signed_coincidences():
    # replay entry point: integer registers in, the translator's own coincidences out
    rng = np.random.default_rng(7)
    n_bits = CFG.str_bits
    mags_r, mags_c = rng.integers(0, 2**n_bits, CFG.rows), rng.integers(0, 2**n_bits, CFG.cols)
    s_r, s_c = rng.integers(0, 2, CFG.rows), rng.integers(0, 2, CFG.cols)
    thr_r, thr_c = thresholds(CFG, mags_r, 24), thresholds(CFG, mags_c, 24)
    n, _, _ = LfsrSource(CFG, 9, 4).register_counts(thr_r, s_r, thr_c, s_c, 7)
    tr = str_update(CFG, LfsrChains(CFG, 9, 4), thr_r, s_r, thr_c, s_c, 7)
    assert np.array_equal(n, signed_coincidences(tr))
    assert n.shape == (CFG.rows, CFG.cols) and np.any(n > 0) and np.any(n < 0)
