"""RPU training throughput: cimflow.golden.rpu against IBM aihwkit's AnalogSGD, same device.

Device: ConstantStep, dw_min 0.001, bounds +-0.6, 30 % variations, BL 10 fixed, no update
management, stochastic pulses; one thread on both sides (OMP_NUM_THREADS=1); median of three
runs. Rows: training samples per second of the MLP 784-256-128-10 at batch 1 and 64 (ours
with the mini-batch's counts merged, and with one rank-1 update per sample as aihwkit does),
and rank-1 pulsed updates per second on a 256 x 256 array. The aihwkit side runs
experiments/aihwkit_rpu_probe.py under $AIHWKIT_PYTHON and is reported as skipped without it.
Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that command; ``--device cuda``
times our side on a GPU; ``--torch-path`` times our torch path on the CPU instead of the fused
numba kernels (the reference implementation; the path CUDA runs).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 \
        AIHWKIT_PYTHON=... python benchmarks/bench_rpu_training.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from cimflow.experiments.rpu import aihwkit_python, crosscheck_params, mlp, run_probe  # noqa: E402
from cimflow.golden.rpu import AnalogSGD, ConstantStepDevice, RPUConfig, convert_to_analog  # noqa: E402
from cimflow.golden.rpu.fused import new_state  # noqa: E402
from cimflow.golden.rpu.pulses import BernoulliSource  # noqa: E402
from cimflow.golden.rpu.update import pulsed_update  # noqa: E402

CLOCK = {"process": time.process_time, "wall": time.perf_counter}


def _median_rate(fn, units: int, seconds: float, device, clock) -> float:
    runs = []
    for _ in range(3):
        n, t0 = 0, clock()
        while clock() - t0 < seconds:
            fn()
            n += units
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(n / (clock() - t0))
    return statistics.median(runs)


def ours(seconds: float, device: torch.device, clock, fused: bool = True) -> dict:
    torch.set_num_threads(1)
    out = {}
    for batch, mode in ((1, "merged"), (64, "merged"), (64, "sequential")):
        cfg = RPUConfig(device=ConstantStepDevice(), batch_update=mode, fused=fused)
        model = convert_to_analog(mlp(0), cfg).to(device)
        opt = AnalogSGD(model.parameters(), lr=0.01)
        x = torch.rand(batch, 784, device=device)
        y = torch.randint(0, 10, (batch,), device=device)

        def step(model=model, opt=opt, x=x, y=y):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        step()
        key = f"samples_per_s_b{batch}" + ("_sequential" if mode == "sequential" else "")
        out[key] = _median_rate(step, batch, seconds, device, clock)
    st = ConstantStepDevice().sample((256, 256), generator=torch.Generator().manual_seed(0))
    st = st.to(device)
    w = torch.zeros(256, 256, device=device)
    x, d = torch.rand(1, 256, device=device), 0.1 * torch.randn(1, 256, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    src = BernoulliSource()
    rng = new_state(0)

    def rank1():
        pulsed_update(w, st, x, d, 0.01, bl=10, dw_min=0.001, source=src, generator=g,
                      fused=fused, rng=rng)

    out["rank1_per_s"] = _median_rate(rank1, 1, seconds, device, clock)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per timed run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-path", action="store_true",
                    help="time our torch path (no fused CPU kernels)")
    ap.add_argument("--clock", choices=CLOCK, default="process",
                    help="process: CPU time of each process (robust on a shared machine; "
                         "one thread each); wall: elapsed time (use for --device cuda)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    rows = {"cimflow": ours(args.seconds, dev, CLOCK[args.clock], not args.torch_path)}
    exe = aihwkit_python()
    if exe is None:
        print("aihwkit: SKIPPED (set AIHWKIT_PYTHON to an interpreter that imports aihwkit)")
    else:
        p = crosscheck_params(**{k: getattr(ConstantStepDevice(), k)
                                 for k in ConstantStepDevice.__dataclass_fields__})
        rows["aihwkit"] = run_probe(exe, "bench", dict(p, seconds=args.seconds, clock=args.clock))
    print(f"{'metric':<22}" + "".join(f"{k:>14}" for k in rows) + "   ratio (cimflow/aihwkit)")
    for m in rows["cimflow"]:
        vals = [rows[k].get(m, rows[k].get(m.replace("_sequential", ""))) for k in rows]
        ratio = f"   {vals[0] / vals[1]:.2f}x" if len(vals) > 1 else ""
        print(f"{m:<22}" + "".join(f"{v:>14.1f}" for v in vals) + ratio)
    print(json.dumps({"device": str(dev), "clock": args.clock, **rows}))


if __name__ == "__main__":
    main()
