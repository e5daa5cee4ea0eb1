"""Chip-in-the-loop progressive fine-tuning on the golden chip: `chip-in-the-loop`.

Wan et al. 2022 (Nature; Methods, chip-in-the-loop progressive fine-tuning):
program layer n into the chip, run the training set through the chip up to layer n, fine-tune
layers n+1..N in software on the measured outputs (learning rate 1/100 of the base one, the
same weight noise and activation quantisation as in training), then go on to layer n+1. No
test data is used for anything but the reported accuracies, and no layer is programmed twice.

The chip is the model compiler's: the current model is exported as a plain TorchScript file,
compiled (:func:`cimflow.mapping.compiler.compile_model`, calibrated on training inputs) and
programmed into a :class:`cimflow.mapping.runtime.GoldenChip` with all its non-idealities on
(write-verify from an earlier random state, relaxation, REALISTIC read noise, IR drop, ADC
offsets), as ``cimflow run`` does without ``--ideal``. Of each programmed image only layer
n's cores are used: layers 1..n-1 stay on the cores they were programmed into earlier.
Evaluating "up to layer n" runs the compiled layer graph (:class:`Interpreter`) and stops at
the input of analog layer n+1, so the digital operations in between (ReLU, pooling,
flatten) are the runtime's. The model must be an ``nn.Sequential`` whose NoiseAware layers
are its direct children (the MNIST models of :mod:`cimflow.golden.nat.models` are).

Results and their reading: docs/chip_training.md#chip-in-the-loop.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cimflow.atomic import save_figure
from cimflow.golden.nat import NatConfig, aware_layers, calibrate, chip_export, noise_aware
from cimflow.golden.nat.aware import NoiseAware, set_noise
from cimflow.golden.nat.models import MODELS
from cimflow.golden.nat.train import accuracy, fit, to_tensors

from .registry import experiment
from .training import ACT_BITS, load_data, progress_log, pyplot, setup_run

__all__ = ["BASE_LR", "FT_LR", "analog_children", "compile_torch", "ChipLoop",
           "progressive", "chip_in_the_loop"]

BASE_LR = 1e-3
"""Learning rate of the base training (Adam, as golden/nat's experiments)."""
FT_LR = BASE_LR / 100
"""Fine-tuning learning rate: 1/100 of the base (Wan et al. 2022, Methods)."""


def analog_children(model: nn.Module) -> list[int]:
    """Indices of the NoiseAware children of a Sequential, in order (its analog layers)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"chip-in-the-loop needs an nn.Sequential, got {type(model).__name__}")
    idx = [i for i, m in enumerate(model) if isinstance(m, NoiseAware)]
    if not idx or len(idx) != len(aware_layers(model)):
        raise ValueError("chip-in-the-loop needs every NoiseAware layer as a direct child of "
                         "the Sequential (wrap the model with noise_aware first)")
    return idx


def compile_torch(model: nn.Module, x_cal: np.ndarray, path: Path, config=None):
    """Export ``chip_export(model)`` (the plain model with its PACT clip levels as digital
    clamps) as TorchScript at ``path`` and compile it, calibrated on the training inputs
    ``x_cal`` (what ``cimflow compile MODEL --calibrate X.npy`` does)."""
    from cimflow.config import preset
    from cimflow.mapping.compiler import compile_model

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is what the compiler reads
        torch.jit.save(torch.jit.script(chip_export(model)), str(path))
    return compile_model(path, config or preset("full"), calibration=np.asarray(x_cal))


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, x: torch.Tensor) -> None:
        super().__init__("stop")
        self.x = x


def _prefix_interpreter(graph, matvec, stop: str | None):
    from cimflow.mapping.runtime import Interpreter

    class Prefix(Interpreter):
        """The compiled graph up to (not including) the analog node ``stop``."""

        def _analog(self, n, args):
            if n.name == stop:
                raise _Stop(args[0])
            return super()._analog(n, args)

    return Prefix(graph, matvec)


class ChipLoop:
    """The layers moved to the chip so far: matrix name -> the chip that holds it.

    ``measure(x, n)`` runs the batch ``x`` through analog layers 1..n on their chips and the
    digital operations of the compiled graph, and returns the input of layer n+1 (the
    model's output when n is the last layer)."""

    def __init__(self, graph, chips: dict | None = None) -> None:
        self.graph = graph
        self.names = [n.name for n in graph.analog]
        self.chips = dict(chips or {})

    def _matvec(self, name: str, x: np.ndarray) -> np.ndarray:
        if name not in self.chips:
            raise ValueError(f"layer {name!r} is not on the chip yet")
        return self.chips[name](name, x)

    @torch.no_grad()
    def measure(self, x, n: int, batch: int = 500) -> torch.Tensor:
        if not 1 <= n <= len(self.names):
            raise ValueError(f"n must be in 1..{len(self.names)}, got {n}")
        stop = self.names[n] if n < len(self.names) else None
        interp = _prefix_interpreter(self.graph, self._matvec, stop)
        xt = torch.as_tensor(np.asarray(x, np.float32))
        outs = []
        for i in range(0, len(xt), batch):
            try:
                y = interp.run(xt[i:i + batch])
            except _Stop as s:
                y = s.x
            outs.append(y.float())
        return torch.cat(outs)


def _tail(model: nn.Sequential, idx: list[int], n: int) -> nn.Sequential:
    """Layers n+1..N of ``model`` (sharing its modules), from analog layer n+1 on."""
    return model[idx[n]:] if n < len(idx) else nn.Sequential()


@torch.no_grad()
def _loss(model: nn.Module, h: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    tot = sum(float(F.cross_entropy(model(h[i:i + batch]), y[i:i + batch], reduction="sum"))
              for i in range(0, len(h), batch))
    return tot / len(h)


def progressive(model: nn.Sequential, x_train: torch.Tensor, y_train: torch.Tensor,
                x_test: torch.Tensor, y_test: torch.Tensor, *, epochs: int, workdir: Path,
                seed: int = 0, n_cal: int = 512, ideal: bool = False, config=None,
                log: Callable[[str], None] = lambda _: None) -> dict:
    """Progressive fine-tuning of the noise-aware ``model`` (trained, left unchanged).

    Per n = 1..N: the test accuracy with layers 1..n on the chip and the rest in software,
    *without* fine-tuning (all layers from the base model's image, programmed once) and
    *with* it (layer k from the image of the model as fine-tuned up to step k - 1; the same
    cores as without for layer 1), and the fine-tuning's training loss on the chip outputs
    before and after. Only ``x_train`` feeds the chip measurements, calibration and
    fine-tuning."""
    from cimflow.mapping.runtime import GoldenChip

    base = copy.deepcopy(model).eval()
    set_noise(base, nu_test=0.0)
    idx = analog_children(base)
    n_layers = len(idx)
    x_cal = x_train[:n_cal].cpu().numpy()
    t0 = time.perf_counter()
    cm0 = compile_torch(base, x_cal, workdir / "step1.pt", config)
    chip0 = GoldenChip(cm0, ideal=ideal, seed=seed)
    names = [n.name for n in cm0.graph.analog]
    log(f"compiled and programmed the base model ({len(names)} layers, "
        f"{time.perf_counter() - t0:.1f} s)")
    no_ft = ChipLoop(cm0.graph, {nm: chip0 for nm in names})
    tuned = copy.deepcopy(base)
    chips = {names[0]: chip0}
    res = {"software": accuracy(base, x_test, y_test)[0], "n_layers": n_layers,
           "layers": names, "ft_lr": FT_LR, "ft_epochs": epochs, "steps": []}
    for n in range(1, n_layers + 1):
        t1 = time.perf_counter()
        if n > 1:  # program layer n of the model as fine-tuned so far
            cm = compile_torch(tuned, x_cal, workdir / f"step{n}.pt", config)
            chips[names[n - 1]] = GoldenChip(cm, ideal=ideal, seed=seed + n)
        loop = ChipLoop(cm0.graph, chips)
        step = {"layer": n, "name": names[n - 1]}
        h_test = no_ft.measure(x_test, n)
        step["acc_no_ft"] = _acc(_tail(base, idx, n), h_test, y_test)
        if n < n_layers:
            h = loop.measure(x_train, n)
            tail = _tail(tuned, idx, n)
            step["train_loss_before"] = _loss(tail, h, y_train)

            def progress(ep, loss, secs, n=n):
                log(f"layer {n}/{n_layers} fine-tune epoch {ep}/{epochs} loss {loss:.4f} "
                    f"({secs:.1f} s)")

            fit(tail, h, y_train, epochs=epochs, lr=FT_LR, seed=seed + n, progress=progress)
            step["train_loss_after"] = _loss(tail, h, y_train)
        # layer 1 sits on the same cores with and without: the same measurement serves both
        h_ft = h_test if n == 1 else loop.measure(x_test, n)
        step["acc_ft"] = _acc(_tail(tuned, idx, n), h_ft, y_test)
        step["seconds"] = time.perf_counter() - t1
        log(f"layer {n}/{n_layers} on chip: accuracy {100 * step['acc_no_ft']:.2f} % without, "
            f"{100 * step['acc_ft']:.2f} % with fine-tuning (software "
            f"{100 * res['software']:.2f} %; {step['seconds']:.1f} s)")
        res["steps"].append(step)
    last = res["steps"][-1]
    res["gain"] = last["acc_ft"] - last["acc_no_ft"]
    res["programming"] = chip0.programming
    return res


@torch.no_grad()
def _acc(tail: nn.Module, h: torch.Tensor, y: torch.Tensor) -> float:
    tail.eval()
    return float((tail(h).argmax(1) == y).float().mean())


@experiment("chip-in-the-loop", "progressive fine-tuning with layers moved one by one onto the "
            "golden chip, accuracy with and without it (NeuRRAM Methods; MNIST MLP)")
def chip_in_the_loop(out: Path, quick: bool, seed: int) -> dict:
    setup_run(seed)
    device = "cpu"  # the golden chip's runtime takes CPU tensors
    log = progress_log("chip-in-the-loop")
    t_start = time.perf_counter()
    # the base model trains on n_train images; the first n_chip of them go through the chip
    # once per layer for fine-tuning (20k keep the full run near 10 minutes of CPU here: the
    # golden chip runs every MVM bit-serially)
    n_train, n_chip, n_test = (5000, 2000, 400) if quick else (60000, 20000, 2000)
    epochs, ft_epochs = (5, 3) if quick else (5, 10)
    tx, ty, vx, vy = load_data("mnist")
    x, y = to_tensors(tx[:n_train], ty[:n_train], device)
    xv, yv = to_tensors(vx[:n_test], vy[:n_test], device)
    cfg = NatConfig(nu=0.1, act_bits=ACT_BITS)
    torch.manual_seed(seed)
    model = noise_aware(MODELS["mlp"](), cfg)
    calibrate(model, x[:512])

    def progress(ep, loss, secs):
        log(f"base model epoch {ep}/{epochs} loss {loss:.4f} ({secs:.1f} s)")

    fit(model, x, y, epochs=epochs, lr=BASE_LR, seed=seed, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        res = progressive(model, x[:n_chip], y[:n_chip], xv, yv, epochs=ft_epochs,
                          workdir=Path(tmp), seed=seed, log=log)
    res.update(quick=quick, seed=seed, model="mlp", nat={"nu": cfg.nu, "act_bits": ACT_BITS},
               base_lr=BASE_LR, base_epochs=epochs, train_samples=n_train,
               chip_train_samples=n_chip, test_samples=n_test)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ns = [s["layer"] for s in res["steps"]]
    ax.axhline(100 * res["software"], color="grey", ls="--", label="software (no noise)")
    ax.plot(ns, [100 * s["acc_no_ft"] for s in res["steps"]], "o-", label="chip, no fine-tuning")
    ax.plot(ns, [100 * s["acc_ft"] for s in res["steps"]], "s-",
            label="chip, progressive fine-tuning")
    ax.set(xlabel="layers 1..n on the golden chip", ylabel="test accuracy (%)", xticks=ns,
           title=f"MNIST MLP, chip-in-the-loop ({'quick' if quick else 'full'})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "chip_in_the_loop.png", dpi=120)
    plt.close(fig)
    res["wall_s"] = time.perf_counter() - t_start
    return res
