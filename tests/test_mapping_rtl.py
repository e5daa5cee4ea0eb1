"""A compiled 2-layer MLP on the RTL core in Verilator (the regression's
core_fpga.compiled_image): every segment's codes and the outputs equal the ideal golden
chip's bit for bit; `cimflow run --backend rtl` gives the golden chip's outputs."""

import numpy as np
import pytest

from cimflow.cli import main
from cimflow.config import preset
from cimflow.mapping.image import write_image
from cimflow.mapping.runtime import run_model
from cimflow.verif.regress import run_regression
from cimflow.verif.tb_compiled import small_mlp_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.cocotb
def test_compiled_image_on_the_rtl_equals_the_golden_chip(tmp_path):
    (r,) = run_regression(("small",), r"compiled_image", tmp_path, progress=lambda *_: None)
    assert r.passed, r.log
    fig = r.figures
    assert fig["matrices"] == 2 and fig["cores"] >= 4 and fig["segments"] >= 4
    assert fig["mvms"] == fig["inputs"] * fig["segments"] and fig["cells_loaded"] > 0


@pytest.mark.cocotb
def test_cli_run_on_the_rtl_backend(tmp_path, capsys):
    cm, x = small_mlp_image(preset("small"), seed=5, batch=2)
    img = write_image(cm, tmp_path / "img")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    assert main(["run", str(img), "--input", str(tmp_path / "x.npy"), "--out", str(out),
                 "--backend", "rtl"]) == 0
    assert "rtl backend" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out), run_model(cm, x, ideal=True))
