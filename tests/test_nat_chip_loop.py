"""Chip-in-the-loop progressive fine-tuning (experiments/chip_in_the_loop.py) on tiny data.

The chip path really runs: a small noise-aware MLP is exported, compiled and programmed into
golden cores. References: the layer's output computed here in torch with the compiler's
input quantisation (codes round(clip(x / s_in, 0, 1) 7), s_in = the smaller of max x of the
calibration batch and the layer's PACT clip level) and the targets' weights; the ideal chip
must stay within the converter's resolution of it, the non-ideal chip must differ from it
by more than that and by less than the noise budget of REALISTIC programming and reads.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from cimflow.experiments import chip_in_the_loop as cl
from cimflow.golden.nat import NatConfig, calibrate, noise_aware
from cimflow.golden.nat.train import fit

torch.set_num_threads(1)


def _data(n, seed):
    """Three classes of 4 x 4 images in [0, 1]: a bright row (0, 1 or 2) over noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.4, (n, 1, 4, 4))
    x[np.arange(n), 0, y] += 0.6
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _model(epochs, seed=0):
    torch.manual_seed(seed)
    m = noise_aware(nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 12),
                                  nn.ReLU(), nn.Linear(12, 3)), NatConfig(nu=0.1, act_bits=3))
    x, y = _data(600, seed)
    calibrate(m, x[:256])
    fit(m, x, y, epochs=epochs, lr=cl.BASE_LR, seed=seed)
    return m.eval()


@pytest.fixture(scope="module")
def layer1(tmp_path_factory):
    from cimflow.mapping.runtime import GoldenChip

    model = _model(20)
    x, _ = _data(400, 1)
    x_cal = x.numpy()  # calibrated on the batch itself: no segment saturates (the bound's premise)
    cm = cl.compile_torch(model, x_cal, tmp_path_factory.mktemp("c") / "m.pt")
    names = [n.name for n in cm.graph.analog]
    out = {}
    for label, ideal in (("ideal", True), ("chip", False)):
        loop = cl.ChipLoop(cm.graph, {names[0]: GoldenChip(cm, ideal=ideal, seed=3)})
        out[label] = loop.measure(x, 1).numpy()
    # the reference: the targets' weights (G+ - G-) w_max / g_max, bias rows included and
    # driven at full scale, on the compiler's input quantisation
    m = cm.layer(names[0])
    gp, gm = cm.conductances(names[0])
    w_t = (gp - gm) * m.w_max / m.g_max
    # chip_export clamps the input at the trained PACT level: that is the full scale
    s_in = min(float(x_cal.max()), float(model[1].act.alpha.detach().abs()))
    assert m.input_scale == pytest.approx(s_in, rel=1e-6)
    xq = np.rint(np.clip(x.flatten(1).numpy() / s_in, 0, 1) * 7) * s_in / 7
    xin = np.concatenate([xq, np.full((len(xq), m.pairs - m.n_in), s_in)], axis=1)
    # what reaches layer 2: ReLU, then chip_export's clamp at layer 2's PACT level
    out["ref"] = np.clip(xin @ w_t, 0, float(model[3].act.alpha.detach().abs()))
    out["step"] = max(float(cm.code_scale[k].max()) for k in cm.code_scale if k[0] == names[0])
    return out


def test_ideal_chip_layer1_matches_quantised_reference(layer1):
    assert layer1["ideal"].shape == layer1["ref"].shape == (400, 24)
    # one row segment: the error is the ADC's truncation, at most one code step
    assert np.abs(layer1["ideal"] - layer1["ref"]).max() <= layer1["step"] * 1.001


def test_nonideal_chip_layer1_differs_within_noise(layer1):
    ref, chip = layer1["ref"], layer1["chip"]
    assert (chip >= 0).all()  # the runtime applied the ReLU after the chip's layer
    rel = np.sqrt(np.mean((chip - ref) ** 2) / np.mean(ref ** 2))
    rel_ideal = np.sqrt(np.mean((layer1["ideal"] - ref) ** 2) / np.mean(ref ** 2))
    # the chip really ran with its non-idealities: clearly worse than the ideal chip, yet a
    # few per cent of the signal (write-verify to +-1 uS of ~40 uS, read noise, offsets)
    assert rel > 2 * rel_ideal and rel > 0.005
    assert rel < 0.25
    assert np.corrcoef(chip.ravel(), ref.ravel())[0, 1] > 0.97


def _progressive(tmp_path, y_test_perm=False):
    model = _model(3)  # under-trained: fine-tuning has something to do
    x, y = _data(600, 0)
    xv, yv = _data(200, 2)
    if y_test_perm:
        yv = yv[torch.randperm(len(yv), generator=torch.Generator().manual_seed(1))]
    return cl.progressive(model, x, y, xv, yv, epochs=15, workdir=tmp_path, seed=0, n_cal=128)


def test_progressive_reduces_training_loss_and_ignores_test_labels(tmp_path):
    res = _progressive(tmp_path / "a")
    steps = res["steps"]
    assert [s["layer"] for s in steps] == [1, 2, 3] and res["n_layers"] == 3
    for s in steps[:-1]:  # fine-tuning lowers the training loss on the measured outputs
        assert s["train_loss_after"] < s["train_loss_before"] - 1e-4
    assert "train_loss_before" not in steps[-1]  # nothing is left to tune after the last
    for s in steps:
        assert 1 / 3 < s["acc_no_ft"] <= 1 and 1 / 3 < s["acc_ft"] <= 1
    assert res["gain"] == steps[-1]["acc_ft"] - steps[-1]["acc_no_ft"]
    # the test labels feed nothing: permuted, the training (losses) is the same
    again = _progressive(tmp_path / "b", y_test_perm=True)
    for s, t in zip(steps[:-1], again["steps"][:-1], strict=True):
        assert s["train_loss_before"] == t["train_loss_before"]
        assert s["train_loss_after"] == t["train_loss_after"]


def test_analog_children_and_measure_errors():
    with pytest.raises(TypeError, match="nn.Sequential"):
        cl.analog_children(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="noise_aware"):
        cl.analog_children(nn.Sequential(nn.Linear(2, 2)))
    m = noise_aware(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), NatConfig())
    assert cl.analog_children(m) == [0, 2]
    assert cl.FT_LR == pytest.approx(cl.BASE_LR / 100)


def test_registered():
    from cimflow.experiments import registry

    assert registry()["chip-in-the-loop"].run is cl.chip_in_the_loop


def test_chip_export_clamps_at_the_pact_levels():
    from cimflow.golden.nat import chip_export, plain

    model = _model(2)
    alphas = [float(m.act.alpha.detach().abs()) for m in (model[1], model[3], model[5])]
    exp = chip_export(model)
    x, _ = _data(100, 4)
    big = x * 50  # far above the first clip level
    with torch.no_grad():
        ref = plain(model)
        # independent: clamp every layer input at its alpha by hand
        h = torch.clamp(big.flatten(1), 0, alphas[0])
        h = torch.clamp(torch.relu(ref[1](h)), 0, alphas[1])
        h = torch.clamp(torch.relu(ref[3](h)), 0, alphas[2])
        assert torch.allclose(exp(big), ref[5](h), atol=1e-5)
        assert not torch.allclose(exp(big), ref(big), atol=1e-3)  # the clamps act
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is what the compiler reads
        scripted = torch.jit.script(exp)
    assert torch.allclose(scripted(x), exp(x))
    with pytest.raises(ValueError, match="lo < hi"):
        from cimflow.golden.nat import Clip

        Clip(1.0, 1.0)
