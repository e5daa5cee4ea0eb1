"""Each registered experiment's quick run, judged against references the test states itself:
the NeuRRAM paper's figures (written here, not imported from the experiment), closed-form
statistics of the random inputs, and counts recomputed from the experiment's own output."""

import json
import math

import numpy as np
import pytest

from cimflow.experiments import registry

# NeuRRAM paper (Wan et al., Nature 2022): write-verify and relaxation figures
PAPER_MEAN_PULSES, PAPER_PASS, PAPER_SIGMA_R1, PAPER_SIGMA_R3 = 8.52, 0.99, 2.8, 2.0


def test_registered():
    assert {"mvm-rmse", "adc-transfer", "write-verify", "write-verify-fit"} <= set(registry())


def test_adc_transfer_quick(tmp_path):
    res = registry()["adc-transfer"].run(tmp_path, True, 0)
    n = res["grid_points"]
    assert n == 20_001 and res["mismatches"] == 0
    for k, v in res["per_k"].items():
        # grid on [-2.5, 2.5], spacing 2.5e-4: each decision threshold j / 2^(K-1) removes
        # at most one point, and the grid is symmetric, so about half the points are negative
        thresholds = 2 * math.floor(2.5 * 2.0 ** (int(k) - 1)) + 1
        assert n - thresholds <= v["points"] <= n, k
        assert abs(v["negative_points"] - v["points"] / 2) <= thresholds, k
        assert v["mismatches"] == 0
    assert set(res["per_k"]) == {str(k) for k in range(10)}
    assert (tmp_path / "adc_transfer.png").stat().st_size > 1000
    json.dumps(res)


def _input_quantisation_rmse(bits: int, n: int = 64) -> float:
    """r.m.s. error of W x from quantising x ~ U[-1, 1] to ``bits`` signed bits, W ~ N(0, 1):
    each input's error is uniform over one step 1 / (2^(bits-1) - 1), variance step^2 / 12."""
    step = 1.0 / ((1 << (bits - 1)) - 1)
    return math.sqrt(n * step**2 / 12)


def test_mvm_rmse_quick(tmp_path):
    res = registry()["mvm-rmse"].run(tmp_path, True, 1)
    names = {"fwd_4b", "bwd_4b", "fwd_6b", "fwd_6b_two_phase"}
    assert set(res["rmse"]) == names
    std_wx = math.sqrt(64 / 3)  # std of W x for 64 inputs, W ~ N(0, 1), x ~ U[-1, 1]
    w_max = res["w_max"]
    assert 3.0 < w_max < 4.5  # max |W| of 4096 N(0, 1) draws
    for n in names:
        r, cum = res["rmse_wx"][n], res["cumulative"][n]
        assert math.isfinite(r) and 0 < r < std_wx
        assert res["rmse"][n] == pytest.approx(r / w_max)
        assert res["nrmse"][n] == pytest.approx(r / std_wx, rel=0.15)
        assert cum["cmp_noise"] == pytest.approx(res["rmse"][n])
        # input quantisation alone is the closed form (6-bit for two-phase)
        bits = 4 if n.endswith("4b") else 6
        assert res["alone"][n]["input_quant"] * w_max == pytest.approx(
            _input_quantisation_rmse(bits), rel=0.1)
        # relaxation and programming error make the total exceed the static floor
        assert cum["relaxation"] > cum["dead_band"] > 0
    # forward 4-bit is the fitted scheme: within 15 % of the paper at another seed too
    assert res["rmse"]["fwd_4b"] == pytest.approx(0.582, rel=0.15)
    assert all(0 < op["v_read"] <= 0.5 and op["v_decr"] > 0
               for ops in res["operating_point"].values() for op in ops)
    for png in ("mvm_rmse_scatter.png", "mvm_rmse_budget.png"):
        assert (tmp_path / png).stat().st_size > 1000
    json.dumps(res)


def test_write_verify_quick(tmp_path):
    res = registry()["write-verify"].run(tmp_path, True, 0)
    first = res["first_pass"]
    assert first["cells"] == 64 * 64
    assert first["mean_pulses"] == pytest.approx(PAPER_MEAN_PULSES, rel=0.1)
    assert PAPER_PASS - 0.02 <= first["pass_fraction"] <= 1.0
    hist = np.array(res["pulses_histogram"])  # cells by pulse count 0, 1, 2, ...
    assert hist.sum() == first["cells"] and len(hist) == first["max_pulses"] + 1
    assert (np.arange(len(hist)) @ hist) / hist.sum() == pytest.approx(first["mean_pulses"])
    rounds = res["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert rounds[0]["reprogrammed"] > rounds[1]["reprogrammed"] > rounds[2]["reprogrammed"]
    tol = [r["within_tol_after_relaxation"] for r in rounds]
    assert tol[0] < tol[1] < tol[2]  # iterative programming narrows the spread
    for model, sigma in res["relaxation_sigma_mean_uS"].items():
        assert sigma[0] > sigma[1] > sigma[2] > 0, model
    scaled = next(v for k, v in res["relaxation_sigma_mean_uS"].items() if "round 1 = paper" in k)
    assert scaled[0] == pytest.approx(PAPER_SIGMA_R1, rel=0.05)
    assert scaled[2] == pytest.approx(PAPER_SIGMA_R3, rel=0.2)
    for name in res["plots"]:
        assert (tmp_path / name).stat().st_size > 1000


def test_write_verify_fit_quick(tmp_path):
    res = registry()["write-verify-fit"].run(tmp_path, True, 0)
    assert res["check_mean_pulses"] == pytest.approx(PAPER_MEAN_PULSES, rel=0.05)
    assert res["check_pass_fraction"] == pytest.approx(PAPER_PASS, abs=0.01)
    fit, ref = res["fitted"], res["defaults"]
    # the documented fit reproduces the model's shipped parameters
    assert fit["v_set_th"] == pytest.approx(ref["v_set_th"], abs=0.05)
    assert fit["ceiling_d2d"] == pytest.approx(ref["ceiling_d2d"], rel=0.1)
    assert fit["v_set_th"] - fit["v_reset_th"] == pytest.approx(
        ref["v_set_th"] - ref["v_reset_th"])  # the two thresholds move together
