"""MVMs per second of IBM aihwkit's AnalogLinear(256, 256) inference tile, for comparison.

aihwkit is never a cimflow dependency: it is built in its own virtual environment (see
docs/write_verify.md), so this file runs standalone under that interpreter:

    "$AIHWKIT_PYTHON" benchmarks/bench_aihwkit.py [--seconds S]

and prints one JSON line with MVM/s at batch 1 and 1024, analog noise on and off. The
project's benchmark (bench_golden_mvm.py) gets the same figures through
``bench_aihwkit_subprocess()``, which runs this script with the interpreter named by the
environment variable AIHWKIT_PYTHON (the only way it is found: no path is assumed), and
returns None when the variable is unset. ``bench_aihwkit()`` returns None when aihwkit cannot be
imported in the current interpreter.

"Noise on" is aihwkit's default InferenceRPUConfig forward pass (input/output quantization,
output noise, bounds) with the ReRamWan2022 programming-noise model applied once before
timing; "noise off" makes the forward pass perfect. One thread (OMP_NUM_THREADS=1), eval
mode, no autograd, so the figure is the tile's own cost per MVM.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch/aihwkit load their runtimes

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

__all__ = ["bench_aihwkit", "bench_all", "aihwkit_python", "bench_aihwkit_subprocess"]

BATCHES = (1, 64, 1024)


def _make_layer(noise: bool):
    import torch
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig

    cfg = InferenceRPUConfig()
    if noise:
        try:
            from aihwkit.inference import ReRamWan2022NoiseModel

            cfg.noise_model = ReRamWan2022NoiseModel()
        except ImportError:  # older aihwkit: keep the default (PCM) noise model
            pass
    else:
        cfg.forward.is_perfect = True
    torch.manual_seed(0)
    layer = AnalogLinear(256, 256, bias=False, rpu_config=cfg)
    layer.eval()
    if noise:
        layer.drift_analog_weights(1.0)  # programming noise + relaxation at t = 1 s
    return layer


def bench_aihwkit(batch: int, noise: bool, seconds: float = 1.0) -> float | None:
    """MVMs per second of AnalogLinear(256, 256).forward at ``batch``; None without aihwkit."""
    try:
        import torch

        layer = _make_layer(noise)
    except ImportError:
        return None
    torch.set_num_threads(1)
    x = torch.randn(batch, 256)
    with torch.no_grad():
        for _ in range(3):
            layer(x)
        calls, t0 = 0, time.perf_counter()
        while True:
            layer(x)
            calls += 1
            dt = time.perf_counter() - t0
            if dt >= seconds and calls >= 3:
                break
    return calls * batch / dt


def bench_all(seconds: float = 1.0) -> dict | None:
    """All figures as a dict (``mvm_per_s`` keyed 'batch<B>_noise_<on|off>'); None without
    aihwkit."""
    try:
        import aihwkit
        import torch
    except ImportError:
        return None
    figs = {f"batch{b}_noise_{'on' if n else 'off'}": bench_aihwkit(b, n, seconds)
            for b in BATCHES for n in (False, True)}
    return {"aihwkit": aihwkit.__version__, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "layer": "AnalogLinear(256, 256) eval",
            "mvm_per_s": figs}


def aihwkit_python() -> str | None:
    """The interpreter that has aihwkit: $AIHWKIT_PYTHON, or None when it is unset."""
    return os.environ.get("AIHWKIT_PYTHON") or None


def bench_aihwkit_subprocess(seconds: float = 1.0, python: str | None = None,
                             timeout: float = 300.0) -> dict | None:
    """Run this script under the aihwkit interpreter; its figures, or None if unavailable."""
    python = python or aihwkit_python()
    if python is None:
        return None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([python, __file__, "--seconds", str(seconds)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            res = json.loads(line)
            return res if res.get("mvm_per_s") else None
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="timing window per figure")
    args = ap.parse_args(argv)
    res = bench_all(args.seconds)
    print(json.dumps(res if res is not None else {"aihwkit": None, "mvm_per_s": None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
