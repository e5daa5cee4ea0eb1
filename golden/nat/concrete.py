"""The Concrete-distribution ADC quantiser and its straight-through (STE) baseline.

Wei et al. (ITRI), "Noise-tolerant analog-mixed deep-learning hardware algorithm": when the
sense amplifier's noise makes a conversion land on a neighbouring level, the ADC output is
a random draw, not a function of its input. The quantiser therefore learns its levels
r_k = alpha k + beta (k = -K/2 .. K/2 - 1, K = 2^bits; beta = 0 keeps 0 a level) under a
zero-mean logistic noise of scale sigma. Level k is read with probability

    p_k(x) = F(t_k+ - x) - F(t_k- - x),  F(u) = 1 / (1 + exp(-u / sigma)),

t_k-/+ the midpoints to the neighbours (-inf and +inf at the ends, so sum_k p_k = 1).
Training replaces the categorical draw by a Concrete (Gumbel-softmax) sample at temperature
tau (Maddison et al. 2017, the relaxation of Louizos et al. 2019):

    pi = softmax((log p + g) / tau),  g = -log(-log U),  x_hat = sum_k pi_k r_k,

differentiable in x, alpha and beta. Evaluation reads the hard level: the nearest one
without noise, a categorical draw from p with it (which is exactly nearest-level rounding of
x + logistic noise). The STE baseline rounds to the nearest level in training too and
passes the gradient straight through inside the range, ignoring the noise. The formulas
are this project's reconstruction (the article's equations are not legible); see
docs/chip_training.md#concrete-adc.
"""

from __future__ import annotations

import torch

__all__ = [
    "level_indices", "levels", "class_probs", "concrete_weights", "concrete_quantize",
    "hard_quantize", "ste_quantize", "logistic_noise",
]

_TINY = 1e-30


def level_indices(bits: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """k = -2^(bits-1) .. 2^(bits-1) - 1: the signed integer grid (it holds 0)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 10:
        raise ValueError(f"ADC bits must be an integer in 1..10, got {bits!r}")
    half = 1 << (bits - 1)
    return torch.arange(-half, half, device=device, dtype=dtype)


def levels(alpha: torch.Tensor, beta: torch.Tensor, bits: int, like=None) -> torch.Tensor:
    """Representative levels r_k = alpha k + beta (in the dtype of ``like`` when given)."""
    alpha = torch.as_tensor(alpha, dtype=None if like is None else like.dtype)
    return alpha * level_indices(bits, alpha.device, alpha.dtype) + beta


def class_probs(x: torch.Tensor, alpha, beta, sigma, bits: int) -> torch.Tensor:
    """p_k(x), shape x.shape + (2^bits,); sigma (logistic scale) broadcasts against x."""
    r = levels(alpha, beta, bits, like=x)
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if bool((sigma <= 0).any()):
        raise ValueError("logistic noise scale sigma must be > 0 for class probabilities")
    mid = (r[1:] + r[:-1]) / 2
    s = sigma.unsqueeze(-1) if sigma.dim() else sigma
    # CDF at the K - 1 inner boundaries, 0 and 1 at the open ends: p_k = F_(k+1) - F_k.
    # Far from x the two terms are both near 0 or both near 1 and their difference keeps
    # only absolute precision (1e-16 in float64, 1e-7 in float32): far levels get a
    # probability of that size instead of a smaller one, which no Concrete draw can pick
    cdf = torch.sigmoid((mid - x.unsqueeze(-1)) / s)
    zero = torch.zeros_like(cdf[..., :1])
    p = (torch.cat([cdf, zero + 1], -1) - torch.cat([zero, cdf], -1)).clamp_min(0)
    return p / p.sum(-1, keepdim=True)


def concrete_weights(p: torch.Tensor, tau: float, u: torch.Tensor | None = None) -> torch.Tensor:
    """Relaxed one-hot sample pi of the categorical p at temperature tau (U given or drawn)."""
    if not tau > 0:
        raise ValueError(f"Concrete temperature tau must be > 0, got {tau}")
    if u is None:
        u = torch.rand_like(p)
    g = -torch.log(-torch.log(u.clamp(_TINY, 1 - 1e-7)))
    return torch.softmax((torch.log(p.clamp_min(_TINY)) + g) / tau, dim=-1)


def concrete_quantize(x, alpha, beta, sigma, bits: int, tau: float, u=None) -> torch.Tensor:
    """Training output x_hat = sum_k pi_k r_k (differentiable in x, alpha, beta, sigma)."""
    pi = concrete_weights(class_probs(x, alpha, beta, sigma, bits), tau, u)
    return (pi * levels(alpha, beta, bits, like=x)).sum(-1)


def logistic_noise(shape, scale, generator=None, like: torch.Tensor | None = None):
    """Zero-mean logistic samples of the given scale (log(U / (1 - U)) * scale)."""
    u = torch.rand(shape, generator=generator, dtype=like.dtype if like is not None else None,
                   device=like.device if like is not None else None)
    u = u.clamp(1e-7, 1 - 1e-7)
    return (torch.log(u) - torch.log1p(-u)) * scale


def hard_quantize(x, alpha, beta, bits: int, sigma=None, generator=None) -> torch.Tensor:
    """Evaluation: nearest level of x (plus logistic noise of scale sigma when given)."""
    if sigma is not None:
        x = x + logistic_noise(x.shape, sigma, generator, like=x)
    k = level_indices(bits, x.device, x.dtype)
    idx = torch.clamp(torch.round((x - beta) / alpha), k[0], k[-1])
    return idx * alpha + beta


def ste_quantize(x, alpha, beta, bits: int) -> torch.Tensor:
    """STE baseline: forward nearest level with clip, d/dx = 1 inside the range, 0 outside.

    Gradients for alpha and beta follow the LSQ form (the value alpha*idx + beta with idx
    held fixed), so the scale can be trained alongside the weights.
    """
    k = level_indices(bits, x.device, x.dtype)
    u = (x - beta) / alpha
    inside = (u >= k[0]) & (u <= k[-1])
    idx = torch.clamp(torch.round(u), k[0], k[-1]).detach()
    val = idx * alpha + beta
    # value of val, gradient 1 in x inside the range
    return val + torch.where(inside, x - x.detach(), torch.zeros_like(x))
