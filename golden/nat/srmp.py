"""Small-read-margin (SRMP) noise: ADC conversion error that grows with the open word lines.

Wei et al. (ITRI), "Hardware limitations: small read margin problem": the bit-line current
adds up over the open word lines, the read margin between adjacent MAC values shrinks as it
grows, and the converter may read a neighbouring level. This project's model (its
parameters are ours; the article gives distributions, not a formula): the converter sees
its input plus zero-mean logistic noise of scale

    s(n) = (s0 + s1 sqrt(n / n_ref)) * LSB,

n the number of word lines driven with a non-zero input for that output (per sample, per
output element), n_ref = 256 (one core's rows) and LSB the step of the calibrated ADC. The
square root is the spread of a sum of n independent cell currents; s0 is the comparator's
own noise. See docs/chip_training.md#srmp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Srmp", "active_lines"]


@dataclass(frozen=True)
class Srmp:
    """Logistic noise scale s0 + s1 sqrt(n / n_ref), in LSBs of the calibrated ADC."""

    s0: float = 0.1
    s1: float = 0.5
    n_ref: int = 256

    def __post_init__(self) -> None:
        for name in ("s0", "s1"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"SRMP {name} must be a number >= 0 (LSBs), got {v!r}")
        if not (isinstance(self.n_ref, int) and self.n_ref > 0):
            raise ValueError(f"SRMP n_ref must be a positive integer, got {self.n_ref!r}")

    @property
    def off(self) -> bool:
        return self.s0 == 0 and self.s1 == 0

    def scale(self, n_active: torch.Tensor) -> torch.Tensor:
        """Logistic scale in LSBs for ``n_active`` open word lines."""
        return self.s0 + self.s1 * torch.sqrt(n_active.clamp_min(0) / self.n_ref)


def active_lines(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Word lines with a non-zero input behind every output element of ``layer`` at ``x``.

    The layer's own connectivity applied to the indicator of x != 0 (all-ones weights, no
    bias), so a convolution counts each output's receptive field, padding excluded.
    """
    ind = (x != 0).to(x.dtype)
    if isinstance(layer, nn.Linear):
        ones = torch.ones_like(layer.weight)
        return F.linear(ind, ones)
    if isinstance(layer, nn.Conv2d):
        ones = torch.ones_like(layer.weight)
        return layer._conv_forward(ind, ones, None)
    raise TypeError(f"active_lines needs an nn.Linear or nn.Conv2d, got {type(layer).__name__}")
