"""The analog-training experiments run end to end on synthetic stand-in data (no MNIST here):
results.json schema, plots, progress lines, and the aihwkit side reported as skipped."""

import json

import pytest
import torch

from cimflow.experiments import registry
from cimflow.experiments import rpu as experiments_rpu

NAMES = ["rpu-mnist", "rpu-sensitivity", "asymmetric-training", "aihwkit-crosscheck"]


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    def fake(n_train, n_test, seed):
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(60, 784, generator=g), torch.randint(0, 10, (60,), generator=g),
                torch.rand(40, 784, generator=g), torch.randint(0, 10, (40,), generator=g))

    monkeypatch.setattr(experiments_rpu, "mnist_tensors", fake)
    monkeypatch.delenv("AIHWKIT_PYTHON", raising=False)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_runs(name, tmp_path, capsys):
    exp = registry()[name]
    res = exp.run(tmp_path, True, 0)
    json.dumps(res)  # serialisable
    assert list(tmp_path.glob("*.png")) or name == "aihwkit-crosscheck"
    out = capsys.readouterr().out
    assert f"[{name}] epoch 1/" in out
    if name == "rpu-mnist":
        assert set(res["test_error"]) == {"fp", "rpu"}
        assert all(0 <= e <= 1 for e in res["test_error"].values())
        assert res["epochs"] == len(res["curves"]["rpu"])
    if name == "aihwkit-crosscheck":
        assert "SKIPPED" in out and res["aihwkit"].startswith("skipped")
        # our moments agree with the closed form: |z| <= 4.5 per cell (12 cells)
        import numpy as np
        m, v = np.array(res["ours"]["mean"]), np.array(res["closed_form"]["var"])
        z = (m - np.array(res["closed_form"]["mean"])) / np.sqrt(v / res["trials"])
        assert np.abs(z).max() <= 4.5


def test_compare_samples_accepts_equal_and_rejects_different():
    import numpy as np

    rng = np.random.default_rng(0)
    p = np.array([0.01, 0.2, 0.6])
    a = rng.binomial(10, p, (3000, 3)) * 1e-3
    b = rng.binomial(10, p, (3000, 3)) * 1e-3
    assert experiments_rpu.compare_samples(a, b, alpha=0.001)["agree"]
    c = rng.binomial(10, p * 1.3, (3000, 3)) * 1e-3  # 30 % more coincidences
    assert not experiments_rpu.compare_samples(a, c, alpha=0.001)["agree"]
