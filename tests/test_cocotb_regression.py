"""The cocotb regression on Verilator, run from pytest (one Verilator build per preset)."""

import json
import xml.etree.ElementTree as ET

import pytest

from cimflow.cli import main
from cimflow.config import PRESETS, CoreConfig
from cimflow.verif.regress import RegressionTest, format_table, run_one, run_regression


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("regress")


def _run(preset, pattern, out):
    (r,) = run_regression((preset,), pattern, out, progress=lambda *_: None)
    assert r.passed, r.log
    return r.figures


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_str_bank_bit_exact_100k_cycles(name, out):
    fig = _run(name, r"str_bank\.bit_exact", out)
    assert fig["cycles"] >= 100_000
    assert len(fig["seeds"]) == 3


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["small", "medium"])
def test_str_bank_statistics(name, out):
    fig = _run(name, r"str_bank\.statistics", out)
    assert fig["binomial"]["passed"] and fig["coincidences"]["passed"]
    assert fig["correlation"]["max_abs_z"] <= fig["correlation"]["z_bound"]
    # a single LFSR chain fails the same neighbour-correlation bound
    assert fig["single_chain_correlation"]["max_abs_z"] > fig["correlation"]["z_bound"]


@pytest.mark.cocotb
def test_str_bank_full_size_smoke(out):
    _run("full", r"str_bank\.smoke", out)


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize("test", ["mvm_random", "rpu_update", "program", "bad_inputs",
                                  "gating", "spi_host"])
def test_core(name, test, out):
    fig = _run(name, rf"^core\.{test}\[", out)
    assert fig["coverage"]
    if test == "mvm_random":
        assert fig["cycles"] >= 20_000  # control words compared with the golden sequence


@pytest.mark.cocotb
def test_core_concurrent_ports(out):
    """Parallel-port writes during SPI frames: every one read back, some met SPI traffic."""
    fig = _run("tiny", r"^core\.concurrent_ports\[", out)
    assert fig["parallel_writes"] > 100 and fig["refused_cycles"] > 0


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_core_fpga_program_and_mvm(name, out):
    fig = _run(name, r"core_fpga\.program_mvm", out)
    assert fig["mvms"] >= 10 and fig["program_pulses"] > 0


@pytest.mark.cocotb
def test_core_fpga_training_step(out):
    """Forward, backward and RPU_UPDATE on the FPGA core: every code bit-exact with the
    golden replay, for three seed pairs and two gains/steps each; the clamp was reached."""
    fig = _run("tiny", r"core_fpga\.training_step", out)
    assert fig["steps"] == 6 and len(fig["seeds"]) == 3
    assert fig["cells_changed"] > 0 and fig["cells_clamped"] > 0


@pytest.mark.cocotb
def test_core_full_size_smoke(out):
    _run("full", r"^core\.smoke", out)


C6 = {"corelet": 6, "rows": 36, "cols": 36, "input_bits": 6, "output_bits": 7, "str_bits": 5,
      "lfsr_a_taps": [23, 18], "lfsr_b_taps": [17, 14], "str_gain_bits": 6,
      "str_gain_frac_bits": 3, "bl": 7, "bl_max": 31, "adc_mode": "counting"}
"""A configuration no preset has: 36 x 36, 6-bit in / 7-bit out, 5-bit STR, other LFSRs."""


@pytest.mark.cocotb
def test_regress_on_a_user_config(tmp_path, capsys):
    """`cimflow regress --config` runs the core's tests on a non-preset CoreConfig (a subset,
    short budgets and an unoptimised build keep CI cost near a minute)."""
    cfg = CoreConfig.from_json(json.dumps(C6))
    assert cfg not in PRESETS.values()
    path = tmp_path / "c6.json"
    path.write_text(cfg.to_json())
    out = tmp_path / "regress"
    assert main(["regress", "--config", str(path), "-k",
                 r"^core\.(mvm_random|rpu_update|bad_inputs)\[", "--cycles", "3000",
                 "--quick-build", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    suite = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"core.mvm_random", "core.rpu_update", "core.bad_inputs"}
    assert suite.get("failures") == "0"
    assert all(c.get("classname") == "cimflow.config-c6" for c in cases.values())
    props = {p.get("name"): json.loads(p.get("value"))
             for p in cases["core.mvm_random"].iter("property")}
    assert props["cycles"] >= 3000  # control words compared with the golden sequence
    assert {p["in_bits"] for p in props["coverage"]} <= set(range(1, 7))
    def bins(label):  # the width bins of the coverage table: only the reachable ones
        line = next(x for x in table.splitlines() if x.startswith(label))
        return [int(tok.split(":")[0]) for tok in line.split(": ", 1)[1].split()]

    assert bins("input bits") == list(range(1, 7)) and bins("output bits") == list(range(1, 8))


@pytest.mark.cocotb
def test_throughput_without_workload_is_skipped_not_passed(out):
    """The benchmark testbench with no workload reports a skip, which is not a pass."""
    test = RegressionTest("bench", "core_fpga", "cimflow.verif.tb_core_fpga", "test_throughput",
                          ("tiny",), ((1, 1),))
    r = run_one(test, "tiny", PRESETS["tiny"], out, False)
    assert r.skipped and not r.passed
    assert "CIMFLOW_CASES_FILE is unset" in r.log.read_text()
    assert "SKIP" in format_table([r])
