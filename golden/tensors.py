"""NumPy in, NumPy out; torch in, torch out: the golden model computes on torch tensors.

Why: one implementation runs on the CPU and on a GPU. Public functions accept NumPy arrays
(and return NumPy arrays then) or torch tensors (returned on the same device); a CPU
NumPy array and a CPU tensor share memory, so the conversions copy nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["as_tensor", "from_numpy", "like_input", "exact_matmul"]


def from_numpy(a: np.ndarray) -> torch.Tensor:
    """torch.from_numpy, also for read-only arrays (the cached operands are read-only so
    that nobody edits them; the golden code never writes through such a tensor)."""
    if a.flags.writeable:
        return torch.from_numpy(a)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(a)


def as_tensor(a, device: torch.device | str | None = None) -> torch.Tensor:
    """``a`` (array, tensor or scalar) as a tensor on ``device`` (default: where it is)."""
    if isinstance(a, torch.Tensor):
        return a if device is None else a.to(device)
    t = from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else (
        torch.as_tensor(np.asarray(a)))
    return t if device is None else t.to(device)


def like_input(t: torch.Tensor, numpy_out: bool):
    """``t`` as a NumPy array when the caller passed NumPy, else the tensor itself."""
    return t.cpu().numpy() if numpy_out else t


def exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in the operands' precision: float32 products of integers below 2^24 are exact in
    any summation order, but not under TF32 (10-bit mantissa), which a user may have turned
    on for CUDA; then the product is made in float64 instead."""
    if (a.is_cuda and a.dtype == torch.float32
            and torch.get_float32_matmul_precision() != "highest"):
        return (a.double() @ b.double()).to(torch.float32)
    return a @ b
