"""The training experiments end to end on a small synthetic MNIST-shaped set (no real files).

The synthetic classes are bright 7x7 blocks at ten places, so a trained model must reach
near-perfect accuracy; the saved TorchScript file must hold only plain modules and give the
trained model's noise-free predictions.
"""

import json
import warnings

import pytest
import torch
from synthetic_mnist import synthetic_mnist

from cimflow.datasets import DataError
from cimflow.experiments import training as ex
from cimflow.golden.nat.aware import ALLOWED_PLAIN

torch.set_num_threads(1)


@pytest.fixture
def fake_data(monkeypatch):
    def load(name):
        if name != "mnist":
            raise DataError(f"dataset file train-images-idx3-ubyte of {name} not found")
        return (*synthetic_mnist(3000, 0), *synthetic_mnist(500, 1))

    monkeypatch.setattr(ex, "load_data", load)


def _load_plain(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path))


def test_noise_injection_quick(tmp_path, fake_data, capsys):
    res = ex.noise_injection(tmp_path, True, 0)
    assert "fashion-mnist: skipped" in capsys.readouterr().err
    run = res["runs"]["mnist/mlp"]
    at = res["test_nu"].index(0.1)
    assert run["picked_nu"] == max(res["train_nu"], key=lambda nu: run["acc"][f"{nu:.2f}"][at])
    assert run["acc"]["0.00"][0] > 0.95  # the blocks are learnt
    assert (tmp_path / "noise_injection.png").stat().st_size > 1000
    model = _load_plain(tmp_path / "models" / run["model"]["file"])
    kinds = {m.original_name for m in model.modules()}
    assert kinds <= {c.__name__ for c in ALLOWED_PLAIN}
    x, y = synthetic_mnist(500, 1)
    xt = torch.as_tensor(x, dtype=torch.float32).div(255).unsqueeze(1)
    acc = float((model(xt).argmax(1) == torch.as_tensor(y).long()).float().mean())
    assert acc > 0.9  # the plain export keeps the trained weights
    quant = json.loads((tmp_path / "models" / run["model"]["quant"]).read_text())
    assert len(quant) == 3 and all(q["act_bits"] == ex.ACT_BITS for q in quant)
    assert all(0 < q["v_read"] <= 0.5 and 0 < q["v_decr"] <= 0.5 for q in quant)


def test_concrete_adc_quick(tmp_path, fake_data, monkeypatch):
    saved = []
    real_save = ex.save_model

    def keep(model, path, x_cal):  # the trained noise-aware models, as the chip would run them
        saved.append((model, path))
        return real_save(model, path, x_cal)

    monkeypatch.setattr(ex, "save_model", keep)
    res = ex.concrete_adc(tmp_path, True, 0)
    table = res["runs"]["mlp"]
    assert set(table) == {f"{b}/{s}" for b in res["bits"] for s in res["s1"]}
    for key, row in table.items():
        # both quantisers learn the blocks despite the ADC noise (chance is 0.1)
        assert row["concrete"]["acc"] > 0.9, key
        assert row["ste"]["acc"] > 0.4, key
    # the Concrete relaxation trains under the noise, the STE ignores it: never much worse
    assert res["mlp_mean_gain"] > -0.02
    assert (tmp_path / "concrete_adc.png").stat().st_size > 1000
    # saved: the lowest bit count at the highest noise, STE and Concrete
    bits = res["bits"][0]
    assert sorted(p.name for _, p in saved) == [f"mnist_mlp_adc{bits}_{m}.pt"
                                                for m in ("concrete", "ste")]
    x, _ = synthetic_mnist(200, 1)
    xt = torch.as_tensor(x, dtype=torch.float32).div(255).unsqueeze(1)
    for model, path in saved:
        assert path.is_file() and path.with_suffix(".quant.json").is_file()
        model.eval()
        adcs = [m.adc for m in model.modules() if getattr(m, "adc", None) is not None]
        assert len(adcs) == 3
        outs = []
        hooks = [a.register_forward_hook(lambda mod, inp, out, outs=outs: outs.append((mod, out)))
                 for a in adcs]
        with torch.no_grad():
            model(xt)
        for h in hooks:
            h.remove()
        assert len(outs) == 3
        for adc, y in outs:
            # every conversion is one of the ADC's 2^bits levels alpha k + beta
            alpha = float(adc.alpha.detach().abs()) + 1e-12
            k = (y - adc.beta) / alpha
            assert torch.allclose(k, k.round(), atol=1e-3)
            assert int(k.round().min()) >= -(1 << (bits - 1))
            assert int(k.round().max()) <= (1 << (bits - 1)) - 1
            assert 2 <= len(torch.unique(k.round())) <= 1 << bits
