"""The cocotb regression on Verilator, run from pytest (one Verilator build per preset)."""

import pytest

from cimflow.verif.regress import run_regression


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("regress")


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_bit_exact_100k_cycles(name, out):
    (r,) = run_regression((name,), r"bit_exact", out, progress=lambda *_: None)
    assert r.passed, r.log
    assert r.figures["cycles"] >= 100_000
    assert len(r.figures["seeds"]) == 3


@pytest.mark.cocotb
@pytest.mark.parametrize("name", ["small", "medium"])
def test_statistics(name, out):
    (r,) = run_regression((name,), r"statistics", out, progress=lambda *_: None)
    assert r.passed, r.log
    fig = r.figures
    assert fig["binomial"]["passed"] and fig["coincidences"]["passed"]
    assert fig["correlation"]["max_abs_z"] <= fig["correlation"]["z_bound"]
    # a single LFSR chain fails the same neighbour-correlation bound
    assert fig["single_chain_correlation"]["max_abs_z"] > fig["correlation"]["z_bound"]


@pytest.mark.cocotb
def test_full_size_smoke(out):
    (r,) = run_regression(("full",), r"smoke", out, progress=lambda *_: None)
    assert r.passed, r.log
