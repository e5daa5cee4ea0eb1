"""The golden MVM benchmark's bookkeeping: ratios against torch and aihwkit, and its files."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench_golden_mvm.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_golden_mvm", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_ratios_match_batch_and_noise(bench):
    R = bench.Row
    rows = [R("golden, noise off (ideal)", 1, 300.0, "off"),
            R("golden, noise on: x", 1, 50.0, "on"),
            R("golden, noise on: x", 1024, 900.0, "on"),
            R("aihwkit 1.2.0 AnalogLinear, noise off", 1, 100.0, "off"),
            R("aihwkit 1.2.0 AnalogLinear, noise on", 1, 200.0, "on"),
            R("torch.nn.Linear(256, 256)", 1, 600.0),
            R("torch.nn.Linear(256, 256)", 1024, 9000.0)]
    got = {(r.name, r.batch): (slow, vs) for r, slow, vs in bench._ratios(rows)}
    assert got["golden, noise off (ideal)", 1] == (2.0, 3.0)
    assert got["golden, noise on: x", 1] == (12.0, 0.25)
    assert got["golden, noise on: x", 1024] == (10.0, None)  # no aihwkit row at 1024
    assert got["aihwkit 1.2.0 AnalogLinear, noise on", 1] == (3.0, None)


def test_quick_run_writes_results_and_plot(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "OPTIONAL_BENCHES", [])
    rows = bench.main(["--quick", "--cores", "2", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "results.json").read_text())["rows"]
    # 3 batches: 9 algorithmic, 6 multi-core, 3 torch; the cycle level
    assert len(data) == len(rows) == 19
    assert {r["batch"] for r in data} == {1, 64, 1024}
    assert all(r["mvm_per_s"] > 0 and r["this_over_aihwkit"] is None for r in data)
    assert (tmp_path / "bench_golden_mvm.png").stat().st_size > 10_000


def test_bad_arguments_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--cores", "-1"])
    if not bench.torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.main(["--device", "cuda"])
