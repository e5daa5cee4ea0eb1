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
