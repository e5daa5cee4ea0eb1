"""Small training and evaluation loops for the noise-aware experiments (device-agnostic).

``fit`` is plain Adam on cross-entropy with the model in training mode, so whatever the
NoiseAware layers do in training (weight noise, PACT, Concrete or STE ADC) is what the
model learns under. ``accuracy`` evaluates in evaluation mode, averaging ``repeats`` draws
of the test-time noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fit", "accuracy", "to_tensors"]


def to_tensors(images, labels, device="cpu"):
    """uint8 (N, 28, 28) images and labels as float (N, 1, 28, 28) in [0, 1] and int64."""
    x = torch.as_tensor(np.array(images)).to(device=device, dtype=torch.float32).div_(255.0)
    return x.unsqueeze(1), torch.as_tensor(np.array(labels)).to(device=device, dtype=torch.int64)


def fit(model, x, y, *, epochs: int = 1, lr: float = 1e-3, batch: int = 128,
        seed: int = 0, progress: Callable[[int, float, float], None] | None = None) -> list:
    """Train ``model`` on (x, y); ``progress(epoch, loss, seconds)`` after every epoch."""
    if epochs < 1 or batch < 1 or not lr > 0:
        raise ValueError(f"fit needs epochs >= 1, batch >= 1, lr > 0; got {epochs}, {batch}, {lr}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    history = []
    for ep in range(epochs):
        model.train()
        t0, total, n = time.perf_counter(), 0.0, 0
        for idx in torch.randperm(len(x), generator=g).split(batch):
            idx = idx.to(x.device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        history.append((total / n, time.perf_counter() - t0))
        if progress is not None:
            progress(ep + 1, *history[-1])
    return history


@torch.no_grad()
def accuracy(model, x, y, *, repeats: int = 1, batch: int = 1000) -> tuple[float, float]:
    """Mean and standard deviation over ``repeats`` evaluations of the accuracy on (x, y)."""
    model.eval()
    accs = []
    for _ in range(repeats):
        hit = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
        accs.append(hit / len(x))
    t = torch.tensor(accs, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if repeats > 1 else 0.0
