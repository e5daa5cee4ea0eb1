"""Experiments on the golden NeuRRAM core: MVM accuracy (Ext. Data Fig. 5) and ADC transfer.

Both are registered with :func:`cimflow.experiments.registry.experiment` and run by
``cimflow experiment NAME --out DIR [--quick] [--seed N]``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cimflow.config import PRESETS
from cimflow.golden.adc_reference import adc_reference
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.mvm import MvmSettings, mvm, quantize_inputs, recover, split_two_phase
from cimflow.golden.neuron import (
    C_INTEG,
    C_SAMPLE,
    CHARGE_FRAC_BITS,
    MAX_MAG_BITS,
    adc_closed_form,
    adc_counting,
    adc_exact,
    integ_units,
)
from cimflow.golden.nonideal import REALISTIC, NonIdeal

from .registry import experiment

__all__ = ["mvm_rmse", "adc_transfer", "calibrate"]

V_READ_MAX = 0.5


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------ mvm-rmse
def calibrate(xbar: Crossbar, x_cal: np.ndarray, st: MvmSettings, swing: float | None,
              pct: float = 99.9) -> MvmSettings:
    """Model-driven calibration (docs/model.md#calibration) on calibration inputs: lower V_read
    until the integrator stays within 90 % of its swing, then set V_decr so the ADC full
    scale 2 C_s V_decr covers the ``pct`` percentile of |Q|."""
    probe = replace(st, v_read=V_READ_MAX, v_decr=V_READ_MAX)
    q = np.abs(mvm(xbar, x_cal, probe).charge).astype(np.float64)
    q_hi = max(float(np.percentile(q, pct)), 1.0)
    v_read = V_READ_MAX
    if swing is not None:
        v_peak = q_hi / integ_units(1.0, V_READ_MAX)  # volts on C_integ at V_READ_MAX
        if v_peak > 0.9 * swing:
            v_read = V_READ_MAX * 0.9 * swing / v_peak
    # q scales with v_read: Q = C_s v_read (q_units / 2^F); full scale 2 C_s V_decr = Q_hi
    v_decr = q_hi / (1 << CHARGE_FRAC_BITS) * v_read / 2.0
    return replace(st, v_read=v_read, v_decr=v_decr)


def _run_scheme(xbar, ni, off_v, x_cal, x_int, st, rng):
    st = calibrate(xbar, x_cal, st, ni.integrator_swing_v)
    off = np.rint(off_v * integ_units(1.0, st.v_read)).astype(np.int64)
    return recover(mvm(xbar, x_int, st, ni, rng, offsets=off), xbar), st


def _scheme_estimates(xbar, ni, off_v, xc, xt, rng, name):
    """Recovered outputs (float x units) of one of the four Ext. Data Fig. 5 schemes."""
    fwd, bwd = Direction.FORWARD, Direction.BACKWARD
    if name == "fwd_6b_two_phase":
        out, sts = 0.0, []
        parts = zip(split_two_phase(quantize_inputs(xc, 6), 6, 3)[:2],
                    split_two_phase(quantize_inputs(xt, 6), 6, 3)[:2], (3, 4), (8, 5), (8, 1),
                    strict=True)
        for xc_p, xt_p, bits, ob, w in parts:
            est, st = _run_scheme(xbar, ni, off_v, xc_p, xt_p,
                                  MvmSettings(fwd, in_bits=bits, out_bits=ob), rng)
            out, sts = out + w * est, sts + [st]
        return out / 31, sts
    bits, d, ob = {"fwd_4b": (4, fwd, 6), "bwd_4b": (4, bwd, 6), "fwd_6b": (6, fwd, 8)}[name]
    est, st = _run_scheme(xbar, ni, off_v, quantize_inputs(xc, bits), quantize_inputs(xt, bits),
                          MvmSettings(d, in_bits=bits, out_bits=ob), rng)
    return est / ((1 << (bits - 1)) - 1), [st]


@experiment("mvm-rmse", "MVM r.m.s.e. of 4-bit fwd/bwd, 6-bit and two-phase 6-bit inputs "
            "(NeuRRAM Ext. Data Fig. 5a-d)")
def mvm_rmse(out: Path, quick: bool, seed: int) -> dict:
    out = Path(out)
    rng = np.random.default_rng(seed)
    n, n_test = 64, (300 if quick else 1000)
    w = rng.standard_normal((n, n))
    xt = rng.uniform(-1, 1, (n_test, n))
    xc = rng.uniform(-1, 1, (200, n))  # calibration set, disjoint from the test inputs
    xbar = Crossbar(PRESETS["full"])
    xbar.program(w)
    ideal_g = xbar.g.copy()
    xbar.set_conductances(REALISTIC.perturb(xbar.target, rng))
    off_v = rng.normal(0.0, REALISTIC.adc_offset_v, PRESETS["full"].rows)
    names = ["fwd_4b", "bwd_4b", "fwd_6b", "fwd_6b_two_phase"]
    results: dict = {"rmse": {}, "nrmse": {}, "operating_point": {}}
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for ax, name in zip(axes, names, strict=True):
        ref = xt @ w.T if name.startswith("bwd") else xt @ w
        est, sts = _scheme_estimates(xbar, REALISTIC, off_v, xc, xt, rng, name)
        rmse = float(np.sqrt(np.mean((est - ref) ** 2)))
        results["rmse"][name] = rmse
        results["nrmse"][name] = rmse / float(np.std(ref))
        results["operating_point"][name] = [
            {"in_bits": s.in_bits, "out_bits": s.out_bits, "v_read": s.v_read,
             "v_decr": s.v_decr} for s in sts]
        ax.scatter(ref.ravel(), est.ravel(), s=1, alpha=0.3)
        lim = float(np.abs(ref).max())
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.set(title=f"{name}: rmse {rmse:.3f}", xlabel="ideal W x", ylabel="chip model")
    fig.tight_layout()
    fig.savefig(out / "mvm_rmse_scatter.png", dpi=110)
    plt.close(fig)
    # ablations on the ideal conductances: electrical non-idealities only (no relaxation),
    # and nothing at all (input/output quantisation and the g_min encoding term only)
    g_actual = xbar.g
    xbar.set_conductances(ideal_g)
    ablations = {"rmse_no_relaxation": (replace(REALISTIC, relaxation=False), off_v),
                 "rmse_no_nonideal": (NonIdeal(), np.zeros_like(off_v))}
    for key, (ni, ov) in ablations.items():
        results[key] = {}
        for name in names:
            ref = xt @ w.T if name.startswith("bwd") else xt @ w
            est, _ = _scheme_estimates(xbar, ni, ov, xc, xt, rng, name)
            results[key][name] = float(np.sqrt(np.mean((est - ref) ** 2)))
    xbar.set_conductances(g_actual)
    r = results["rmse"]
    results["silicon"] = {"fwd_4b": 0.582, "fwd_6b": 0.581, "fwd_6b_two_phase": 0.519}
    results["ordering_holds"] = bool(r["fwd_6b_two_phase"] < min(r["fwd_4b"], r["fwd_6b"]))
    results["rmse_definition"] = (
        "sqrt(mean((y_hat - W x)^2)) over all outputs and inputs, in the units of W x with "
        "W ~ N(0,1) and x ~ U[-1,1] unquantised; nrmse divides by std(W x)")
    results["nonidealities"] = {k: v for k, v in vars(REALISTIC).items()}
    results["n_test"] = n_test
    return results


# ------------------------------------------------------------------ adc-transfer
@experiment("adc-transfer", "neuron ADC transfer vs the closed form, exhaustive off thresholds")
def adc_transfer(out: Path, quick: bool, seed: int) -> dict:
    out = Path(out)
    rng = np.random.default_rng(seed)
    n = 20_001 if quick else 500_001
    q = np.linspace(-2.5, 2.5, n) + rng.uniform(-1e-7, 1e-7, n)
    d = 1 << 40  # C_s V_decr in integer charge units for the exact paths
    per_k, total_bad = {}, 0
    for k in range(0, MAX_MAG_BITS + 1):
        t = np.abs(q) * 2.0 ** (k - 1)
        qq = q[np.abs(t - np.rint(t)) > 1e-6]  # off every decision threshold
        s0, m0 = adc_closed_form(qq, k)
        s1, m1 = adc_reference(qq, k)
        qi = np.rint(qq * d).astype(np.int64)
        s2, m2 = adc_exact(qi, d, k)
        checks = [(s1, m1), (s2, m2)]
        if k <= 7:
            checks.append(adc_counting(qi, d, k))
        bad = sum(int(np.sum((s != s0) | (m != m0))) for s, m in checks)
        neg = int(np.sum(s0 == 0))
        per_k[str(k)] = {"points": int(qq.size), "mismatches": bad, "negative_points": neg}
        total_bad += bad
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in (2, 4):
        s, m = adc_closed_form(q, k)
        ax.step(q, np.where(s == 1, m, -m), where="post", label=f"K = {k}")
    ax.set(xlabel="q = Q / (C_s V_decr)", ylabel="signed code", title="neuron ADC transfer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "adc_transfer.png", dpi=110)
    plt.close(fig)
    return {
        "grid_points": n, "per_k": per_k, "mismatches": total_bad,
        "c_sample_f": C_SAMPLE, "c_integ_f": C_INTEG,
        "checked": "reference algorithm, exact integer converter (binary search) and the "
                   "counting converter (K <= 7) against min(floor(|q| 2^(K-1)), 2^K - 1)",
    }
