"""The bundled demo model (mapping/data): small, reproducible, learnt, and its accuracy on
the ideal and the non-ideal golden chip near the software accuracy."""

import numpy as np
import pytest
import torch

from cimflow.config import preset
from cimflow.mapping.compiler import compile_model
from cimflow.mapping.digits import bundle_paths, glyphs, make_digits
from cimflow.mapping.runtime import run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_bundle_is_small_and_complete():
    p = bundle_paths()
    assert sum(f.stat().st_size for f in p.values()) < 1_000_000
    x, y = np.load(p["x"]), np.load(p["y"])
    assert x.shape == (200, 8, 8) and x.dtype == np.float32 and y.shape == (200,)
    assert set(np.unique(y)) == set(range(10))


def test_bundled_inputs_are_the_generator_s():
    x, y = make_digits(200, 1000)
    np.testing.assert_array_equal(np.load(bundle_paths()["x"]), x)
    np.testing.assert_array_equal(np.load(bundle_paths()["y"]), y)


def test_the_digits_differ_from_each_other():
    g = glyphs().reshape(10, -1)
    dist = np.abs(g[:, None] - g[None]).sum(-1)
    assert dist[~np.eye(10, dtype=bool)].min() >= 3  # at least 3 pixels apart


@pytest.fixture(scope="module")
def compiled():
    p = bundle_paths()
    return compile_model(p["model"], preset("full"), calibration=np.load(p["calibration"]))


def test_model_is_learnt_and_survives_the_chip(compiled):
    p = bundle_paths()
    x, y = np.load(p["x"]), np.load(p["y"])
    model = torch.export.load(p["model"]).module()
    with torch.no_grad():
        sw = (model(torch.from_numpy(x)).numpy().argmax(1) == y).mean()
    ideal = (run_model(compiled, x, ideal=True).argmax(1) == y).mean()
    real = (run_model(compiled, x, seed=0).argmax(1) == y).mean()
    assert sw >= 0.9  # chance is 0.1
    assert ideal >= sw - 0.05 and real >= sw - 0.1, (sw, ideal, real)
    assert (run_model(compiled, x[:7], ideal=True).shape) == (7, 10)  # any batch size


def test_demo_summary_reports_the_three_accuracies(tmp_path, capsys, compiled):
    from cimflow.mapping.demo import main

    assert main(["--out", str(tmp_path), "--core", str(tmp_path), "--no-rtl"]) == 0
    text = capsys.readouterr().out
    p = bundle_paths()
    x, y = np.load(p["x"]), np.load(p["y"])
    ideal = 100 * (run_model(compiled, x, ideal=True).argmax(1) == y).mean()
    assert f"ideal chip {ideal:.1f} %" in text
    assert "summary" in text and "RTL          skipped" in text
    assert (tmp_path / "digits.img" / "manifest.json").exists()
