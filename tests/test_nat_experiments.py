"""The training experiments end to end on a small synthetic MNIST-shaped set (no real files).

The synthetic classes are bright 7x7 blocks at ten places, so a trained model must reach
near-perfect accuracy; the saved TorchScript file must hold only plain modules and give the
trained model's noise-free predictions.
"""

import json
import warnings

import numpy as np
import pytest
import torch

from cimflow.datasets import DataError
from cimflow.experiments import training as ex
from cimflow.golden.nat.aware import ALLOWED_PLAIN

torch.set_num_threads(1)


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, 28, 28))
    for i, c in enumerate(y):
        r, col = 7 * (c // 4), 7 * (c % 4)
        x[i, r:r + 7, col:col + 7] += 200
    return x.astype(np.uint8), y.astype(np.uint8)


@pytest.fixture
def fake_data(monkeypatch):
    def load(name):
        if name != "mnist":
            raise DataError(f"dataset file train-images-idx3-ubyte of {name} not found")
        return (*_synthetic(3000, 0), *_synthetic(500, 1))

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
    x, y = _synthetic(500, 1)
    xt = torch.as_tensor(x, dtype=torch.float32).div(255).unsqueeze(1)
    acc = float((model(xt).argmax(1) == torch.as_tensor(y).long()).float().mean())
    assert acc > 0.9  # the plain export keeps the trained weights
    quant = json.loads((tmp_path / "models" / run["model"]["quant"]).read_text())
    assert len(quant) == 3 and all(q["act_bits"] == ex.ACT_BITS for q in quant)
    assert all(0 < q["v_read"] <= 0.5 and 0 < q["v_decr"] <= 0.5 for q in quant)


def test_concrete_adc_quick(tmp_path, fake_data):
    res = ex.concrete_adc(tmp_path, True, 0)
    table = res["runs"]["mlp"]
    assert set(table) == {f"{b}/{s}" for b in res["bits"] for s in res["s1"]}
    for row in table.values():
        assert row["gain"] == row["concrete"]["acc"] - row["ste"]["acc"]
        assert 0.0 <= row["ste"]["acc"] <= 1.0
    assert (tmp_path / "concrete_adc.png").stat().st_size > 1000
    assert abs(res["mlp_mean_gain"] - np.mean([r["gain"] for r in table.values()])) < 1e-12
