"""MVMs per second of the golden NeuRRAM core, side by side with IBM aihwkit and torch.

One full 256 x 256 core holds a 128 x 256 weight matrix (differential row pairs); one MVM
is 4-bit in, 8-bit out. Rows, at batch 1, 64 and 1024:

* golden algorithmic level, noise off (ideal: exact integer charge and codes);
* golden, noise on with aihwkit's kind of effects: per-sample read noise, relaxed
  conductances and ADC offsets (the static two drawn once before timing, as a chip has
  them and as aihwkit applies its programming noise once);
* golden, noise on with ``REALISTIC``: the above plus IR drop, a fresh logistic comparator
  noise on every ADC comparison and the integrator swing;
* golden, ``--cores`` cores (default 48, a compiled model's segments) in one ``mvm_cores``
  call, noise off and REALISTIC (MVM/s counts every core's MVMs);
* the golden cycle level (batch of 4 vectors, one at a time);
* aihwkit 1.2.0 ``AnalogLinear(256, 256)`` noise off / on, run in the interpreter named by
  the environment variable AIHWKIT_PYTHON (bench_aihwkit.py; skipped when unset);
* ``torch.nn.Linear(256, 256)``, the named baseline and the ceiling.

``--device cuda`` adds the golden and torch rows on that device (tensors and a torch
Generator there); the CPU rows are rerun in the same run. Columns: MVM/s (median of 5
timing windows), torch/this (how many times slower than torch on the same device),
this/aihwkit (how many times faster than aihwkit at the same batch with noise matched
off/on; > 1 meets the goal). Everything on the CPU runs on one thread; pin NumPy's BLAS too:

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
from cimflow.golden.mvm import MvmSettings, mvm, mvm_cores
from cimflow.golden.nonideal import REALISTIC

SETTINGS = MvmSettings(in_bits=4, out_bits=8, v_decr=0.3)
AIHWKIT_LIKE = replace(REALISTIC, ir_drop_ohm=0.0, cmp_noise_v=0.0, integrator_swing_v=None)
"""Read noise per sample, relaxation and ADC offsets: the kinds of effect aihwkit's default
inference tile models (output noise, programming noise), nothing it does not."""


BATCHES = (1, 64, 1024)


@dataclass(frozen=True)
class Row:
    name: str
    batch: int
    mvm_per_s: float
    noise: str | None = None
    """'off' / 'on' for rows compared with aihwkit, None for the others."""
    device: str = "cpu"


def _rate(fn: Callable[[], object], per_call: int, window: float, repeats: int = 5) -> float:
    """MVMs per second: the median over ``repeats`` windows of at least ``window`` s."""
    fn()  # warm up (caches, page faults of the first call, kernel compilation)
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


def _synced(fn, device: str):
    if device == "cpu":
        return fn
    return lambda: (fn(), torch.cuda.synchronize())


def _core(seed: int = 0):
    rng = np.random.default_rng(seed)
    cfg = PRESETS["full"]
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((cfg.rows // 2, cfg.cols)))
    return xb, rng


def _gen(device: str, seed: int):
    """The noise source: a NumPy Generator on the CPU, a torch Generator on a GPU."""
    if device == "cpu":
        return np.random.default_rng(seed)
    return torch.Generator(device).manual_seed(seed)


def _inputs(rng, shape, device: str):
    x = rng.integers(-7, 8, shape)
    return x if device == "cpu" else torch.from_numpy(x).to(device)


def bench_algorithmic(window: float, device: str = "cpu") -> list[Row]:
    xb, rng = _core()
    noisy_xb, _ = _core()
    noisy_xb.set_conductances(REALISTIC.perturb(noisy_xb.target, rng))
    offsets = REALISTIC.offsets(noisy_xb.config.rows, SETTINGS.v_read, rng)
    rows = []
    for batch in BATCHES:
        x = _inputs(rng, (batch, xb.config.rows // 2), device)
        fn = _synced(lambda x=x: mvm(xb, x, SETTINGS), device)
        rows.append(Row("golden, noise off (ideal)", batch, _rate(fn, batch, window), "off",
                        device))
        for label, ni in (("read noise + relaxation + offsets", AIHWKIT_LIKE),
                          ("REALISTIC (all effects)", REALISTIC)):
            noise_rng = _gen(device, 1)

            def fn(x=x, ni=ni, r=noise_rng):
                return mvm(noisy_xb, x, SETTINGS, ni, r, offsets=offsets)

            rows.append(Row(f"golden, noise on: {label}", batch,
                            _rate(_synced(fn, device), batch, window), "on", device))
    return rows


def bench_cores(window: float, cores: int, device: str = "cpu") -> list[Row]:
    """``cores`` differently programmed cores in one mvm_cores call per batch."""
    xbs, noisy, offs = [], [], []
    for i in range(cores):
        xb, rng = _core(100 + i)
        xbs.append(xb)
        nx, _ = _core(100 + i)
        nx.set_conductances(REALISTIC.perturb(nx.target, rng))
        noisy.append(nx)
        offs.append(REALISTIC.offsets(nx.config.rows, SETTINGS.v_read, rng))
    offs = np.stack(offs)
    rng = np.random.default_rng(7)
    rows = []
    for batch in BATCHES:
        x = _inputs(rng, (cores, batch, xbs[0].config.rows // 2), device)
        fn = _synced(lambda x=x: mvm_cores(xbs, x, SETTINGS), device)
        rows.append(Row(f"golden, {cores} cores in one call, noise off", batch,
                        _rate(fn, cores * batch, window), None, device))
        r = _gen(device, 2)

        def fn(x=x, r=r):
            return mvm_cores(noisy, x, SETTINGS, REALISTIC, r, offsets=offs)

        rows.append(Row(f"golden, {cores} cores in one call, REALISTIC", batch,
                        _rate(_synced(fn, device), cores * batch, window), None, device))
    return rows


def bench_cycle(window: float) -> list[Row]:
    xb, rng = _core()
    x = rng.integers(-7, 8, (4, xb.config.rows // 2))
    core = CycleCore(xb)
    return [Row("golden cycle level", 1, _rate(lambda: core.run(x, SETTINGS), 4, window))]


def bench_torch(window: float, device: str = "cpu") -> list[Row]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 256).to(device)
    rows = []
    with torch.no_grad():
        for batch in BATCHES:
            x = torch.randn(batch, 256, device=device)
            fn = _synced(lambda x=x: lin(x), device)
            rows.append(Row("torch.nn.Linear(256, 256)", batch, _rate(fn, batch, window),
                            None, device))
    return rows


def bench_aihwkit_rows(window: float) -> list[Row] | None:
    """IBM aihwkit AnalogLinear(256, 256), run in its own venv (benchmarks/bench_aihwkit.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_aihwkit import bench_aihwkit_subprocess

    res = bench_aihwkit_subprocess(seconds=max(5 * window, 0.5))
    if res is None:
        print("(aihwkit not available: set AIHWKIT_PYTHON to compare; skipped)")
        return None
    figs = res["mvm_per_s"]
    return [Row(f"aihwkit {res['aihwkit']} AnalogLinear, noise {n}", b,
                figs[f"batch{b}_noise_{n}"], n)
            for b in BATCHES for n in ("off", "on") if figs.get(f"batch{b}_noise_{n}")]


OPTIONAL_BENCHES: list[Callable[[float], list[Row] | None]] = [bench_aihwkit_rows]
"""Extra benchmarks ``fn(window) -> rows | None`` (None: dependency not installed)."""


def _ratios(rows: list[Row]) -> list[tuple[Row, float, float | None]]:
    """(row, torch/this on the row's device, this/aihwkit or None)."""
    torch_rate = {(r.batch, r.device): r.mvm_per_s for r in rows if r.name.startswith("torch")}
    aihw = {(r.batch, r.noise): r.mvm_per_s for r in rows if r.name.startswith("aihwkit")}
    out = []
    for r in rows:
        vs_aihw = None
        if r.noise and not r.name.startswith("aihwkit") and (r.batch, r.noise) in aihw:
            vs_aihw = r.mvm_per_s / aihw[r.batch, r.noise]
        base = torch_rate.get((r.batch, r.device), torch_rate.get((1, r.device)))
        out.append((r, base / r.mvm_per_s if base else float("nan"), vs_aihw))
    return out


def _plot(rows: list[Row], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("(matplotlib is not installed: no PNG)")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(_label(r) for r in rows))
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(names) + 1.5))
    h = 0.8 / len(BATCHES)
    for i, batch in enumerate(BATCHES):
        rate = {_label(r): r.mvm_per_s for r in rows if r.batch == batch}
        ys = np.arange(len(names)) + (i - (len(BATCHES) - 1) / 2) * h
        ax.barh(ys, [rate.get(n, 0.0) for n in names], height=h, label=f"batch {batch}")
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("MVM/s (256 x 256 cores, one CPU thread; log scale)")
    ax.legend()
    fig.tight_layout()
    from cimflow.atomic import save_figure

    save_figure(fig, path, dpi=120)
    plt.close(fig)


def _progress(rows: list[Row]) -> list[Row]:
    """Print each group's rows as soon as they are measured (a run cut short by a timeout
    still shows what it got), then pass them on."""
    for r in rows:
        print(f"  {_label(r):60s} {r.batch:5d} {r.mvm_per_s:12.1f}", flush=True)
    return rows


def _label(r: Row) -> str:
    return r.name if r.device == "cpu" else f"{r.name} [{r.device}]"


def main(argv: list[str] | None = None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.04 s timing windows")
    ap.add_argument("--out", type=Path, help="write results.json and a PNG bar chart here")
    ap.add_argument("--cores", type=int, default=48,
                    help="cores per mvm_cores call in the multi-core rows (0: none)")
    ap.add_argument("--device", default="cpu",
                    help="also run the golden and torch rows on this device (e.g. cuda)")
    args = ap.parse_args(argv)
    if args.cores < 0:
        ap.error(f"--cores must be >= 0, got {args.cores}")
    if args.device != "cpu" and not (args.device.startswith("cuda")
                                     and torch.cuda.is_available()):
        ap.error(f"device {args.device!r} is not available here (torch sees no GPU)")
    window = 0.04 if args.quick else 0.3
    torch.set_num_threads(1)
    base = _progress(bench_torch(window))
    rows = _progress(bench_algorithmic(window))
    if args.cores:
        rows += _progress(bench_cores(window, args.cores))
    rows += _progress(bench_cycle(window))
    for fn in OPTIONAL_BENCHES:
        rows += _progress(fn(window) or [])
    rows += base
    if args.device != "cpu":  # the same rows on the GPU, after the CPU rows of this run
        rows += _progress(bench_algorithmic(window, args.device))
        rows += _progress(bench_torch(window, args.device))
        if args.cores:
            rows += _progress(bench_cores(window, args.cores, args.device))
    table = _ratios(rows)
    print("\nsummary (ratios need every row):")
    print(f"{'benchmark':60s} {'batch':>5s} {'MVM/s':>12s} {'torch/this':>10s} "
          f"{'this/aihwkit':>12s}")
    for r, slow, vs in table:
        vs_s = f"{vs:12.2f}" if vs is not None else f"{'':12s}"
        print(f"{_label(r):60s} {r.batch:5d} {r.mvm_per_s:12.1f} {slow:10.1f} {vs_s}")
    print(f"(one CPU thread; one MVM = 128 x 256 weights, {SETTINGS.in_bits}-bit in, "
          f"{SETTINGS.out_bits}-bit out; median of 5 windows of {window} s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        data = [{"name": r.name, "batch": r.batch, "mvm_per_s": r.mvm_per_s,
                 "noise": r.noise, "device": r.device, "torch_over_this": slow,
                 "this_over_aihwkit": vs}
                for r, slow, vs in table]
        write_atomic(args.out / "results.json", json.dumps({"rows": data}, indent=1))
        _plot(rows, args.out / "bench_golden_mvm.png")
        print(f"wrote {args.out / 'results.json'} and {args.out / 'bench_golden_mvm.png'}")
    return rows


if __name__ == "__main__":
    main()
