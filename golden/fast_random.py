"""Normal and logistic draws made from a NumPy Generator's raw 64-bit words, vectorised.

Why: the noisy golden MVM draws millions of samples per batch (read noise on every sampled
bit plane, a fresh comparator noise on every ADC comparison). NumPy's own ziggurat normal
and its logistic cost 10-12 ns a sample on our machines, more than the whole rest of the
MVM. Here each 64-bit word of the caller's bit generator gives two 32-bit uniforms, and
the transforms run as a few float32 array operations (about 3 ns a sample in all).

The draws come from ``rng.bit_generator``, so a seeded Generator reproduces them. A
uniform is an integer j of b bits read as u = (j + 1/2) / 2^b, strictly inside (0, 1):

* logistic: scale * log(u / (1 - u)) on the top 23 bits, u = (j + 1/2) / 2^23, where u and
  1 - u are exact in float32. The support is cut at +/-16.6 scale (tail mass 2^-23).
* normal: Box-Muller on 32-bit u1, u2: sqrt(-2 log u1) * (cos, sin)(2 pi u2), both outputs
  used; the support is cut at 6.7 sigma (tail mass 2e-11).

float32 rounding of u (relative 2^-24) is far below any noise these model. A torch
Generator (for draws on a GPU) is served by :func:`normal_draws` / :func:`logistic_draws`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "uniform_words", "logistic", "standard_normal", "normal_draws", "logistic_draws",
]

_TO_UNIT = np.float32(2.0**-32)
_TWO_23 = np.float32(2.0**23)
SMALL_NORMAL = 1024
"""Sample count below which NumPy's ziggurat is faster than Box-Muller (measured: equal
cost near 1,000 samples: 12 ns a sample against 3 ns plus 9 us a call)."""


def uniform_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent uniform uint32 words from ``rng``'s bit generator."""
    if n < 0:
        raise ValueError(f"need a sample count >= 0, got {n}")
    return rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]


def _shape(shape) -> tuple[tuple[int, ...], int]:
    """``shape`` as a tuple (an int is one dimension) and its element count."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return shape, math.prod(shape)


def logistic(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Logistic(0, ``scale``) samples of ``shape`` (float32)."""
    shape, n = _shape(shape)
    k = uniform_words(rng, n)
    a = (k >> 9).astype(np.float32)  # 23 bits: a + 1/2 and 2^23 - (a + 1/2) are exact
    a += 0.5
    b = np.subtract(_TWO_23, a)
    np.divide(a, b, out=a)
    np.log(a, out=a)
    a *= np.float32(scale)
    return a.reshape(shape)


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """N(0, 1) samples of ``shape`` (float32), Box-Muller on pairs of 32-bit uniforms.

    Below ``SMALL_NORMAL`` samples NumPy's own ziggurat is used instead: one call costs
    less than Box-Muller's dozen array operations there.
    """
    shape, n = _shape(shape)
    if n < SMALL_NORMAL:
        return rng.standard_normal(shape, dtype=np.float32)
    h = (n + 1) // 2
    k = uniform_words(rng, 2 * h)
    r = k[:h].astype(np.float32)
    r += 0.5
    r *= _TO_UNIT
    np.log(r, out=r)
    r *= -2.0
    np.sqrt(r, out=r)
    theta = k[h:].astype(np.float32)
    theta += 0.5
    theta *= np.float32(2.0 * np.pi) * _TO_UNIT
    out = np.empty(2 * h, np.float32)
    np.multiply(r, np.cos(theta), out=out[:h])
    np.multiply(r, np.sin(theta), out=out[h:])
    return out[:n].reshape(shape)


def normal_draws(rng, shape, device) -> torch.Tensor:
    """N(0, 1) float32 draws on ``device`` from a NumPy Generator (:func:`standard_normal`)
    or a torch Generator (drawn where the generator lives, e.g. on the GPU)."""
    if isinstance(rng, torch.Generator):
        return torch.randn(tuple(shape), generator=rng, device=rng.device, dtype=torch.float32)
    return torch.from_numpy(standard_normal(rng, shape)).to(device)


def logistic_draws(rng, shape, scale: float, device) -> torch.Tensor:
    """Logistic(0, ``scale``) float32 draws on ``device``, as :func:`logistic` (the same
    23-bit uniforms and cut) from a NumPy or a torch Generator."""
    if not isinstance(rng, torch.Generator):
        return torch.from_numpy(logistic(rng, shape, scale)).to(device)
    a = torch.randint(0, 1 << 23, tuple(shape), generator=rng, device=rng.device,
                      dtype=torch.int32).to(torch.float32)
    a += 0.5
    a /= float(_TWO_23) - a
    return a.log_().mul_(float(np.float32(scale)))
