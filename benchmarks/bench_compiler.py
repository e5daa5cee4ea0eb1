"""The model compiler and its golden runtime, side by side with aihwkit's converted model.

Figures (one process, one thread everywhere: OMP/MKL/OpenBLAS/numba pinned to 1):

* compile time of ResNet-20 (CIFAR-10 shapes, ``cimflow.mapping.zoo``): the compiler
  proper (graph -> matrices -> placement -> targets, calibration off) and the whole
  ``compile_model`` from a TorchScript file (torch's loader included); median of 3;
* inferences per second of ``cimflow run``'s golden chip (``run_model`` on a programmed
  ``GoldenChip``: programming excluded, as aihwkit's is) for an MNIST-shaped MLP
  (784 -> 128 -> 10) and ResNet-20, ideal and with non-idealities (REALISTIC), the latter
  also with the fused kernel's sequential noise sampler (the path before the aggregate one);
* the same two networks, same weights, same batch, converted by aihwkit's
  ``convert_to_analog`` with the default ``InferenceRPUConfig`` (its default inference noise:
  PCM-like programming and read noise, applied once with ``program_analog_weights``; the
  forward pass with its default output noise and quantisation), in the interpreter named
  by AIHWKIT_PYTHON (skipped with a message when unset), and plain torch.

    AIHWKIT_PYTHON=/path/to/aihwkit-venv/bin/python \\
        .venv/bin/python benchmarks/bench_compiler.py [--quick] [--out DIR]

The aihwkit side runs this file with ``--aihwkit-worker``: it loads mapping/zoo.py by path
(torch only) and the weights from an .npz, so it needs neither cimflow nor our torch.

Run it with OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) unset: a core type such as Haswell
forces OpenBLAS's AVX2 kernels, half the float32 product's speed on an AVX-512 CPU (the
golden chip's bit-plane products are a large part of its time); the output says so when
it is set.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ZOO = Path(__file__).resolve().parent.parent / "mapping" / "zoo.py"


def _zoo():
    spec = importlib.util.spec_from_file_location("cimflow_zoo", ZOO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def networks(quick: bool):
    """name -> (model, input batch); seeded, identical in both interpreters."""
    zoo = _zoo()
    rng = np.random.default_rng(0)
    n_mlp, n_res = (200, 1) if quick else (1000, 4)
    return {
        "mlp 784-128-10": (zoo.mlp((784, 128, 10)),
                           rng.uniform(0, 1, (n_mlp, 28, 28)).astype(np.float32)),
        "resnet-20": (zoo.resnet20(), rng.normal(0, 1, (n_res, 3, 32, 32)).astype(np.float32)),
    }


CPU_RATES: dict[str, float] = {}
"""Inferences per CPU second of each figure (process time, best call): on a shared machine
the wall-clock rate depends on the other processes' load, this much less (one thread)."""


def _rate(fn, n: int, seconds: float, key: str | None = None) -> float:
    """Inferences per second of ``fn()`` (one batch of n): best of repeated calls; the best
    per CPU second goes to CPU_RATES[key]."""
    fn()  # warm-up (numba, caches)
    times, cpu, t_end = [], [], time.perf_counter() + seconds
    while True:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if time.perf_counter() > t_end and len(times) >= 2:
            break
    if key is not None:
        CPU_RATES[key] = n / max(min(cpu), 1e-9)
    return n / min(times)


# ----------------------------------------------------------------------------- aihwkit side
def aihwkit_worker(weights: str, quick: bool, seconds: float) -> dict:
    import aihwkit
    import torch
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import InferenceRPUConfig

    torch.set_num_threads(1)
    data = np.load(weights)
    out = {"aihwkit": aihwkit.__version__, "torch": torch.__version__, "rates": {}}
    for name, (model, x) in networks(quick).items():
        state = {k.split("/", 1)[1]: torch.from_numpy(data[k]) for k in data.files
                 if k.startswith(name + "/")}
        model.load_state_dict(state)
        xt = torch.from_numpy(x)
        with torch.no_grad():
            out["rates"][f"{name}/torch"] = _rate(lambda m=model, xb=xt: m(xb), len(x), seconds,
                                                  f"{name}/torch")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analog = convert_to_analog(model, InferenceRPUConfig()).eval()
            if hasattr(analog, "program_analog_weights"):
                analog.program_analog_weights()
        with torch.no_grad():
            out["rates"][f"{name}/aihwkit"] = _rate(lambda m=analog, xb=xt: m(xb), len(x),
                                                    seconds, f"{name}/aihwkit")
    out["cpu_rates"] = CPU_RATES
    return out


def run_aihwkit(python: str, weights: Path, quick: bool, seconds: float) -> dict | None:
    cmd = [python, __file__, "--aihwkit-worker", str(weights), "--seconds", str(seconds)]
    if quick:
        cmd.append("--quick")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                           env={**os.environ})
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"aihwkit run failed: {e}", file=sys.stderr)
        return None
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"aihwkit run failed:\n{p.stderr[-2000:]}", file=sys.stderr)
    return None


# ----------------------------------------------------------------------------- ours
def compile_times(repeats: int = 3) -> dict:
    import torch

    from cimflow.config import preset
    from cimflow.mapping.compiler import compile_graph, compile_model
    from cimflow.mapping.frontend import read_graph

    model = _zoo().resnet20()
    cfg = preset("full")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "resnet20.ts"
        torch.jit.save(torch.jit.script(model), path)
        graph = read_graph(torch.jit.load(path))
        inner, whole = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            cm = compile_graph(graph, cfg)
            inner.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            compile_model(path, cfg)
            whole.append(time.perf_counter() - t0)
    return {"compile_graph_s": statistics.median(inner),
            "compile_model_s": statistics.median(whole),
            "matrices": len(cm.layers), "cores_used": len(cm.targets),
            "cells": sum(s.cells for s in cm.placement.segments)}


def golden_rates(quick: bool, seconds: float) -> tuple[dict, dict]:
    import torch

    from cimflow.config import preset
    from cimflow.golden import mvm_kernels
    from cimflow.mapping.compiler import compile_graph
    from cimflow.mapping.frontend import read_graph
    from cimflow.mapping.runtime import GoldenChip, run_model

    torch.set_num_threads(1)
    rates, weights = {}, {}
    for name, (model, x) in networks(quick).items():
        for k, v in model.state_dict().items():
            weights[f"{name}/{k}"] = v.numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = read_graph(torch.export.export(model, (torch.from_numpy(x[:1]),)))
        cm = compile_graph(g, preset("full"), calibration=x)
        for mode, ideal, aggregate in MODES:
            mvm_kernels.aggregate_noise = aggregate
            chip = GoldenChip(cm, ideal=ideal, seed=0)
            rates[f"{name}/{mode}"] = _rate(
                lambda c=cm, ch=chip, xb=x: run_model(c, xb, chip=ch), len(x), seconds,
                f"{name}/{mode}")
    mvm_kernels.aggregate_noise = True
    return rates, weights


MODES = (("golden ideal", True, True), ("golden REALISTIC", False, True),
         ("REALISTIC seq.", False, False))
"""(name, ideal, aggregate noise): "REALISTIC seq." is the fused kernel's sequential
reference sampler (a normal per bit plane, a uniform per comparison), the path before the
aggregate sampler (golden/fused_aggregate.py), measured in the same run."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batches, shorter windows")
    ap.add_argument("--seconds", type=float, default=None, help="timing window per figure")
    ap.add_argument("--out", type=Path, help="write results.json here")
    ap.add_argument("--aihwkit-worker", metavar="WEIGHTS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    if args.aihwkit_worker:
        print(json.dumps(aihwkit_worker(args.aihwkit_worker, args.quick, seconds)))
        return 0

    print("compiling ResNet-20 ...", file=sys.stderr, flush=True)
    comp = compile_times(1 if args.quick else 3)
    print("golden runtime ...", file=sys.stderr, flush=True)
    rates, weights = golden_rates(args.quick, seconds)
    ai = None
    python = os.environ.get("AIHWKIT_PYTHON")
    if not python:
        print("aihwkit: skipped (set AIHWKIT_PYTHON to an interpreter with aihwkit)")
    else:
        print("aihwkit ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "w.npz", **weights)
            ai = run_aihwkit(python, Path(tmp) / "w.npz", args.quick, seconds)
        if ai:
            rates.update(ai["rates"])
            CPU_RATES.update(ai.get("cpu_rates", {}))

    print(f"ResNet-20 compile: {comp['compile_graph_s']:.2f} s (compiler: graph -> placed "
          f"targets), {comp['compile_model_s']:.2f} s (compile_model from a TorchScript file); "
          f"{comp['matrices']} matrices on {comp['cores_used']} cores, {comp['cells']:,} cells")
    nets = networks(args.quick)
    print(f"{'network':16s} {'batch':>5s} {'backend':18s} {'inferences/s':>13s} "
          f"{'vs aihwkit':>10s} {'per CPU s':>12s} {'vs aihwkit':>10s}")
    for name, (_, x) in nets.items():
        base = rates.get(f"{name}/aihwkit")
        base_cpu = CPU_RATES.get(f"{name}/aihwkit")
        for mode in [m[0] for m in MODES] + ["aihwkit", "torch"]:
            r, c = rates.get(f"{name}/{mode}"), CPU_RATES.get(f"{name}/{mode}")
            if r is None:
                continue
            rel = f"{r / base:10.2f}" if base else f"{'-':>10s}"
            rel_c = f"{c / base_cpu:10.2f}" if base_cpu and c else f"{'-':>10s}"
            print(f"{name:16s} {len(x):5d} {mode:18s} {r:13.1f} {rel} {c or 0:12.1f} {rel_c}")
    load = os.getloadavg()
    print(f"load average (1, 5, 15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        print(f"note: OPENBLAS_CORETYPE={coretype} forces OpenBLAS's kernels for that core "
              f"(Haswell: half the float32 product speed on an AVX-512 CPU); unset it to "
              f"measure this machine")
    res = {"compile": comp, "inferences_per_s": rates, "inferences_per_cpu_s": CPU_RATES,
           "threads": 1, "aihwkit": ai and ai.get("aihwkit"), "quick": args.quick,
           "load_average": load, "openblas_coretype": coretype}
    print(json.dumps(res))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        from cimflow.atomic import write_atomic

        write_atomic(args.out / "results.json", json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
