"""Weight-noise injection for noise-aware training (docs/model.md#training-noise).

W + N(0, (nu max|W|)^2), drawn afresh on every forward pass, stands for the conductance
relaxation a programmed chip shows (Wan et al. 2022, Methods, "Noise-resilient
neural-network training"): a network that has seen it in training keeps its accuracy when
the chip's weights move. The noise is a constant for autograd: the gradient reaches W as if
the noisy weights were the weights, which is what training under noise means.
"""

from __future__ import annotations

import torch

__all__ = ["noisy_weight", "check_nu"]


def check_nu(nu: float, what: str = "weight noise nu") -> float:
    if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not 0 <= nu <= 10:
        raise ValueError(f"{what} must be a fraction of max|W| in [0, 10], got {nu!r}")
    return float(nu)


def noisy_weight(w: torch.Tensor, nu: float, generator: torch.Generator | None = None):
    """``w`` plus Gaussian noise of std ``nu * max|w|`` (the layer's own max), fresh each call."""
    if nu == 0:
        return w
    sigma = nu * w.detach().abs().max()
    xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
    return w + sigma * xi
