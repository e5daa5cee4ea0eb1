"""PACT: activations clipped at a trainable level and quantised to the core's input precision.

The chip drives each MVM input as an n-bit integer (docs/model.md#bit-serial-inputs), so a
network trained on float activations meets a rounding it never saw. PACT (Choi et al. 2018,
the quantised training that Wan et al. 2022, Methods, "Noise-resilient neural-network
training", use for inputs of at most 4 bits) trains the clipping level alpha with the
weights: y = clip(x, 0, alpha), y_q = round(y s / alpha) alpha / s, s = number of steps.
The rounding passes gradients straight through; d y_q / d alpha = 1 where x >= alpha (the
PACT gradient), d y_q / d x = 1 inside (0, alpha). Signed activations use the symmetric
sign-magnitude grid of the chip's inputs, clip(x, -alpha, alpha) with s = 2^(b-1) - 1.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Pact", "pact_steps"]


def pact_steps(bits: int, signed: bool) -> int:
    """Quantisation steps between 0 and alpha for ``bits``-bit activations."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"activation bits must be an integer in 1..16, got {bits!r}")
    if signed and bits < 2:
        raise ValueError("signed activations need at least 2 bits (1 sign + magnitude)")
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


class Pact(nn.Module):
    """Clip at a trainable ``alpha`` and quantise to ``bits`` bits (``bits=None``: clip only)."""

    def __init__(self, bits: int | None = 4, alpha: float = 6.0, signed: bool = False):
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"PACT clipping level alpha must be > 0, got {alpha}")
        self.bits = bits
        self.signed = signed
        self.steps = None if bits is None else pact_steps(bits, signed)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.abs() + 1e-8
        lo = -a if self.signed else torch.zeros_like(a)
        # min/max written so d/d alpha is 1 exactly where the clip is active (PACT eq. 1)
        y = torch.minimum(torch.maximum(x, lo), a)
        if self.steps is None:
            return y
        scale = self.steps / a
        # straight-through: the value is quantised, the gradient is that of y
        return y + (torch.round(y * scale) / scale - y).detach()

    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes the chip's input registers would hold for ``x``."""
        if self.steps is None:
            raise ValueError("this Pact does not quantise (bits=None), so it has no codes")
        with torch.no_grad():
            return torch.round(self.forward(x) * self.steps / (self.alpha.abs() + 1e-8))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}, alpha={float(self.alpha.detach()):.4g}"
