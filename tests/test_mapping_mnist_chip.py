"""`mnist-on-chip` (experiments/mnist_on_chip.py) end to end on synthetic MNIST-shaped data.

The synthetic classes are bright 7 x 7 blocks at ten places (no real files needed), so the
trained MLP is near-perfect. References: the noise-aware torch model (the ideal chip must
give its predictions on nearly every image: both quantise the inputs to 3 bits, the chip
with the compiler's scales) and the documented command line (`cimflow compile --calibrate`
then `cimflow run --ideal` on the files the experiment writes must give exactly the
experiment's ideal-chip accuracy).
"""

import json

import numpy as np
import pytest
import torch
from synthetic_mnist import synthetic_mnist

from cimflow.cli import main
from cimflow.experiments import mnist_on_chip as moc

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("moc")
    mp = pytest.MonkeyPatch()
    mp.setattr(moc, "load_data", lambda name: (*synthetic_mnist(2000, 0), *synthetic_mnist(200, 1)))
    try:
        res = moc.mnist_on_chip(out, True, 0)
    finally:
        mp.undo()
    return out, res


def test_quick_run_on_chip(result):
    out, res = result
    assert set(res["runs"]) == {"mlp", "cnn7"}
    mlp = res["runs"]["mlp"]
    assert mlp["test_samples"] == 200 and res["runs"]["cnn7"]["test_samples"] == 20
    assert mlp["torch_quantised"] > 0.9  # the blocks are learnt
    assert mlp["chip_ideal_agrees_quantised"] >= 0.95
    assert abs(mlp["chip_ideal"] - mlp["torch_quantised"]) <= 0.05
    assert mlp["chip_nonideal"] > 0.8
    assert mlp["drop_nonideal"] == mlp["chip_ideal"] - mlp["chip_nonideal"]
    assert mlp["programming"]["cells"] == mlp["cells"]
    for run in res["runs"].values():
        for k in ("torch_float", "torch_quantised", "chip_ideal", "chip_nonideal"):
            assert 0 <= run[k] <= 1
    assert (out / "mnist_on_chip.png").stat().st_size > 1000
    quant = json.loads((out / "models" / "mnist_cnn7.quant.json").read_text())
    assert len(quant) == 7 and all(q["act_bits"] == 3 for q in quant)


def test_documented_commands_reproduce_ideal_chip(result, tmp_path):
    out, res = result
    d = out / "models"
    x = np.load(d / "mnist_test_x.npy")[:200]
    y = np.load(d / "mnist_test_y.npy")[:200]
    np.save(tmp_path / "x.npy", x)
    assert main(["compile", str(d / "mnist_mlp_chip.pt"), "--out", str(tmp_path / "img"),
                 "--calibrate", str(d / "mnist_cal_x.npy"), "--quiet"]) == 0
    assert main(["run", str(tmp_path / "img"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy"), "--ideal", "--quiet"]) == 0
    acc = float(np.mean(np.load(tmp_path / "y.npy").argmax(1) == y))
    assert acc == res["runs"]["mlp"]["chip_ideal"]


def test_registered():
    from cimflow.experiments import registry

    assert registry()["mnist-on-chip"].run is moc.mnist_on_chip
