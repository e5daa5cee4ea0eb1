"""Export for the chip with the PACT clip levels kept: ``chip_export(model)``.

``plain(model)`` drops the PACT quantisers, so a compiler calibrated on the plain model sets
each layer's input full scale to the largest activation it sees (a ReLU does not clip from
above), a coarser grid than the clip level the model was trained with. ``chip_export``
returns the plain model with a :class:`Clip` (clamp to [0, alpha], or [-alpha, alpha] for
signed inputs) in front of every Linear and Conv2d: digital element-wise operations the
model compiler keeps in the layer graph, so calibration finds the trained clip level as
each layer's full scale and the chip quantises as the noise-aware model does.
"""

from __future__ import annotations

import torch
from torch import nn

from .aware import NoiseAware, plain

__all__ = ["Clip", "chip_export"]


class Clip(nn.Module):
    """``clamp(x, lo, hi)`` with constant bounds (TorchScript-friendly)."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        if not lo < hi:
            raise ValueError(f"Clip needs lo < hi, got {lo}, {hi}")
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.lo, self.hi)

    def extra_repr(self) -> str:
        return f"lo={self.lo:.4g}, hi={self.hi:.4g}"


def chip_export(model: nn.Module) -> nn.Module:
    """A plain copy of the noise-aware ``model`` (eval, CPU) with every layer that has a PACT
    quantiser preceded by a :class:`Clip` at its trained clip level."""
    clips = {}
    for name, m in model.named_modules():
        if isinstance(m, NoiseAware) and m.act is not None:
            a = float(m.act.alpha.detach().abs())
            clips[name] = Clip(-a if m.act.signed else 0.0, a)
    if isinstance(model, NoiseAware):
        out = plain(model)
        return nn.Sequential(clips[""], out) if "" in clips else out
    out = plain(model)
    for name, clip in clips.items():
        parent, _, leaf = name.rpartition(".")
        holder = out.get_submodule(parent) if parent else out
        setattr(holder, leaf, nn.Sequential(clip, getattr(holder, leaf)))
    return out
