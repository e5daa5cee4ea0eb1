"""MVMs per second of the golden NeuRRAM core against a plain torch.nn.Linear(256, 256).

One full 256 x 256 core holds a 128 x 256 weight matrix (differential row pairs). Rows:
algorithmic level at batch 1 and 1024 with non-idealities off and on (``REALISTIC``), the
cycle level, and the torch baseline at the same batch sizes; the ratio column is
baseline MVM/s divided by the row's MVM/s (how many times slower than torch).

torch runs on one thread (multi-threaded batch-1 Linear collapses on a loaded 2-core
machine); run with ``OPENBLAS_NUM_THREADS=1`` to pin NumPy's BLAS too, so the ratios
compare like with like:
``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_golden_mvm.py [--quick]``.
More simulators plug in
through :data:`OPTIONAL_BENCHES`: functions returning rows, or None when their package is
absent (e.g. a ``bench_aihwkit()``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cimflow.config import PRESETS
from cimflow.golden.array import Crossbar
from cimflow.golden.cycle import CycleCore
from cimflow.golden.mvm import MvmSettings, mvm
from cimflow.golden.nonideal import REALISTIC

Row = tuple[str, int, float]
"""(name, batch, MVMs per second)."""

def bench_aihwkit_rows(min_time: float) -> list[Row] | None:
    """IBM aihwkit AnalogLinear(256, 256), run in its own venv (benchmarks/bench_aihwkit.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_aihwkit import bench_aihwkit_subprocess

    res = bench_aihwkit_subprocess(seconds=max(min_time, 0.5))
    if res is None:
        print("(aihwkit not available: set AIHWKIT_PYTHON to compare; skipped)")
        return None
    return [(f"aihwkit {res['aihwkit']} AnalogLinear, noise {n}", b,
             res["mvm_per_s"][f"batch{b}_noise_{n}"]) for b in (1, 1024) for n in ("off", "on")]


OPTIONAL_BENCHES: list[Callable[[float], list[Row] | None]] = [bench_aihwkit_rows]
"""Extra benchmarks ``fn(min_time) -> rows | None`` (None: dependency not installed)."""

SETTINGS = MvmSettings(in_bits=4, out_bits=8, v_decr=0.3)


def _rate(fn: Callable[[], object], per_call: int, min_time: float) -> float:
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return n * per_call / dt


def _core(seed: int = 0):
    rng = np.random.default_rng(seed)
    cfg = PRESETS["full"]
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((cfg.rows // 2, cfg.cols)))
    return xb, rng


def bench_algorithmic(min_time: float) -> list[Row]:
    """The ideal core, and the core with ``REALISTIC`` non-idealities: its static effects
    (relaxed conductances, per-neuron ADC offsets) are drawn once before timing, as a chip
    has them and as aihwkit applies its programming noise once; the dynamic ones (read
    noise per sample, IR drop, comparator noise per comparison, integrator swing) per MVM."""
    xb, rng = _core()
    noisy_xb, _ = _core()
    noisy_xb.set_conductances(REALISTIC.perturb(noisy_xb.target, rng))
    offsets = REALISTIC.offsets(noisy_xb.config.rows, SETTINGS.v_read, rng)
    rows = []
    for batch in (1, 1024):
        x = rng.integers(-7, 8, (batch, xb.config.rows // 2))
        rows.append(("golden algorithmic, ideal", batch,
                     _rate(lambda x=x: mvm(xb, x, SETTINGS), batch, min_time)))
        r = np.random.default_rng(1)
        rows.append(("golden algorithmic, REALISTIC noise", batch,
                     _rate(lambda x=x: mvm(noisy_xb, x, SETTINGS, REALISTIC, r, offsets=offsets),
                           batch, min_time)))
    return rows


def bench_cycle(min_time: float) -> list[Row]:
    xb, rng = _core()
    x = rng.integers(-7, 8, (4, xb.config.rows // 2))
    core = CycleCore(xb)
    return [("golden cycle level", 1, _rate(lambda: core.run(x, SETTINGS), 4, min_time))]


def bench_torch(min_time: float) -> list[Row]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 256)
    rows = []
    with torch.no_grad():
        for batch in (1, 1024):
            x = torch.randn(batch, 256)
            rows.append(("torch.nn.Linear(256, 256)", batch,
                         _rate(lambda x=x: lin(x), batch, min_time)))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.2 s per measurement")
    args = ap.parse_args(argv)
    min_time = 0.2 if args.quick else 1.0
    torch.set_num_threads(1)
    base = {b: r for _, b, r in bench_torch(min_time)}
    rows = bench_algorithmic(min_time) + bench_cycle(min_time)
    for fn in OPTIONAL_BENCHES:
        extra = fn(min_time)
        if extra is not None:
            rows += extra
    rows += [("torch.nn.Linear(256, 256)", b, r) for b, r in base.items()]
    print(f"{'benchmark':40s} {'batch':>6s} {'MVM/s':>14s} {'torch/this':>11s}")
    for name, batch, rate in rows:
        ref = base.get(batch, base[1])
        print(f"{name:40s} {batch:6d} {rate:14.1f} {ref / rate:11.1f}")
    print(f"(torch threads: {torch.get_num_threads()}; one MVM = 128 x 256 weights, "
          f"{SETTINGS.in_bits}-bit in, {SETTINGS.out_bits}-bit out)")
    return rows


if __name__ == "__main__":
    main()
