"""Experiments on the golden NeuRRAM core: MVM accuracy (Ext. Data Fig. 5) and ADC transfer.

Both are registered with :func:`cimflow.experiments.registry.experiment` and run by
``cimflow experiment NAME --out DIR [--quick] [--seed N]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cimflow.atomic import save_figure
from cimflow.config import PRESETS
from cimflow.golden.adc_reference import adc_reference
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.mvm import (
    MvmResult,
    MvmSettings,
    mvm,
    quantize_inputs,
    recover,
    split_two_phase,
)
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
from cimflow.golden.nonideal import NEURRAM_FIT, NonIdeal

from .registry import experiment

__all__ = ["mvm_rmse", "adc_transfer", "calibrate", "run_budget", "total_rmse", "SOURCES"]

V_READ_MAX = 0.5


def pyplot():
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
    res = mvm(xbar, x_cal, probe)
    used = np.asarray(res.extra["den"]) > 0  # lines that carry an output
    q = np.abs(res.charge[..., used]).astype(np.float64)
    q_hi = max(float(np.percentile(q, pct)), 1.0)
    v_read = V_READ_MAX
    if swing is not None:
        v_peak = q_hi / integ_units(1.0, V_READ_MAX)  # volts on C_integ at V_READ_MAX
        if v_peak > 0.9 * swing:
            v_read = V_READ_MAX * 0.9 * swing / v_peak
    # q scales with v_read: Q = C_s v_read (q_units / 2^F); full scale 2 C_s V_decr = Q_hi
    v_decr = q_hi / (1 << CHARGE_FRAC_BITS) * v_read / 2.0
    return replace(st, v_read=v_read, v_decr=v_decr)


def _recover_charge(res: MvmResult, xbar: Crossbar) -> np.ndarray:
    """The output recovered from the integrated charge itself (no ADC: no quantisation,
    offset or comparator noise), in the units of :func:`recover`."""
    q = np.asarray(res.charge, dtype=np.float64)
    lsb = res.settings.lsb_units
    raw = MvmResult(res.settings, (q > 0).astype(np.uint8), np.abs(q) / lsb, res.charge)
    return recover(raw, xbar, centre=False)


def _run_scheme(xbar, ni, off_v, x_cal, x_int, st, seed, adc=True):
    st = calibrate(xbar, x_cal, st, ni.integrator_swing_v)
    off = np.rint(off_v * integ_units(1.0, st.v_read)).astype(np.int64)
    res = mvm(xbar, x_int, st, ni, np.random.default_rng(seed), offsets=off)
    return (recover(res, xbar) if adc else _recover_charge(res, xbar)), st


def _scheme_estimates(xbar, ni, off_v, xc, xt, seed, name, adc=True):
    """Recovered outputs (float x units) of one of the four Ext. Data Fig. 5 schemes."""
    fwd = Direction.FORWARD
    if name == "fwd_6b_two_phase":
        out, sts = 0.0, []
        parts = zip(split_two_phase(quantize_inputs(xc, 6), 6, 3)[:2],
                    split_two_phase(quantize_inputs(xt, 6), 6, 3)[:2], (3, 4), (8, 5), (8, 1),
                    strict=True)
        for i, (xc_p, xt_p, bits, ob, w) in enumerate(parts):
            est, st = _run_scheme(xbar, ni, off_v, xc_p, xt_p,
                                  MvmSettings(fwd, in_bits=bits, out_bits=ob), seed + 7 * i, adc)
            out, sts = out + w * est, sts + [st]
        return out / 31, sts
    bits, d, ob = SCHEMES[name]
    est, st = _run_scheme(xbar, ni, off_v, quantize_inputs(xc, bits), quantize_inputs(xt, bits),
                          MvmSettings(d, in_bits=bits, out_bits=ob), seed, adc)
    return est / ((1 << (bits - 1)) - 1), [st]


SCHEMES = {"fwd_4b": (4, Direction.FORWARD, 6), "bwd_4b": (4, Direction.BACKWARD, 6),
           "fwd_6b": (6, Direction.FORWARD, 8)}
NAMES = ["fwd_4b", "fwd_6b", "fwd_6b_two_phase", "bwd_4b"]
PAPER = {"fwd_4b": 0.582, "fwd_6b": 0.581, "fwd_6b_two_phase": 0.519}
"""Wan et al. 2022, Extended Data Fig. 5a, c, d (r.m.s.e.; read here in the units of the
normalised output (W / w_max) x, docs/golden_results.md#interpretation); 5b (backward) gives
no number, only that it is higher than 5a."""

SOURCES = ["input_quant", "dead_band", "programming", "relaxation", "read_noise", "ir_drop",
           "headroom", "adc_quant", "offsets", "cmp_noise"]
"""The error sources of the budget, in the order they are switched on cumulatively."""


@dataclass(frozen=True)
class _Problem:
    """The Ext. Data Fig. 5 test: W, test and calibration inputs, the programmed array and
    the conductance draws (programming error, then relaxation) and offsets of one seed."""

    w: np.ndarray
    xt: np.ndarray
    xc: np.ndarray
    xbar: Crossbar
    g: dict
    off_v: np.ndarray
    seed: int

    def reference(self, name):
        return self.xt @ self.w.T if name.startswith("bwd") else self.xt @ self.w


def _problem(seed: int, n_test: int, ni: NonIdeal) -> _Problem:
    rng = np.random.default_rng(seed)
    n = 64
    w = rng.standard_normal((n, n))
    xt = rng.uniform(-1, 1, (n_test, n))
    xc = rng.uniform(-1, 1, (200, n))  # calibration set, disjoint from the test inputs
    xbar = Crossbar(PRESETS["full"])
    xbar.program(w)
    target = xbar.target
    r_prog, r_relax = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    prog_only = NonIdeal(prog_sigma_us=ni.prog_sigma_us)
    relax_only = NonIdeal(relaxation=ni.relaxation, relax_scale=ni.relax_scale)
    g_prog = prog_only.perturb(target, r_prog)
    g = {"target": target, "programming": g_prog,
         "relaxation": relax_only.perturb(target, np.random.default_rng([seed, 2])),
         "both": relax_only.perturb(g_prog, r_relax)}
    off_v = np.random.default_rng([seed, 3]).normal(0.0, ni.adc_offset_v, PRESETS["full"].rows)
    return _Problem(w, xt, xc, xbar, g, off_v, seed)


def _config(ni: NonIdeal, on: set):
    """(conductance key, NonIdeal, offsets on, ADC on) with only the sources in ``on``."""
    g = {(False, False): "target", (True, False): "programming", (False, True): "relaxation",
         (True, True): "both"}[("programming" in on, "relaxation" in on)]
    sub = NonIdeal(
        read_noise_v=ni.read_noise_v if "read_noise" in on else 0.0,
        line_noise_v=ni.line_noise_v if "read_noise" in on else 0.0,
        ir_drop_ohm=ni.ir_drop_ohm if "ir_drop" in on else 0.0,
        integrator_swing_v=ni.integrator_swing_v if "headroom" in on else None,
        cmp_noise_v=ni.cmp_noise_v if "cmp_noise" in on else 0.0,
    )
    adc = bool(on & {"adc_quant", "offsets", "cmp_noise"})
    return g, sub, "offsets" in on, adc


def _estimate(p: _Problem, ni: NonIdeal, name: str, on: set):
    g, sub, offs, adc = _config(ni, on)
    p.xbar.set_conductances(p.g[g])
    off_v = p.off_v if offs else np.zeros_like(p.off_v)
    return _scheme_estimates(p.xbar, sub, off_v, p.xc, p.xt, p.seed + 11, name, adc)


def _rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def _budget(p: _Problem, ni: NonIdeal, name: str) -> dict:
    """r.m.s.e. (W x units) with each source alone and cumulatively (SOURCES order).

    Alone: input quantisation is W x_q - W x, the dead band x (W_enc - W) with W_enc the
    weights the target conductances encode (both float, no chip), every other source the
    difference it makes to the chip path with nothing else on (from the charge; the ADC's
    own sources from the codes, offsets and comparator noise against the ADC alone).
    Cumulative: the chip path with the first k sources on, against W x.
    """
    ref = p.reference(name)
    bits = 6 if name.startswith("fwd_6b") else 4
    top = (1 << (bits - 1)) - 1
    xq = quantize_inputs(p.xt, bits) / top
    wt = p.w.T if name.startswith("bwd") else p.w
    m = p.xbar.require_mapping()
    enc = ((m.g_max * p.w / m.w_max).clip(m.g_min) - (-m.g_max * p.w / m.w_max).clip(m.g_min))
    enc = enc * m.w_max / m.g_max
    enc = enc.T if name.startswith("bwd") else enc
    base, _ = _estimate(p, ni, name, {"dead_band"})
    adc_only, _ = _estimate(p, ni, name, {"adc_quant"})
    alone = {"input_quant": _rms(xq @ wt - ref), "dead_band": _rms(p.xt @ enc - ref)}
    for s in SOURCES[2:]:
        est, _ = _estimate(p, ni, name, {s})
        alone[s] = _rms(est - (adc_only if s in ("offsets", "cmp_noise") else base))
    cum, on = {"input_quant": alone["input_quant"]}, {"input_quant"}
    est, sts = None, []
    for s in SOURCES[1:]:
        on = on | {s}
        est, sts = _estimate(p, ni, name, on)
        cum[s] = _rms(est - ref)
    p.xbar.set_conductances(p.g["target"])
    return {"alone": alone, "cumulative": cum, "estimate": est, "settings": sts}


def run_budget(seed: int, n_test: int, ni: NonIdeal, names=NAMES) -> dict:
    """The error budget of every scheme in ``names`` (see :func:`_budget`)."""
    p = _problem(seed, n_test, ni)
    return {"problem": p, **{n: _budget(p, ni, n) for n in names}}


def total_rmse(seed: int, n_test: int, ni: NonIdeal, name: str) -> float:
    """r.m.s.e. of one scheme with every source on, in normalised units (W / w_max) x."""
    p = _problem(seed, n_test, ni)
    est, _ = _estimate(p, ni, name, set(SOURCES))
    return _rms(est - p.reference(name)) / p.xbar.require_mapping().w_max


@experiment("mvm-rmse", "MVM r.m.s.e. budget of 4-bit fwd/bwd, 6-bit and two-phase 6-bit inputs "
            "(NeuRRAM Ext. Data Fig. 5a-d)")
def mvm_rmse(out: Path, quick: bool, seed: int) -> dict:
    out = Path(out)
    ni = NEURRAM_FIT
    b = run_budget(seed, 300 if quick else 1000, ni)
    p = b["problem"]
    w_max = p.xbar.require_mapping().w_max
    std_wx = float(np.std(p.reference("fwd_4b")))
    res: dict = {"rmse": {}, "rmse_wx": {}, "nrmse": {}, "alone": {}, "cumulative": {},
                 "operating_point": {}}
    for n in NAMES:
        r = b[n]["cumulative"]["cmp_noise"]
        res["rmse_wx"][n] = r
        res["rmse"][n] = r / w_max
        res["nrmse"][n] = r / float(np.std(p.reference(n)))
        res["alone"][n] = {k: v / w_max for k, v in b[n]["alone"].items()}
        res["cumulative"][n] = {k: v / w_max for k, v in b[n]["cumulative"].items()}
        res["operating_point"][n] = [
            {"in_bits": s.in_bits, "out_bits": s.out_bits, "v_read": s.v_read,
             "v_decr": s.v_decr_applied} for s in b[n]["settings"]]
    _plots(out, b, w_max)
    r = res["rmse"]
    res["paper"] = dict(PAPER, bwd_4b="higher than fwd_4b")
    res["within_15pct"] = {n: abs(r[n] / v - 1) <= 0.15 for n, v in PAPER.items()}
    res["orderings"] = {
        "two_phase_below_6b_and_4b": bool(r["fwd_6b_two_phase"] < min(r["fwd_4b"], r["fwd_6b"])),
        "6b_within_5pct_of_4b": bool(abs(r["fwd_6b"] / r["fwd_4b"] - 1) <= 0.05),
        "bwd_above_fwd": bool(r["bwd_4b"] > r["fwd_4b"]),
    }
    # what the backward prediction misses: the driver resistance at which backward (128 cells
    # per SL driver) overtakes forward (64 per BL driver), other parameters as fitted
    res["ir_drop_sweep"] = {
        str(ohm): {n: total_rmse(seed, 300, replace(ni, ir_drop_ohm=ohm), n)
                   for n in ("fwd_4b", "bwd_4b")} for ohm in (100.0, 300.0, 1000.0, 1500.0)}
    res["w_max"] = w_max
    res["std_wx"] = std_wx
    res["rmse_definition"] = (
        "rmse: sqrt(mean((y_hat - y)^2)) over all outputs and inputs in the units of the "
        "normalised output y = (W / w_max) x, w_max = max|W| (the conductance-domain output "
        "Sum x (G+ - G-) / g_max); rmse_wx: the same in units of W x; nrmse: rmse_wx / std(W x)")
    res["nonidealities"] = dict(vars(ni))
    res["n_test"] = p.xt.shape[0]
    return res


def _plots(out: Path, b: dict, w_max: float) -> None:
    plt = pyplot()
    p = b["problem"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for ax, n in zip(axes, NAMES, strict=True):
        ref, est = p.reference(n) / w_max, b[n]["estimate"] / w_max
        ax.scatter(ref.ravel(), est.ravel(), s=1, alpha=0.2)
        lim = float(np.abs(ref).max())
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        paper = f", paper {PAPER[n]}" if n in PAPER else ""
        ax.set(title=f"{n}: rmse {_rms(est - ref):.3f}{paper}", xlabel="ideal (W/w_max) x",
               ylabel="golden chip (NEURRAM_FIT)")
    fig.tight_layout()
    save_figure(fig, out / "mvm_rmse_scatter.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 5))
    bottom = np.zeros(len(NAMES))
    cmap = plt.get_cmap("tab10")
    prev = np.zeros(len(NAMES))
    for i, s in enumerate(SOURCES):
        cum = np.array([(b[n]["cumulative"][s] / w_max) ** 2 for n in NAMES])
        inc = np.maximum(cum - prev, 0.0)
        ax.bar(NAMES, inc, bottom=bottom, color=cmap(i), label=s)
        bottom, prev = bottom + inc, cum
    for i, n in enumerate(NAMES):
        if n in PAPER:
            ax.plot([i - 0.4, i + 0.4], [PAPER[n] ** 2] * 2, "k-", lw=2)
    ax.set_ylim(0, 1.1 * max(float(bottom.max()), max(PAPER.values()) ** 2))
    ax.set(ylabel="mean squared error, (W/w_max) x units^2",
           title="MVM error budget (cumulative increments; black: paper's r.m.s.e.^2)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save_figure(fig, out / "mvm_rmse_budget.png", dpi=110)
    plt.close(fig)


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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in (2, 4):
        s, m = adc_closed_form(q, k)
        ax.step(q, np.where(s == 1, m, -m), where="post", label=f"K = {k}")
    ax.set(xlabel="q = Q / (C_s V_decr)", ylabel="signed code", title="neuron ADC transfer")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "adc_transfer.png", dpi=110)
    plt.close(fig)
    return {
        "grid_points": n, "per_k": per_k, "mismatches": total_bad,
        "c_sample_f": C_SAMPLE, "c_integ_f": C_INTEG,
        "checked": "reference algorithm, exact integer converter (binary search) and the "
                   "counting converter (K <= 7) against min(floor(|q| 2^(K-1)), 2^K - 1)",
    }


# ------------------------------------------------------------------ mvm-rmse-fit
FIT_TARGET = PAPER["fwd_4b"]


def fit_line_noise(seed: int = 0, n_test: int = 1000, lo: float = 1e-3, hi: float = 0.1,
                   iters: int = 14) -> tuple[float, float]:
    """Bisection (in log V) of NEURRAM_FIT.line_noise_v so that the forward 4-bit r.m.s.e.
    (normalised units) equals the paper's 0.582; returns (line_noise_v, its r.m.s.e.).
    Only this number is fitted; every other scheme is a prediction."""
    def rmse(v):
        return total_rmse(seed, n_test, replace(NEURRAM_FIT, line_noise_v=v), "fwd_4b")

    for _ in range(iters):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if rmse(mid) < FIT_TARGET else (lo, mid)
    v = float(f"{np.sqrt(lo * hi):.3g}")
    return v, rmse(v)


@experiment("mvm-rmse-fit", "fit NEURRAM_FIT.line_noise_v to the forward 4-bit r.m.s.e. 0.582 "
            "(NeuRRAM Ext. Data Fig. 5a)")
def mvm_rmse_fit(out: Path, quick: bool, seed: int) -> dict:
    v, r = fit_line_noise(seed, 300 if quick else 1000, iters=8 if quick else 14)
    return {"line_noise_v": v, "rmse_fwd_4b": r, "target": FIT_TARGET,
            "shipped_line_noise_v": NEURRAM_FIT.line_noise_v}
