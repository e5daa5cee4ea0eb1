"""MVMs per second of the golden NeuRRAM core, side by side with IBM aihwkit and torch.

One full 256 x 256 core holds a 128 x 256 weight matrix (differential row pairs); one MVM
is 4-bit in, 8-bit out. Rows, at batch 1 and 1024:

* golden algorithmic level, noise off (ideal: exact integer charge and codes);
* golden, noise on with aihwkit's kind of effects: per-sample read noise, relaxed
  conductances and ADC offsets (the static two drawn once before timing, as a chip has
  them and as aihwkit applies its programming noise once);
* golden, noise on with ``REALISTIC``: the above plus IR drop, a fresh logistic comparator
  noise on every ADC comparison and the integrator swing;
* the golden cycle level (batch of 4 vectors, one at a time);
* aihwkit 1.2.0 ``AnalogLinear(256, 256)`` noise off / on, run in its own venv
  (bench_aihwkit.py; skipped when absent);
* ``torch.nn.Linear(256, 256)``, the named baseline.

Columns: MVM/s (median of 5 timing windows), torch/this (how many times slower than
torch), this/aihwkit (how many times faster than aihwkit at the same batch with noise
matched off/on; > 1 meets the goal). Everything runs on one thread; pin NumPy's BLAS too:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_golden_mvm.py [--quick] [--out DIR]

``--out DIR`` writes DIR/results.json and DIR/bench_golden_mvm.png (bar chart).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cimflow.atomic import write_atomic
from cimflow.config import PRESETS
from cimflow.golden.array import Crossbar
from cimflow.golden.cycle import CycleCore
from cimflow.golden.mvm import MvmSettings, mvm
from cimflow.golden.nonideal import REALISTIC

SETTINGS = MvmSettings(in_bits=4, out_bits=8, v_decr=0.3)
AIHWKIT_LIKE = replace(REALISTIC, ir_drop_ohm=0.0, cmp_noise_v=0.0, integrator_swing_v=None)
"""Read noise per sample, relaxation and ADC offsets: the kinds of effect aihwkit's default
inference tile models (output noise, programming noise), nothing it does not."""


@dataclass(frozen=True)
class Row:
    name: str
    batch: int
    mvm_per_s: float
    noise: str | None = None
    """'off' / 'on' for rows compared with aihwkit, None for the others."""


def _rate(fn: Callable[[], object], per_call: int, window: float, repeats: int = 5) -> float:
    """MVMs per second: the median over ``repeats`` windows of at least ``window`` s."""
    fn()  # warm up (caches, page faults of the first call)
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= window:
                break
        rates.append(n * per_call / dt)
    return statistics.median(rates)


def _core(seed: int = 0):
    rng = np.random.default_rng(seed)
    cfg = PRESETS["full"]
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((cfg.rows // 2, cfg.cols)))
    return xb, rng


def bench_algorithmic(window: float) -> list[Row]:
    xb, rng = _core()
    noisy_xb, _ = _core()
    noisy_xb.set_conductances(REALISTIC.perturb(noisy_xb.target, rng))
    offsets = REALISTIC.offsets(noisy_xb.config.rows, SETTINGS.v_read, rng)
    rows = []
    for batch in (1, 1024):
        x = rng.integers(-7, 8, (batch, xb.config.rows // 2))
        rows.append(Row("golden, noise off (ideal)", batch,
                        _rate(lambda x=x: mvm(xb, x, SETTINGS), batch, window), "off"))
        for label, ni in (("read noise + relaxation + offsets", AIHWKIT_LIKE),
                          ("REALISTIC (all effects)", REALISTIC)):
            noise_rng = np.random.default_rng(1)

            def fn(x=x, ni=ni, r=noise_rng):
                return mvm(noisy_xb, x, SETTINGS, ni, r, offsets=offsets)

            rows.append(Row(f"golden, noise on: {label}", batch, _rate(fn, batch, window),
                            "on"))
    return rows


def bench_cycle(window: float) -> list[Row]:
    xb, rng = _core()
    x = rng.integers(-7, 8, (4, xb.config.rows // 2))
    core = CycleCore(xb)
    return [Row("golden cycle level", 1, _rate(lambda: core.run(x, SETTINGS), 4, window))]


def bench_torch(window: float) -> list[Row]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 256)
    rows = []
    with torch.no_grad():
        for batch in (1, 1024):
            x = torch.randn(batch, 256)
            rows.append(Row("torch.nn.Linear(256, 256)", batch,
                            _rate(lambda x=x: lin(x), batch, window)))
    return rows


def bench_aihwkit_rows(window: float) -> list[Row] | None:
    """IBM aihwkit AnalogLinear(256, 256), run in its own venv (benchmarks/bench_aihwkit.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_aihwkit import bench_aihwkit_subprocess

    res = bench_aihwkit_subprocess(seconds=max(5 * window, 0.5))
    if res is None:
        print("(aihwkit not available: set AIHWKIT_PYTHON to compare; skipped)")
        return None
    return [Row(f"aihwkit {res['aihwkit']} AnalogLinear, noise {n}", b,
                res["mvm_per_s"][f"batch{b}_noise_{n}"], n)
            for b in (1, 1024) for n in ("off", "on")]


OPTIONAL_BENCHES: list[Callable[[float], list[Row] | None]] = [bench_aihwkit_rows]
"""Extra benchmarks ``fn(window) -> rows | None`` (None: dependency not installed)."""


def _ratios(rows: list[Row]) -> list[tuple[Row, float, float | None]]:
    """(row, torch/this, this/aihwkit or None)."""
    torch_rate = {r.batch: r.mvm_per_s for r in rows if r.name.startswith("torch")}
    aihw = {(r.batch, r.noise): r.mvm_per_s for r in rows if r.name.startswith("aihwkit")}
    out = []
    for r in rows:
        vs_aihw = None
        if r.noise and not r.name.startswith("aihwkit") and (r.batch, r.noise) in aihw:
            vs_aihw = r.mvm_per_s / aihw[r.batch, r.noise]
        out.append((r, torch_rate.get(r.batch, torch_rate[1]) / r.mvm_per_s, vs_aihw))
    return out


def _plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.name for r in rows))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    for i, batch in enumerate((1, 1024)):
        rate = {r.name: r.mvm_per_s for r in rows if r.batch == batch}
        ys = np.arange(len(names)) + (i - 0.5) * 0.38
        ax.barh(ys, [rate.get(n, 0.0) for n in names], height=0.38, label=f"batch {batch}")
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MVM/s (one 256 x 256 core, one thread; log scale)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.04 s timing windows")
    ap.add_argument("--out", type=Path, help="write results.json and a PNG bar chart here")
    args = ap.parse_args(argv)
    window = 0.04 if args.quick else 0.3
    torch.set_num_threads(1)
    base = bench_torch(window)
    rows = bench_algorithmic(window) + bench_cycle(window)
    for fn in OPTIONAL_BENCHES:
        rows += fn(window) or []
    rows += base
    table = _ratios(rows)
    print(f"{'benchmark':52s} {'batch':>5s} {'MVM/s':>12s} {'torch/this':>10s} "
          f"{'this/aihwkit':>12s}")
    for r, slow, vs in table:
        vs_s = f"{vs:12.2f}" if vs is not None else f"{'':12s}"
        print(f"{r.name:52s} {r.batch:5d} {r.mvm_per_s:12.1f} {slow:10.1f} {vs_s}")
    print(f"(one thread; one MVM = 128 x 256 weights, {SETTINGS.in_bits}-bit in, "
          f"{SETTINGS.out_bits}-bit out; median of 5 windows of {window} s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        data = [{"name": r.name, "batch": r.batch, "mvm_per_s": r.mvm_per_s,
                 "noise": r.noise, "torch_over_this": slow, "this_over_aihwkit": vs}
                for r, slow, vs in table]
        write_atomic(args.out / "results.json", json.dumps({"rows": data}, indent=1))
        _plot(rows, args.out / "bench_golden_mvm.png")
        print(f"wrote {args.out / 'results.json'} and {args.out / 'bench_golden_mvm.png'}")
    return rows


if __name__ == "__main__":
    main()
