"""aihwkit side of the RPU training cross-check and benchmark; runs under aihwkit's interpreter.

aihwkit is never a cimflow dependency: this script imports nothing from cimflow and is run
as ``$AIHWKIT_PYTHON experiments/aihwkit_rpu_probe.py MODE JSON``, printing one JSON line.
The device is aihwkit's ConstantStepDevice with stochastic compressed pulses, fixed BL and
no update management (both translator gains sqrt(lr / (dw_min BL))), one thread.

MODE ``moments``: one update's weight change per cell over many trials (the samples, their
mean and variance).
MODE ``train``: MLP 784-256-128-10 (sigmoid, softmax), AnalogSGD, batch ``batch``, on the
arrays in the .npz file named by ``data``; returns test error after ``epochs``.
MODE ``bench``: training samples per second (batch 1 and 64) and rank-1 updates per second
on a 256 x 256 array; median of three runs, timed by process CPU time (``clock`` "process",
the default) or elapsed time ("wall").
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def rpu_config(p: dict):
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.configs.devices import ConstantStepDevice
    from aihwkit.simulator.parameters.enums import PulseType

    dev = ConstantStepDevice(
        dw_min=p["dw_min"], dw_min_dtod=p["dw_min_dtod"], dw_min_std=p["dw_min_std"],
        up_down=p["up_down"], up_down_dtod=p["up_down_dtod"], w_max=p["w_max"],
        w_min=p["w_min"], w_max_dtod=p["w_max_dtod"], w_min_dtod=p["w_min_dtod"])
    cfg = SingleRPUConfig(device=dev)
    cfg.update.desired_bl = p["bl"]
    cfg.update.fixed_bl = True
    cfg.update.update_management = False
    cfg.update.update_bl_management = False
    cfg.update.pulse_type = PulseType.STOCHASTIC_COMPRESSED
    if p.get("perfect_io"):
        cfg.forward.is_perfect = True
        cfg.backward.is_perfect = True
    return cfg


def moments(p: dict) -> dict:
    import torch
    from aihwkit.nn import AnalogLinear

    torch.manual_seed(p.get("seed", 0))
    x = torch.tensor([p["x"]])
    d = torch.tensor([p["d"]])
    layer = AnalogLinear(x.shape[1], d.shape[1], bias=False, rpu_config=rpu_config(p))
    tile = next(layer.analog_tiles())
    tile.set_learning_rate(p["lr"])
    zero = torch.zeros(d.shape[1], x.shape[1])
    samples = []
    for _ in range(p["trials"]):
        tile.set_weights(zero)
        tile.update(x, -d)  # aihwkit applies W -= lr * d x^T; our d is the negative gradient
        samples.append(tile.get_weights()[0].double().flatten())
    s = torch.stack(samples)
    return {"mean": s.mean(0).view_as(zero).tolist(),
            "var": s.var(0, unbiased=False).view_as(zero).tolist(), "samples": s.tolist()}


def _mlp(p):
    import torch
    from aihwkit.nn import AnalogLinear, AnalogSequential

    cfg = rpu_config(p)
    torch.manual_seed(p.get("seed", 0))
    return AnalogSequential(AnalogLinear(784, 256, rpu_config=cfg), torch.nn.Sigmoid(),
                            AnalogLinear(256, 128, rpu_config=cfg), torch.nn.Sigmoid(),
                            AnalogLinear(128, 10, rpu_config=cfg))


def train(p: dict) -> dict:
    import numpy as np
    import torch
    from aihwkit.optim import AnalogSGD

    torch.set_num_threads(1)
    data = np.load(p["data"])
    xtr = torch.tensor(data["train_x"], dtype=torch.float32)
    ytr = torch.tensor(data["train_y"], dtype=torch.long)
    xte = torch.tensor(data["test_x"], dtype=torch.float32)
    yte = torch.tensor(data["test_y"], dtype=torch.long)
    model = _mlp(p)
    opt = AnalogSGD(model.parameters(), lr=p["lr"])
    opt.regroup_param_groups(model)
    g = torch.Generator().manual_seed(p.get("seed", 0))
    t0 = time.perf_counter()
    for _ in range(p["epochs"]):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), p["batch"]):
            idx = perm[i: i + p["batch"]]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    dt = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        err = (model(xte).argmax(1) != yte).float().mean().item()
    return {"test_error": err, "train_seconds": dt}


def bench(p: dict) -> dict:
    import torch
    from aihwkit.nn import AnalogLinear
    from aihwkit.optim import AnalogSGD

    torch.set_num_threads(1)
    clock = time.process_time if p.get("clock", "process") == "process" else time.perf_counter
    out = {}
    for batch in (1, 64):
        model = _mlp(p)
        opt = AnalogSGD(model.parameters(), lr=p["lr"])
        opt.regroup_param_groups(model)
        x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
        runs = []
        for _ in range(3):
            n, t0 = 0, clock()
            while clock() - t0 < p["seconds"]:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                n += batch
            runs.append(n / (clock() - t0))
        out[f"samples_per_s_b{batch}"] = statistics.median(runs)
    layer = AnalogLinear(256, 256, bias=False, rpu_config=rpu_config(p))
    tile = next(layer.analog_tiles())
    tile.set_learning_rate(p["lr"])
    x, d = torch.rand(1, 256), 0.1 * torch.randn(1, 256)
    runs = []
    for _ in range(3):
        n, t0 = 0, clock()
        while clock() - t0 < p["seconds"]:
            tile.update(x, d)
            n += 1
        runs.append(n / (clock() - t0))
    out["rank1_per_s"] = statistics.median(runs)
    return out


if __name__ == "__main__":
    mode, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"moments": moments, "train": train, "bench": bench}[mode](params)))
