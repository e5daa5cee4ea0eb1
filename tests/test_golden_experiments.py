"""The golden experiments run in quick mode and report what they claim."""

import json
import math

from cimflow.experiment import registry


def test_registered():
    reg = registry()
    assert {"mvm-rmse", "adc-transfer"} <= set(reg)


def test_adc_transfer_quick(tmp_path):
    res = registry()["adc-transfer"].run(tmp_path, True, 0)
    assert res["mismatches"] == 0
    assert all(v["points"] > 1000 for v in res["per_k"].values())
    assert all(v["negative_points"] > 0 for v in res["per_k"].values())  # inversion exercised
    assert (tmp_path / "adc_transfer.png").stat().st_size > 1000
    json.dumps(res)


def test_mvm_rmse_quick(tmp_path):
    res = registry()["mvm-rmse"].run(tmp_path, True, 1)
    names = {"fwd_4b", "bwd_4b", "fwd_6b", "fwd_6b_two_phase"}
    assert set(res["rmse"]) == names
    for n in names:
        r, r0 = res["rmse"][n], res["rmse_no_nonideal"][n]
        assert math.isfinite(r) and 0 < r0 < r < 5  # non-idealities only add error
    # 6-bit input quantisation error is far below 4-bit's when nothing else is on
    assert res["rmse_no_nonideal"]["fwd_6b"] < res["rmse_no_nonideal"]["fwd_4b"]
    assert isinstance(res["ordering_holds"], bool)
    assert (tmp_path / "mvm_rmse_scatter.png").stat().st_size > 1000
    json.dumps(res)
