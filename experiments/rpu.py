"""Analog-training experiments on MNIST (Gokmen & Vlasov 2016; Gokmen & Haensch 2020; Onen et
al. 2022), run by ``cimflow experiment NAME --out DIR [--quick] [--seed N]``.

* ``rpu-mnist``: MLP 784-256-128-10 (sigmoid, softmax), batch 1, lr 0.01, the paper's device
  (BL 10, dw_min 0.001, bounds +-0.6, 30 % variations) beside a floating-point baseline.
* ``rpu-sensitivity``: test error versus BL, dw_min and the up/down asymmetry.
* ``asymmetric-training``: soft-bounds devices; RPU-SGD, Tiki-Taka and SHD beside floating point
  (A's rate and the transfer rate both BL dw_min = 0.05: the largest without gain saturation;
  the transfer rate decays as 0.05 / (1 + epoch / tau), ``--transfer-decay TAU``).
* ``aihwkit-crosscheck``: one update's per-cell mean and variance and the one-epoch accuracy,
  here and in IBM aihwkit (run through $AIHWKIT_PYTHON; skipped, and said so, without it).

``--quick`` trains on a few thousand images for one or two epochs (a smoke run, its errors
are far above the full run's). Each epoch prints one progress line.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cimflow.atomic import save_figure

from .registry import experiment

__all__ = ["mlp", "train_epochs", "mnist_tensors"]

LR = 0.01


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 128), nn.Sigmoid(),
                         nn.Linear(128, 10))


def mnist_tensors(n_train: int | None, n_test: int | None, seed: int):
    from cimflow.datasets import load

    d = load("mnist")
    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(d["train_y"]))[:n_train]
    te = np.arange(len(d["test_y"]))[:n_test]

    def f(x):
        return torch.tensor(x.reshape(len(x), -1), dtype=torch.float32) / 255.0

    return (f(d["train_x"][tr]), torch.tensor(d["train_y"][tr], dtype=torch.long),
            f(d["test_x"][te]), torch.tensor(d["test_y"][te], dtype=torch.long))


def test_error(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def train_epochs(models: dict, data, epochs: int, batch: int, seed: int, label: str,
                 before_epoch=None):
    """Train every (model, optimiser) of ``models`` side by side; curves and seconds.
    ``before_epoch(ep)``, if given, runs before epoch ``ep`` (0-based): a schedule's hook."""
    xtr, ytr, xte, yte = data
    curves = {k: [] for k in models}
    secs = {k: [] for k in models}
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        if before_epoch is not None:
            before_epoch(ep)
        perm = torch.randperm(len(xtr), generator=g)
        for k, (model, opt) in models.items():
            t0 = time.perf_counter()
            for i in range(0, len(xtr), batch):
                idx = perm[i: i + batch]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
                opt.step()
            secs[k].append(time.perf_counter() - t0)
            curves[k].append(test_error(model, xte, yte))
        line = " ".join(f"{k} {curves[k][-1]:.4f}" for k in models)
        print(f"[{label}] epoch {ep + 1}/{epochs}: test error {line} "
              f"({sum(s[-1] for s in secs.values()):.1f} s)", flush=True)
    return curves, secs


def _rpu(base: nn.Module, cfg):
    from cimflow.golden.rpu import AnalogSGD, convert_to_analog

    model = convert_to_analog(base, cfg)
    return model, AnalogSGD(model.parameters(), lr=LR)


def _fp(base: nn.Module):
    import copy

    model = copy.deepcopy(base)
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def _plot_curves(out: Path, name: str, curves: dict, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k, c in curves.items():
        ax.plot(range(1, len(c) + 1), [100 * e for e in c], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / name, dpi=120)
    plt.close(fig)


@experiment("rpu-mnist", "MLP 784-256-128-10 on MNIST: RPU pulsed training vs floating point")
def rpu_mnist(out: Path, quick: bool, seed: int, epochs: int | None = None) -> dict:
    from cimflow.golden.rpu import RPUConfig

    torch.set_num_threads(1)
    n_train, n_test, default = (6000, 2000, 2) if quick else (None, None, 30)
    epochs = epochs or default
    data = mnist_tensors(n_train, n_test, seed)
    base = mlp(seed)
    cfg = RPUConfig(seed=seed)
    models = {"fp": _fp(base), "rpu": _rpu(base, cfg)}
    curves, secs = train_epochs(models, data, epochs, 1, seed, "rpu-mnist")
    _plot_curves(out, "rpu_mnist.png", curves, "MNIST MLP, batch 1")
    n = len(data[0])
    return {"test_error": {k: c[-1] for k, c in curves.items()}, "epochs": epochs,
            "curves": curves, "train_samples": n, "test_samples": len(data[2]),
            "seconds_per_epoch": {k: float(np.mean(s)) for k, s in secs.items()},
            "seconds_per_60k_epoch": {k: float(np.mean(s)) * 60000 / n for k, s in secs.items()},
            "device": asdict(cfg.device), "bl": cfg.bl, "lr": LR, "quick": quick}


@experiment("rpu-sensitivity", "RPU test error versus BL, dw_min and up/down asymmetry")
def rpu_sensitivity(out: Path, quick: bool, seed: int, epochs: int | None = None) -> dict:
    from cimflow.golden.rpu import ConstantStepDevice, RPUConfig

    torch.set_num_threads(1)
    n_train, n_test, default = (1500, 1000, 1) if quick else (None, None, 10)
    epochs = epochs or default
    data = mnist_tensors(n_train, n_test, seed)
    base = mlp(seed)
    dev = ConstantStepDevice()
    scans = {"bl": [1, 2, 5, 10, 20], "dw_min": [0.0003, 0.001, 0.003, 0.01],
             "up_down": [0.0, 0.02, 0.05, 0.1]}
    res = {}
    for name, values in scans.items():
        res[name] = []
        for v in values:
            if name == "bl":
                cfg = RPUConfig(device=dev, bl=v, seed=seed)
            else:
                cfg = RPUConfig(device=replace(dev, **{name: v}), seed=seed)
            curves, _ = train_epochs({f"{name}={v}": _rpu(base, cfg)}, data, epochs, 1, seed,
                                     "rpu-sensitivity")
            res[name].append(next(iter(curves.values()))[-1])
    fp, _ = train_epochs({"fp": _fp(base)}, data, epochs, 1, seed, "rpu-sensitivity")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for ax, (name, values) in zip(axes, scans.items(), strict=True):
        ax.plot(values, [100 * e for e in res[name]], marker="o", label="RPU")
        ax.axhline(100 * fp["fp"][-1], color="k", ls="--", label="floating point")
        ax.set_xscale("log" if name != "up_down" else "linear")
        ax.set_xlabel(name)
        ax.set_ylabel("test error (%)")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "rpu_sensitivity.png", dpi=120)
    plt.close(fig)
    return {"scans": scans, "test_error": res, "fp_test_error": fp["fp"][-1], "epochs": epochs,
            "train_samples": len(data[0]), "quick": quick}


ASYM_DEVICE = dict(dw_min=0.005, dw_min_dtod=0.3, dw_min_std=0.3, up_down=0.0,
                   up_down_dtod=0.05, w_max=0.6, w_min=-0.6, w_max_dtod=0.3, w_min_dtod=0.3)
"""Soft bounds, 240 states, 5 % device-to-device up/down spread (symmetry points spread)."""


ASYM_MODELS = ("fp", "rpu-sgd", "tiki-taka", "shd")

ASYM_FAST_LR = 0.05
"""Learning rate of the A array's pulsed gradient update (Tiki-Taka and SHD)."""

ASYM_TRANSFER = dict(transfer_every=1, transfer_lr=0.05)
"""Transfer settings of Tiki-Taka and SHD (docs/rpu_training.md says how they were chosen)."""

ASYM_TRANSFER_DECAY = 2.0
"""tau (epochs) of the transfer-rate schedule lambda_e = lambda_0 / (1 + e / tau); 0 or None:
constant (Gokmen & Haensch's Tiki-Taka keeps its rates constant)."""


def transfer_rate(lr0: float, epoch: int, tau: float | None) -> float:
    """The transfer rate of 0-based ``epoch``: lambda_0 / (1 + epoch / tau), constant if tau
    is 0 or None. Harmonic (Robbins-Monro) decay, the SGD convention for a noisy gradient
    estimate: its sum diverges (C can still reach any weight), its sum of squares converges
    (the read noise written into C stays bounded and its late fluctuation shrinks). Only
    the write into C decays; A's rate stays, so A's signal keeps its size against the
    fixed read noise."""
    if tau is not None and tau < 0:
        raise ValueError(f"--transfer-decay must be >= 0 (0: constant), got {tau}")
    if not tau:
        return lr0
    return lr0 / (1.0 + epoch / tau)


def set_transfer_rate(model: nn.Module, lr: float) -> int:
    """Set the transfer rate of every Tiki-Taka/SHD tile of ``model``; how many were set."""
    from cimflow.golden.rpu.tile import TransferTile

    n = 0
    for p in model.parameters():
        tile = getattr(p, "_rpu_tile", None)
        if isinstance(tile, TransferTile):
            tile.tc = replace(tile.tc, transfer_lr=lr)
            n += 1
    return n


@experiment("asymmetric-training", "Soft-bounds devices: RPU-SGD vs Tiki-Taka vs SHD vs FP")
def asymmetric_training(out: Path, quick: bool, seed: int, epochs: int | None = None,
                        models: list[str] | None = None,
                        transfer_decay: float | None = ASYM_TRANSFER_DECAY) -> dict:
    """``models``: a subset of :data:`ASYM_MODELS` to train (default all); each model's curve
    does not depend on which others train beside it (own generators, same sample order).
    ``transfer_decay``: tau of :func:`transfer_rate`, applied to the Tiki-Taka and SHD
    transfers only (fp and RPU-SGD keep their constant rates)."""
    from cimflow.golden.rpu import AnalogSGD, RPUConfig, SoftBoundsDevice, convert_to_analog
    from cimflow.golden.rpu.tile import shd_transfer, tiki_taka_transfer

    models = list(models or ASYM_MODELS)
    unknown = [m for m in models if m not in ASYM_MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(ASYM_MODELS)}")
    torch.set_num_threads(1)
    n_train, n_test, default = (5000, 1000, 1) if quick else (None, None, 10)
    epochs = epochs or default
    data = mnist_tensors(n_train, n_test, seed)
    base = mlp(seed)
    dev = SoftBoundsDevice(**ASYM_DEVICE)
    tkw = ASYM_TRANSFER
    cfgs = {"rpu-sgd": RPUConfig(device=dev, seed=seed),
            "tiki-taka": RPUConfig(device=dev, seed=seed, transfer=tiki_taka_transfer(**tkw)),
            "shd": RPUConfig(device=dev, seed=seed, transfer=shd_transfer("shared_pair", **tkw))}

    def build(name):
        if name == "fp":
            return _fp(base)
        if name == "rpu-sgd":
            return _rpu(base, cfgs[name])
        model = convert_to_analog(base, cfgs[name])
        return model, AnalogSGD(model.parameters(), lr=ASYM_FAST_LR)

    transfer_rate(tkw["transfer_lr"], 0, transfer_decay)  # a bad tau fails before training
    trained = {k: build(k) for k in models}
    rates = [transfer_rate(tkw["transfer_lr"], e, transfer_decay) for e in range(epochs)]

    def schedule(ep):
        for k in ("tiki-taka", "shd"):
            if k in trained:
                set_transfer_rate(trained[k][0], rates[ep])

    curves, _ = train_epochs(trained, data, epochs, 1, seed, "asymmetric-training", schedule)
    _plot_curves(out, "asymmetric_training.png", curves, "soft-bounds devices, MNIST MLP")
    return {"test_error": {k: c[-1] for k, c in curves.items()}, "curves": curves,
            "epochs": epochs, "device": ASYM_DEVICE, "transfer": tkw,
            "transfer_decay": transfer_decay, "transfer_lr_per_epoch": rates, "lr": LR,
            "fast_lr": ASYM_FAST_LR, "train_samples": len(data[0]), "quick": quick}


def aihwkit_python() -> str | None:
    """The interpreter named by $AIHWKIT_PYTHON if it can import aihwkit, else None."""
    exe = os.environ.get("AIHWKIT_PYTHON")
    if not exe or not Path(exe).is_file():
        return None
    ok = subprocess.run([exe, "-c", "import aihwkit"], capture_output=True, timeout=120)
    return exe if ok.returncode == 0 else None


def run_probe(exe: str, mode: str, params: dict, timeout: float = 1800) -> dict:
    script = Path(__file__).resolve().with_name("aihwkit_rpu_probe.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([exe, str(script), mode, json.dumps(params)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        tail = r.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"aihwkit probe {mode} failed: {tail[0]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def crosscheck_params(**kw) -> dict:
    p = dict(dw_min=0.001, dw_min_dtod=0.0, dw_min_std=0.3, up_down=0.0, up_down_dtod=0.0,
             w_max=10.0, w_min=-10.0, w_max_dtod=0.0, w_min_dtod=0.0, bl=10, lr=LR)
    p.update(kw)
    return p


def compare_samples(a: np.ndarray, b: np.ndarray, alpha: float) -> dict:
    """Per-cell two-sample tests of (trials, cells) samples, Bonferroni over the cells.

    Welch z of the means; Brown-Forsythe (Levene about the median) for the variances, valid
    for the skewed, lumpy distribution of few coincidences where an F test is not; and the
    two-sample Kolmogorov-Smirnov test of the whole distribution (conservative for lumps).
    """
    from scipy import stats

    cells = a.shape[1]
    se = np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / len(a))
    z = np.where(se > 0, (a.mean(0) - b.mean(0)) / np.where(se > 0, se, 1), 0)
    lev = [stats.levene(a[:, c], b[:, c], center="median").pvalue if se[c] > 0 else 1.0
           for c in range(cells)]
    ks = [stats.ks_2samp(a[:, c], b[:, c], method="asymp").pvalue for c in range(cells)]
    level = alpha / cells
    return {"mean_z": z.tolist(), "var_pvalue": lev, "ks_pvalue": ks,
            "alpha_per_cell": level, "z_bound": float(stats.norm.isf(level / 2)),
            "agree": bool(np.abs(z).max() <= stats.norm.isf(level / 2) and min(lev) > level
                          and min(ks) > level)}


def our_moments(p: dict, trials: int, seed: int) -> dict:
    from cimflow.golden.rpu import BernoulliSource, ConstantStepDevice
    from cimflow.golden.rpu.update import pulsed_update

    keys = [k for k in ConstantStepDevice.__dataclass_fields__]
    dev = ConstantStepDevice(**{k: p[k] for k in keys})
    x, d = torch.tensor([p["x"]], dtype=torch.float64), torch.tensor([p["d"]], dtype=torch.float64)
    st = dev.sample((d.shape[1], x.shape[1]), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    w0 = torch.zeros(d.shape[1], x.shape[1], dtype=torch.float64)
    dws = torch.stack([pulsed_update(w0.clone(), st, x, d, p["lr"], bl=p["bl"], dw_min=p["dw_min"],
                                     source=BernoulliSource(), generator=g)
                       for _ in range(trials)])
    return {"mean": dws.mean(0).tolist(), "var": dws.var(0, unbiased=False).tolist(),
            "samples": dws.flatten(1).tolist()}


@experiment("aihwkit-crosscheck", "RPU update moments and one-epoch accuracy vs IBM aihwkit")
def aihwkit_crosscheck(out: Path, quick: bool, seed: int) -> dict:
    from cimflow.golden.rpu import ConstantStepDevice, IOParameters, RPUConfig

    torch.set_num_threads(1)
    exe = aihwkit_python()
    trials = 2000 if quick else 20000
    p = crosscheck_params(x=[0.9, 0.5, 0.2, -0.7], d=[0.8, -0.3, 0.05], trials=trials,
                          seed=seed)
    ours = our_moments(p, trials, seed)
    our_samples = np.array(ours.pop("samples"))
    x, d = np.array(p["x"]), np.array(p["d"])
    pij = np.clip(np.abs(np.outer(d, x)), 0, 1)  # C = 1
    dw, bl, s = p["dw_min"], p["bl"], p["dw_min_std"]
    closed = {"mean": (LR * np.outer(d, x)).tolist(),
              "var": (dw**2 * (bl * pij * (1 - pij) + s * s * bl * pij)).tolist()}
    result = {"params": p, "trials": trials, "ours": ours, "closed_form": closed,
              "quick": quick}
    n_train, n_test = (2000, 1000) if quick else (None, None)
    data = mnist_tensors(n_train, n_test, seed)
    io = IOParameters(inp_bits=7)  # aihwkit's default periphery (7-bit DAC)
    dev = ConstantStepDevice()
    cfg = RPUConfig(device=dev, forward=io, backward=io, seed=seed)
    curves, _ = train_epochs({"ours": _rpu(mlp(seed), cfg)}, data, 1, 1, seed,
                             "aihwkit-crosscheck")
    result["one_epoch_test_error"] = {"ours": curves["ours"][-1]}
    result["train_samples"] = len(data[0])
    if exe is None:
        print("[aihwkit-crosscheck] SKIPPED the aihwkit side: set AIHWKIT_PYTHON to an "
              "interpreter that can import aihwkit", flush=True)
        result["aihwkit"] = "skipped: AIHWKIT_PYTHON unset or cannot import aihwkit"
        return result
    theirs = run_probe(exe, "moments", p)
    result["aihwkit"] = theirs
    result.update(compare_samples(our_samples, np.array(theirs.pop("samples")), alpha=0.001))
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist.npz"
        np.savez(npz, train_x=data[0].numpy(), train_y=data[1].numpy(), test_x=data[2].numpy(),
                 test_y=data[3].numpy())
        tr = run_probe(exe, "train", dict(crosscheck_params(**asdict(dev)), data=str(npz),
                                          epochs=1, batch=1, seed=seed))
    result["one_epoch_test_error"]["aihwkit"] = tr["test_error"]
    print(f"[aihwkit-crosscheck] agree {result['agree']}: max |mean z| "
          f"{np.abs(result['mean_z']).max():.2f}, min variance p {min(result['var_pvalue']):.3g}, "
          f"min KS p {min(result['ks_pvalue']):.3g} (per-cell alpha "
          f"{result['alpha_per_cell']:.1e}), "
          f"one-epoch error ours {curves['ours'][-1]:.4f} aihwkit {tr['test_error']:.4f}",
          flush=True)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.3))
    for ax, key in zip(axes, ("mean", "var"), strict=True):
        c = np.array(closed[key]).ravel()
        ax.plot(c, np.array(ours[key]).ravel(), "o", label="cimflow")
        ax.plot(c, np.array(theirs[key]).ravel(), "x", label="aihwkit")
        ax.plot([c.min(), c.max()], [c.min(), c.max()], "k--", lw=0.8)
        ax.set_xlabel(f"closed form {key}")
        ax.set_ylabel(f"measured {key}")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "aihwkit_crosscheck.png", dpi=120)
    plt.close(fig)
    return result


