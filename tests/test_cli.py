"""The `cimflow` command line: outputs, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest

from cimflow.cli import main


def test_generate_writes_verilog_and_config(tmp_path, capsys):
    assert main(["generate", "--preset", "small", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    v = tmp_path / "cimflow_core.v"  # the default top: the whole digital core
    assert v.exists() and "module cimflow_core" in v.read_text()
    assert json.loads((tmp_path / "config.json").read_text())["rows"] == 16
    assert "lint-only -Wall: clean" in out
    from cimflow.hdl.export import WAIVERS

    assert f"waivers in {WAIVERS})" in out and WAIVERS.is_file()  # the file lint really read


@pytest.mark.parametrize("argv,msg", [
    (["generate", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
    (["generate", "--config", "/nonexistent.json", "--out", "x"], "does not exist"),
    (["generate", "--preset", "tiny", "--top", "cpu", "--out", "x"], "unknown top 'cpu'"),
    (["regress", "--preset", "tiny", "-k", "no-such-test"], "no regression test matches"),
    (["experiment", "no-such", "--out", "x"], "unknown experiment 'no-such'"),
])
def test_bad_arguments_give_one_line_error(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cimflow: error:") and msg in err[0]


def test_bad_config_value(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"input_bits": 12}))
    assert main(["generate", "--config", str(p), "--out", str(tmp_path)]) == 2
    assert "input_bits = 12 is out of range [1, 8]" in capsys.readouterr().err


def test_console_script_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cimflow.cli", "generate", "--preset", "x",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_experiment_list(capsys):
    assert main(["experiment", "--list"]) == 0
    assert "mvm-rmse" in capsys.readouterr().out


def test_generate_report_counts_cells(tmp_path, capsys):
    """Yosys synth_ecp5 on the tiny STR bank: real LUT and flip-flop counts."""
    assert main(["generate", "--preset", "tiny", "--top", "str_bank", "--out", str(tmp_path),
                 "--no-lint", "--report"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("str_bank (4x4)"))
    parts = row.split()  # name, (RxC), LUT4, (%), FF, (%), ...
    lut, ff = int(parts[2].replace(",", "")), int(parts[4].replace(",", ""))
    assert lut > 20 and ff >= 24 * 2  # at least the two 24-stage LFSR chains
    assert (tmp_path / "resources.txt").read_text().startswith("design")


def test_report_timeout_is_one_line_error(tmp_path, capsys):
    assert main(["generate", "--preset", "tiny", "--top", "str_bank", "--out", str(tmp_path),
                 "--no-lint", "--report", "--report-timeout", "0.01"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not finish within" in err[0]


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cocotb", "cocotb_tools") or \\
                name.startswith(("cimflow.verif", "cimflow.golden")):
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
from cimflow.cli import main
rc = main(["generate", "--preset", "tiny", "--top", "str_bank", "--out", sys.argv[1]])
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("cocotb", "cocotb_tools")
                or m.startswith(("cimflow.verif", "cimflow.golden")))
print("RC", rc, "LOADED", loaded)
"""


def test_generate_needs_no_cocotb(tmp_path):
    """`cimflow generate` (with its lint) works with cocotb, verif and golden unimportable,
    and none of them is in sys.modules afterwards."""
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "RC 0 LOADED []" in proc.stdout, proc.stdout + proc.stderr
    assert "lint-only -Wall: clean" in proc.stdout
    assert "module cimflow_str_bank" in (tmp_path / "cimflow_str_bank.v").read_text()


def test_internal_error_keeps_its_traceback(tmp_path, monkeypatch):
    """Only user errors become one-line messages: a bug's exception propagates."""
    import cimflow.hdl.export as export

    def broken(*args, **kwargs):
        raise ValueError("internal bug")

    monkeypatch.setattr(export, "write_verilog", broken)
    with pytest.raises(ValueError, match="internal bug"):
        main(["generate", "--preset", "tiny", "--top", "str_bank", "--out", str(tmp_path)])


@pytest.mark.parametrize("extra,msg", [
    (["--cycles", "0"], "--cycles must be at least 1"),
    (["-k", "no-such-test"], "no regression test matches config-c6"),
])
def test_regress_config_arguments(tmp_path, extra, msg, capsys):
    p = tmp_path / "c6.json"
    p.write_text(json.dumps({"corelet": 6, "rows": 36, "cols": 36}))
    assert main(["regress", "--config", str(p), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]


def test_regress_bad_config_is_one_line(tmp_path, capsys):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"rows": 100}))
    assert main(["regress", "--config", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rows and cols must both equal corelet**2" in err[0]


@pytest.mark.parametrize("argv,msg", [
    (["experiment", "mvm-rmse", "--out", "OUT", "--seed", "-1"], "--seed must be in"),
    (["experiment", "mvm-rmse", "--out", "OUT", "--epochs", "3"],
     "experiment 'mvm-rmse' has no epoch count"),
    (["experiment", "rpu-mnist", "--out", "OUT", "--epochs", "0"], "--epochs must be at least 1"),
    (["experiment", "rpu-mnist", "--out", "OUT", "--models", "fp"],
     "experiment 'rpu-mnist' has no model list"),
    (["experiment", "rpu-mnist", "--out", "OUT", "--transfer-decay", "2"],
     "experiment 'rpu-mnist' has no transfer schedule"),
    (["experiment", "asymmetric-training", "--out", "OUT", "--transfer-decay", "-1"],
     "--transfer-decay must be >= 0"),
    (["run", "IMG", "--input", "x.npy", "--out", "OUT/y.npy", "--seed", "-1"],
     "--seed must be in"),
    (["regress", "--preset", "tiny", "-k", "("], "-k '(' is not a valid regular expression"),
])
def test_bad_seed_and_pattern_are_one_line(argv, msg, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path / "o")).replace("IMG", str(tmp_path))
            for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cimflow: error:") and msg in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content,msg", [
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (None, "is not a file"),
])
def test_unreadable_config_is_one_line(tmp_path, capsys, content, msg):
    p = tmp_path / "c.json"
    if content is None:
        p.mkdir()
    else:
        p.write_bytes(content)
    assert main(["generate", "--config", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"cimflow: error: config file {p} {msg}", err


def test_a_config_file_named_after_a_preset_is_not_that_preset(tmp_path, monkeypatch, capsys):
    """tiny.json holding a 16 x 16 core runs every (non-smoke) test on that core under its own
    label, not the tiny preset's test list: core_fpga.compiled_image is a small-only test."""
    from cimflow.config import preset
    from cimflow.verif import regress

    seen = {}

    def fake_run(presets, pattern, out, configs, **kw):
        seen.update(presets=presets, configs=configs,
                    chosen=regress.select(regress.as_configs(presets, configs), pattern))
        return []

    monkeypatch.setattr(regress, "run_regression", fake_run)
    p = tmp_path / "tiny.json"
    p.write_text(preset("small").to_json())
    assert main(["regress", "--config", str(p), "-k", "compiled_image",
                 "--out", str(tmp_path / "r")]) == 0
    assert seen["presets"] == () and list(seen["configs"]) == ["config-tiny"]
    assert seen["configs"]["config-tiny"] == preset("small")
    assert [(t.name, label) for t, label in seen["chosen"]] == [
        ("core_fpga.compiled_image", "config-tiny")]
