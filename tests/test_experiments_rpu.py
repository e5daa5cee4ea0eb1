"""The analog-training experiments run end to end on synthetic stand-in data (no MNIST here):
results.json schema, plots, progress lines, and the aihwkit side reported as skipped."""

import json

import pytest
import torch

from cimflow.experiments import registry
from cimflow.experiments import rpu as experiments_rpu

NAMES = ["rpu-mnist", "rpu-sensitivity", "asymmetric-training", "aihwkit-crosscheck"]


N_TRAIN, N_TEST = 200, 100


def blocks(n, g):
    """Two classes, a bright 7 x 7 block at one of two places on a dim noisy 28 x 28 image:
    learnable in one quick epoch (chance is an error of 0.5)."""
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 28, 28, generator=g) * 0.2
    for i, c in enumerate(y.tolist()):
        x[i, 7:14, 7 + 7 * c:14 + 7 * c] += 0.8
    return x.reshape(n, 784), y


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    def fake(n_train, n_test, seed):
        g = torch.Generator().manual_seed(seed)
        return (*blocks(N_TRAIN, g), *blocks(N_TEST, g))

    monkeypatch.setattr(experiments_rpu, "mnist_tensors", fake)
    monkeypatch.delenv("AIHWKIT_PYTHON", raising=False)


CHANCE = 0.5


def fractions_of_the_test_set(errors):
    return all(0 <= e <= 1 and abs(e * N_TEST - round(e * N_TEST)) < 1e-3 for e in errors)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_runs(name, tmp_path, capsys, monkeypatch):
    if name != "aihwkit-crosscheck":  # its closed form is for the paper's rate
        # 200 batch-1 steps at the paper's 0.01 do not move a sigmoid MLP; 0.1 lets the
        # float baseline learn the blocks in the quick runs' one or two epochs
        monkeypatch.setattr(experiments_rpu, "LR", 0.1)
    exp = registry()[name]
    res = exp.run(tmp_path, True, 0)
    json.dumps(res)  # serialisable
    assert list(tmp_path.glob("*.png")) or name == "aihwkit-crosscheck"
    out = capsys.readouterr().out
    assert f"[{name}] epoch 1/" in out
    if name == "rpu-mnist":
        assert set(res["test_error"]) == set(res["curves"]) == {"fp", "rpu"}
        assert res["train_samples"] == N_TRAIN and res["test_samples"] == N_TEST
        for k, curve in res["curves"].items():
            assert len(curve) == res["epochs"] == 2 and res["test_error"][k] == curve[-1]
            assert fractions_of_the_test_set(curve)
        # the float baseline learns the blocks (the pulsed RPU needs more than 400 steps)
        assert res["test_error"]["fp"] < CHANCE / 2
    if name == "rpu-sensitivity":
        assert set(res["test_error"]) == set(res["scans"]) == {"bl", "dw_min", "up_down"}
        for scan, errors in res["test_error"].items():
            assert len(errors) == len(res["scans"][scan]) and fractions_of_the_test_set(errors)
        assert res["fp_test_error"] < CHANCE / 2
        assert "test error bl=20" in out and "test error up_down=0.1" in out
    if name == "asymmetric-training":
        assert set(res["test_error"]) == {"fp", "rpu-sgd", "tiki-taka", "shd"}
        assert all(len(c) == res["epochs"] == 1 for c in res["curves"].values())
        assert fractions_of_the_test_set(res["test_error"].values())
        assert res["test_error"]["fp"] < CHANCE / 2
        assert res["transfer_lr_per_epoch"] == [experiments_rpu.ASYM_TRANSFER["transfer_lr"]]
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


def test_asymmetric_training_model_subset(tmp_path):
    """--models trains only the named models, each with the curve it has in the full run;
    an unknown name is a one-line error."""
    exp = registry()["asymmetric-training"]
    res = exp.run(tmp_path, True, 0, models=["fp", "shd"])
    assert set(res["test_error"]) == set(res["curves"]) == {"fp", "shd"}
    full = exp.run(tmp_path, True, 0)
    assert all(res["curves"][k] == full["curves"][k] for k in ("fp", "shd"))
    with pytest.raises(ValueError, match="unknown model 'sgd'"):
        exp.run(tmp_path, True, 0, models=["fp", "sgd"])


def test_transfer_rate_is_harmonic_and_zero_tau_is_constant():
    """lambda_e = lambda_0 / (1 + e / tau): halved at epoch tau, a third at 2 tau; the sum
    over epochs grows without bound while the sum of squares stays below lambda_0^2 (1 +
    tau^2 pi^2 / 6), the Robbins-Monro conditions."""
    import math

    rate = experiments_rpu.transfer_rate
    assert rate(0.05, 0, 2.0) == 0.05
    assert math.isclose(rate(0.05, 2, 2.0), 0.025) and math.isclose(rate(0.05, 4, 2.0), 0.05 / 3)
    assert [rate(0.05, e, 0) for e in range(3)] == [0.05] * 3
    assert [rate(0.05, e, None) for e in range(3)] == [0.05] * 3
    r = [rate(1.0, e, 2.0) for e in range(100000)]
    assert sum(r) > 2 * math.log(100000 / 2)  # harmonic: ~ tau ln(E / tau)
    assert sum(x * x for x in r) < 1 + 4 * math.pi ** 2 / 6
    with pytest.raises(ValueError, match="--transfer-decay must be >= 0"):
        rate(0.05, 1, -1.0)


def test_set_transfer_rate_reaches_the_transfer_and_only_transfer_tiles():
    """Rate 0 stops the writes into C (C is unchanged by training) while A still learns; the
    original rate writes into C; RPU-SGD and float models hold no transfer tile."""
    from cimflow.golden.rpu import AnalogSGD, RPUConfig, SoftBoundsDevice, convert_to_analog
    from cimflow.golden.rpu.tile import tiki_taka_transfer

    dev = SoftBoundsDevice(**experiments_rpu.ASYM_DEVICE)
    x, y = blocks(50, torch.Generator().manual_seed(1))

    def c_and_a_change(lr):
        cfg = RPUConfig(device=dev, seed=0,
                        transfer=tiki_taka_transfer(**experiments_rpu.ASYM_TRANSFER))
        model = convert_to_analog(experiments_rpu.mlp(0), cfg)
        assert experiments_rpu.set_transfer_rate(model, lr) == 3
        tiles = [p._rpu_tile for p in model.parameters()]
        c0 = [t.c.clone() for t in tiles]
        a0 = [t.a.clone() for t in tiles]
        opt = AnalogSGD(model.parameters(), lr=experiments_rpu.ASYM_FAST_LR)
        for i in range(len(x)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
            opt.step()
        return (sum(int((t.c != c).sum()) for t, c in zip(tiles, c0, strict=True)),
                sum(int((t.a != a).sum()) for t, a in zip(tiles, a0, strict=True)))

    c_moved, a_moved = c_and_a_change(0.0)
    assert c_moved == 0 and a_moved > 0
    c_moved, _ = c_and_a_change(experiments_rpu.ASYM_TRANSFER["transfer_lr"])
    assert c_moved > 0
    rpu = convert_to_analog(experiments_rpu.mlp(0), RPUConfig(device=dev, seed=0))
    assert experiments_rpu.set_transfer_rate(rpu, 0.0) == 0
    assert experiments_rpu.set_transfer_rate(experiments_rpu.mlp(0), 0.0) == 0


def test_transfer_schedule_leaves_fp_and_rpu_sgd_alone(tmp_path):
    """Two epochs: fp and RPU-SGD curves are the same with and without the decay; the
    analog models get lambda_0 then lambda_0 / (1 + 1 / tau)."""
    exp = registry()["asymmetric-training"]
    lr0 = experiments_rpu.ASYM_TRANSFER["transfer_lr"]
    dec = exp.run(tmp_path, True, 0, epochs=2, models=["fp", "rpu-sgd", "shd"],
                  transfer_decay=2.0)
    const = exp.run(tmp_path, True, 0, epochs=2, models=["fp", "rpu-sgd"], transfer_decay=0)
    assert all(dec["curves"][k] == const["curves"][k] for k in ("fp", "rpu-sgd"))
    assert dec["transfer_lr_per_epoch"] == [lr0, lr0 / 1.5]
    assert const["transfer_lr_per_epoch"] == [lr0, lr0]
