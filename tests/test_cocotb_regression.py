"""The cocotb regression on Verilator, run from pytest (one Verilator build per preset)."""

import pytest

from cimflow.verif.regress import run_regression


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
                                  "gating"])
def test_core(name, test, out):
    fig = _run(name, rf"^core\.{test}\[", out)
    assert fig["coverage"]
    if test == "mvm_random":
        assert fig["cycles"] >= 20_000  # control words compared with the golden sequence


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_core_fpga_program_and_mvm(name, out):
    fig = _run(name, r"core_fpga\.program_mvm", out)
    assert fig["mvms"] >= 10 and fig["program_pulses"] > 0


@pytest.mark.cocotb
def test_core_full_size_smoke(out):
    _run("full", r"^core\.smoke", out)
