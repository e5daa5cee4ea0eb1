"""The MNIST models trained here, compiled and run on the golden chip: `mnist-on-chip`.

The MNIST MLP (784-256-128-10) and the 7-layer CNN of :mod:`cimflow.golden.nat.models` are
trained with golden/nat's noise-aware training (PACT 3-bit inputs, 10 % weight noise, Adam),
saved as TorchScript of plain modules (with their ``.quant.json``) and, for the compiler,
with their PACT clip levels as clamps (:func:`cimflow.golden.nat.chip_export`), compiled with
:func:`cimflow.mapping.compiler.compile_model` (the full NeuRRAM core, 48 cores, calibrated on
512 training images, as ``cimflow compile MODEL --calibrate X.npy``) and run on the golden
chip (:func:`cimflow.mapping.runtime.run_model`) ideal (``--ideal``: only the quantisation of
inputs, weights and outputs) and with its non-idealities (the default). Test accuracy on a
subset of the test set (2,000 images in the full run: the CNN's convolutions are thousands
of MVMs per image) against the torch model in float and with its own quantisation. The
inputs, labels and calibration batch are written next to the models as .npy files, so the
``cimflow compile`` / ``cimflow run`` commands of docs/compiler.md reproduce the chip rows.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cimflow.atomic import save_figure
from cimflow.golden.nat import NatConfig, calibrate, chip_export, noise_aware, plain
from cimflow.golden.nat.aware import set_noise
from cimflow.golden.nat.models import MODELS, n_params
from cimflow.golden.nat.train import accuracy, fit, to_tensors

from .registry import experiment
from .training import ACT_BITS, load_data, progress_log, pyplot, save_model, setup_run

__all__ = ["chip_accuracies", "mnist_on_chip"]


def chip_accuracies(model, path: Path, x_cal: np.ndarray, x: np.ndarray, y: np.ndarray, *,
                    seed: int = 0, batch: int = 500, log=lambda _: None) -> dict:
    """Compile the TorchScript file ``path`` (calibrated on ``x_cal``) and compare the golden
    chip, ideal and non-ideal, with the noise-aware torch ``model`` on (x, y)."""
    from cimflow.config import preset
    from cimflow.mapping.compiler import compile_model
    from cimflow.mapping.runtime import GoldenChip, run_model

    t0 = time.perf_counter()
    cm = compile_model(path, preset("full"), calibration=x_cal)
    out = {"compile_s": time.perf_counter() - t0, "matrices": len(cm.layers),
           "segments": len(cm.placement.segments), "cores": len(cm.targets),
           "cells": int(sum(cm.used_cells(c) for c in cm.targets))}
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    set_noise(model, nu_test=0.0)
    with torch.no_grad():
        float_pred = plain(model)(xt).argmax(1).numpy()
        quant_pred = model.eval()(xt).argmax(1).numpy()
    out["torch_float"] = float(np.mean(float_pred == y))
    out["torch_quantised"] = float(np.mean(quant_pred == y))
    out["torch_quantised_noise10"] = accuracy(set_noise(model, nu_test=0.1), xt, yt,
                                              repeats=3)[0]
    set_noise(model, nu_test=0.0)
    for label, ideal in (("chip_ideal", True), ("chip_nonideal", False)):
        t1 = time.perf_counter()
        chip = GoldenChip(cm, ideal=ideal, seed=seed)
        t2 = time.perf_counter()
        pred = np.concatenate([run_model(cm, x[i:i + batch], chip=chip).argmax(1)
                               for i in range(0, len(x), batch)])
        out[label] = float(np.mean(pred == y))
        out[f"{label}_agrees_quantised"] = float(np.mean(pred == quant_pred))
        out[f"{label}_program_s"], out[f"{label}_run_s"] = t2 - t1, time.perf_counter() - t2
        if not ideal:
            out["programming"] = chip.programming
        log(f"{label}: accuracy {100 * out[label]:.2f} % ({out[f'{label}_run_s']:.1f} s for "
            f"{len(x)} images)")
    out["drop_nonideal"] = out["chip_ideal"] - out["chip_nonideal"]
    return out


@experiment("mnist-on-chip", "the MNIST MLP and 7-layer CNN trained here, compiled and run on "
            "the golden chip, ideal and with non-idealities, against torch")
def mnist_on_chip(out: Path, quick: bool, seed: int) -> dict:
    setup_run(seed)
    log = progress_log("mnist-on-chip")
    t_start = time.perf_counter()
    n_train = 5000 if quick else 60000
    # test images on the chip: the CNN is about 1,450 MVMs per image (its convolutions), a
    # few images per second on the golden chip here, so it gets fewer than the MLP
    n_test = {"mlp": 200, "cnn7": 20} if quick else {"mlp": 2000, "cnn7": 300}
    epochs = 3
    tx, ty, vx, vy = load_data("mnist")
    x, y = to_tensors(tx[:n_train], ty[:n_train])
    xv, yv = to_tensors(vx[:max(n_test.values())], vy[:max(n_test.values())])
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    x_cal = x[:512].numpy()
    np.save(models / "mnist_cal_x.npy", x_cal)
    np.save(models / "mnist_test_x.npy", xv.numpy())  # the first n_test[arch] are used
    np.save(models / "mnist_test_y.npy", yv.numpy())
    cfg = NatConfig(nu=0.1, act_bits=ACT_BITS)
    res = {"quick": quick, "seed": seed, "train_samples": n_train, "test_samples": n_test,
           "epochs": epochs, "nat": {"nu": cfg.nu, "act_bits": ACT_BITS}, "runs": {}}
    for arch in ("mlp", "cnn7"):
        torch.manual_seed(seed)
        model = noise_aware(MODELS[arch](), cfg)
        calibrate(model, x[:512])

        def progress(ep, loss, secs, arch=arch):
            log(f"{arch} epoch {ep}/{epochs} loss {loss:.4f} ({secs:.1f} s)")

        fit(model, x, y, epochs=epochs, seed=seed, progress=progress)
        saved = save_model(model, models / f"mnist_{arch}.pt", x[:512])
        path = models / f"mnist_{arch}_chip.pt"  # with the PACT clip levels, for the compiler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(chip_export(model)), str(path))
        saved["chip"] = path.name
        k = n_test[arch]
        run = chip_accuracies(model, path, x_cal, xv[:k].numpy(), yv[:k].numpy(), seed=seed,
                              log=log)
        run.update(params=n_params(MODELS[arch]()), model=saved, test_samples=k)
        log(f"{arch}: torch {100 * run['torch_quantised']:.2f} %, ideal chip "
            f"{100 * run['chip_ideal']:.2f} %, chip {100 * run['chip_nonideal']:.2f} %")
        res["runs"][arch] = run
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    cols = ["torch_float", "torch_quantised", "chip_ideal", "chip_nonideal"]
    for k, arch in enumerate(res["runs"]):
        ax.bar(np.arange(len(cols)) + 0.4 * k, [100 * res["runs"][arch][c] for c in cols], 0.4,
               label=arch)
    ax.set_xticks(np.arange(len(cols)) + 0.2, ["torch float", "torch 3-bit", "ideal chip",
                                               "chip"])
    lo = min(100 * r[c] for r in res["runs"].values() for c in cols)
    ax.set(ylabel="test accuracy (%)", ylim=(max(0, lo - 5), 100),
           title=f"MNIST on the golden chip ({'quick' if quick else 'full'})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "mnist_on_chip.png", dpi=120)
    plt.close(fig)
    res["wall_s"] = time.perf_counter() - t_start
    return res
