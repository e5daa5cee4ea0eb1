"""Experiments on training for the chip: `noise-injection` and `concrete-adc`.

Both train the MNIST models of ``cimflow.golden.nat.models`` on the offline data
(``cimflow.datasets``; Fashion-MNIST is used when its files are present and skipped with a
message otherwise), write results.json (through the CLI) and PNG plots, print one progress
line per epoch, and save the trained models as TorchScript files of plain torch modules
(what the model compiler reads) with their quantiser settings beside them. ``--quick``
trains the MLP on a subset for one epoch. Results and their reading: docs/chip_training.md.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cimflow.atomic import save_figure, write_atomic
from cimflow.golden.nat import NatConfig, Srmp, calibrate, noise_aware, plain, quant_settings
from cimflow.golden.nat.aware import set_noise
from cimflow.golden.nat.models import MODELS, n_params
from cimflow.golden.nat.train import accuracy, fit, to_tensors

from .registry import experiment

__all__ = ["noise_injection", "concrete_adc", "load_data", "save_model"]

ACT_BITS = 3
"""MNIST layer inputs, the image included: 3-bit unsigned (Wan et al. 2022, Table 1)."""
PICK_NU = 0.10
"""Test noise at which the deployed model is picked (Wan et al. 2022, Methods)."""


def load_data(name: str):
    """(train_x, train_y, test_x, test_y) arrays of ``name`` from the offline loader."""
    from cimflow.datasets import load

    d = load(name)
    return d["train_x"], d["train_y"], d["test_x"], d["test_y"]


def _datasets(names, n_quick, device, log):
    """Tensors of every data set in ``names`` that loads; ``n_quick``: (train, test) subset."""
    from cimflow.datasets import DataError

    out = {}
    for name in names:
        try:
            tx, ty, vx, vy = load_data(name)
        except DataError as e:
            log(f"{name}: skipped ({e})")
            continue
        n_train, n_test = n_quick or (len(tx), len(vx))
        out[name] = (*to_tensors(tx[:n_train], ty[:n_train], device),
                     *to_tensors(vx[:n_test], vy[:n_test], device))
    if not out:
        raise RuntimeError("no data set could be loaded (see the messages above)")
    return out


def setup_run(seed):
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("CIMFLOW_TORCH_THREADS", "1")))
    return "cuda" if torch.cuda.is_available() else "cpu"


def progress_log(tag):
    def log(msg):
        print(f"[{tag}] {msg}", file=sys.stderr, flush=True)

    return log


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_model(model, path: Path, x_cal: torch.Tensor) -> dict:
    """TorchScript of the plain model at ``path``; beside it, as JSON, its quantiser settings
    and the chip operating point of every layer calibrated on ``x_cal`` (training data)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is what the compiler reads
        torch.jit.save(torch.jit.script(plain(model)), buf)
    points = calibrate(model, x_cal, act=False, adc=False)
    settings = [dict(s, v_read=p.v_read, v_decr=p.v_decr)
                for s, p in zip(quant_settings(model), points, strict=True)]
    write_atomic(path, buf.getvalue())
    write_atomic(path.with_suffix(".quant.json"), json.dumps(settings, indent=1))
    return {"file": path.name, "quant": path.with_suffix(".quant.json").name}


def _train(arch, cfg, data, epochs, seed, log, label, lr=1e-3):
    x, y = data[0], data[1]
    torch.manual_seed(seed)
    model = noise_aware(MODELS[arch](), cfg).to(x.device)
    calibrate(model, x[:512])  # PACT clip levels and ADC steps from training data

    def progress(ep, loss, secs):
        log(f"{label} epoch {ep}/{epochs} loss {loss:.4f} ({secs:.1f} s)")

    hist = fit(model, x, y, epochs=epochs, lr=lr, seed=seed, progress=progress)
    return model, [h[1] for h in hist]


# ------------------------------------------------------------------ noise-injection
@experiment("noise-injection", "accuracy vs test weight noise for models trained with 0-30 % "
            "noise injection (NeuRRAM Methods; MNIST, Fashion-MNIST if present)")
def noise_injection(out: Path, quick: bool, seed: int) -> dict:
    device = setup_run(seed)
    log = progress_log("noise-injection")
    t_start = time.perf_counter()
    train_nus = [0.0, 0.1, 0.2, 0.3]
    test_nus = [0.0, 0.1, 0.2, 0.3, 0.4] if quick else [round(0.05 * i, 2) for i in range(9)]
    archs = ["mlp"] if quick else ["mlp", "cnn7"]
    epochs = 2 if quick else 10
    repeats = 2 if quick else 5
    data = _datasets(["mnist", "fashion-mnist"], (20000, 2000) if quick else None, device, log)
    res = {"quick": quick, "seed": seed, "act_bits": ACT_BITS, "train_nu": train_nus,
           "test_nu": test_nus, "epochs": epochs, "repeats": repeats,
           "train_samples": {k: len(v[0]) for k, v in data.items()},
           "test_samples": {k: len(v[2]) for k, v in data.items()}, "runs": {}}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(data) * len(archs), figsize=(5 * len(data) * len(archs), 4),
                             squeeze=False)
    panel = 0
    for dname, d in data.items():
        for arch in archs:
            key = f"{dname}/{arch}"
            run = {"params": n_params(MODELS[arch]()), "acc": {}, "std": {}, "epoch_s": {}}
            models = {}
            for nu in train_nus:
                cfg = NatConfig(nu=nu, act_bits=ACT_BITS)
                model, secs = _train(arch, cfg, d, epochs, seed, log, f"{key} nu={nu:.2f}")
                run["epoch_s"][f"{nu:.2f}"] = secs
                accs, stds = [], []
                for t in test_nus:
                    set_noise(model, nu_test=t)
                    a, s = accuracy(model, d[2], d[3], repeats=repeats if t else 1)
                    accs.append(a)
                    stds.append(s)
                run["acc"][f"{nu:.2f}"], run["std"][f"{nu:.2f}"] = accs, stds
                models[nu] = model
                log(f"{key} nu={nu:.2f} accuracy at test noise 0/10 %: "
                    f"{accs[0]:.4f} / {accs[test_nus.index(PICK_NU)]:.4f}")
            at = test_nus.index(PICK_NU)
            best = max(train_nus, key=lambda nu: run["acc"][f"{nu:.2f}"][at])
            run["picked_nu"] = best
            run["picked_acc_at_10pct"] = run["acc"][f"{best:.2f}"][at]
            run["no_injection_acc_at_10pct"] = run["acc"]["0.00"][at]
            run["gain_at_10pct"] = run["picked_acc_at_10pct"] - run["no_injection_acc_at_10pct"]
            hi = test_nus.index(0.3)
            run["gain_at_30pct"] = (max(run["acc"][f"{nu:.2f}"][hi] for nu in train_nus)
                                    - run["acc"]["0.00"][hi])
            set_noise(models[best], nu_test=0.0)
            stem, x_cal = out / "models" / f"{dname}_{arch}", d[0][:512]
            run["model"] = save_model(models[best], stem.with_name(stem.name + "_nat.pt"), x_cal)
            run["model"]["baseline"] = save_model(
                models[0.0], stem.with_name(stem.name + "_float.pt"), x_cal)["file"]
            res["runs"][key] = run
            ax = axes[0, panel]
            panel += 1
            for nu in train_nus:
                ax.errorbar([100 * t for t in test_nus], [100 * a for a in run["acc"][f"{nu:.2f}"]],
                            yerr=[100 * s for s in run["std"][f"{nu:.2f}"]], marker="o", ms=3,
                            label=f"trained with {100 * nu:.0f} %")
            ax.axvline(100 * PICK_NU, color="grey", lw=0.8, ls=":")
            ax.set(xlabel="test weight noise (% of max|W|)", ylabel="accuracy (%)",
                   title=f"{key} ({'quick' if quick else 'full'})")
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "noise_injection.png", dpi=120)
    plt.close(fig)
    res["wall_s"] = time.perf_counter() - t_start
    return res


# ------------------------------------------------------------------ concrete-adc
@experiment("concrete-adc", "Concrete-distribution vs STE ADC quantiser under small-read-margin "
            "noise, over ADC bits and noise levels (ITRI; MNIST)")
def concrete_adc(out: Path, quick: bool, seed: int) -> dict:
    device = setup_run(seed)
    log = progress_log("concrete-adc")
    t_start = time.perf_counter()
    bits_list = [3, 4] if quick else [3, 4, 5]
    s1_list = [0.5, 1.5] if quick else [0.0, 0.5, 1.0, 2.0]
    s0 = 0.1
    # the Concrete relaxation multiplies every conv output by 2^bits levels: the CNN costs
    # about 25 CPU-minutes per epoch, so it is trained only where a GPU is present
    archs = ["mlp"] if quick or device == "cpu" else ["mlp", "cnn7"]
    epochs = 2 if quick else 10
    repeats = 2 if quick else 5
    data = _datasets(["mnist"], (10000, 2000) if quick else None, device, log)
    d = data["mnist"]
    res = {"quick": quick, "seed": seed, "act_bits": 4, "srmp_s0": s0, "s1": s1_list,
           "bits": bits_list, "epochs": epochs, "repeats": repeats, "tau": 0.5,
           "sigma_floor": 0.2, "train_samples": len(d[0]), "test_samples": len(d[2]),
           "runs": {}}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 4), squeeze=False)
    for ai, arch in enumerate(archs):
        table = {}
        for bits in bits_list:
            for s1 in s1_list:
                row = {}
                for mode in ("ste", "concrete"):
                    cfg = NatConfig(act_bits=4, adc_bits=bits, adc_mode=mode,
                                    srmp=Srmp(s0, s1), tau=0.5, sigma_floor=0.2)
                    label = f"{arch} {bits}-bit s1={s1} {mode}"
                    model, secs = _train(arch, cfg, d, epochs, seed, log, label)
                    a, s = accuracy(model, d[2], d[3], repeats=repeats)
                    row[mode] = {"acc": a, "std": s, "epoch_s": secs}
                    if s1 == s1_list[-1] and bits == bits_list[0]:
                        row[mode]["model"] = save_model(
                            model, out / "models" / f"mnist_{arch}_adc{bits}_{mode}.pt", d[0][:512])
                row["gain"] = row["concrete"]["acc"] - row["ste"]["acc"]
                log(f"{arch} {bits}-bit s1={s1}: STE {row['ste']['acc']:.4f} Concrete "
                    f"{row['concrete']['acc']:.4f} (gain {100 * row['gain']:+.2f} %)")
                table[f"{bits}/{s1}"] = row
        res["runs"][arch] = table
        gains = [r["gain"] for r in table.values()]
        res[f"{arch}_mean_gain"] = float(np.mean(gains))
        ax = axes[0, ai]
        for bi, bits in enumerate(bits_list):
            for mode, ls in (("ste", "--"), ("concrete", "-")):
                ax.plot(s1_list, [100 * table[f"{bits}/{s1}"][mode]["acc"] for s1 in s1_list],
                        ls=ls, color=f"C{bi}", marker="o", ms=3, label=f"{bits}-bit {mode}")
        ax.set(xlabel="SRMP noise growth s1 (LSB at 256 open word lines)",
               ylabel="accuracy (%)", title=f"mnist/{arch} ({'quick' if quick else 'full'})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "concrete_adc.png", dpi=120)
    plt.close(fig)
    res["wall_s"] = time.perf_counter() - t_start
    return res
