"""The ADC of a noise-aware layer: a trainable quantiser of the layer's MVM output.

Three read-outs of one converter (golden/nat/concrete.py holds the formulas):

* ``mode="ste"``: training rounds to the nearest level and passes gradients straight through
  (the baseline of Wei et al. (ITRI));
* ``mode="concrete"``: training uses the relaxed Concrete sample under the logistic noise
  that the SRMP model predicts for each output (plus a floor ``sigma_floor`` LSB that keeps
  the relaxation differentiable when the model predicts no noise);
* evaluation (both modes): the nearest level of the input plus the SRMP noise, i.e. the
  chip's conversion.

The step ``alpha`` is trained; ``beta`` is fixed at 0 so that 0 stays a level (ITRI's
choice). ``lsb0`` is the step set by calibration; the SRMP noise is a fixed charge, so it is
counted in LSBs of that calibrated step, not of the step training moves to.
"""

from __future__ import annotations

import torch
from torch import nn

from .concrete import concrete_quantize, hard_quantize, ste_quantize
from .srmp import Srmp

__all__ = ["Adc", "MODES"]

MODES = ("ste", "concrete")


class Adc(nn.Module):
    def __init__(self, bits: int = 4, mode: str = "ste", srmp: Srmp | None = None,
                 tau: float = 0.5, sigma_floor: float = 0.2, alpha: float = 1.0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ADC mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not tau > 0:
            raise ValueError(f"Concrete temperature tau must be > 0, got {tau}")
        if not sigma_floor > 0:
            raise ValueError(f"sigma_floor must be > 0 LSB, got {sigma_floor}")
        self.bits, self.mode, self.srmp = bits, mode, srmp or Srmp(0.0, 0.0)
        self.tau, self.sigma_floor = tau, sigma_floor
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.register_buffer("beta", torch.tensor(0.0))
        self.register_buffer("lsb0", torch.tensor(float(alpha)))

    def set_step(self, lsb: float) -> None:
        """Calibration: the ADC step in output units (also the unit of the SRMP noise)."""
        if not lsb > 0:
            raise ValueError(f"ADC step must be > 0, got {lsb}")
        with torch.no_grad():
            self.alpha.fill_(lsb)
            self.lsb0.fill_(lsb)

    def noise_scale(self, n_active: torch.Tensor | None, like: torch.Tensor):
        """SRMP logistic scale in output units for each element (None when there is none)."""
        if self.srmp.off:
            return None
        if n_active is None:
            n_active = torch.full_like(like, float(self.srmp.n_ref))
        return self.srmp.scale(n_active) * self.lsb0

    def forward(self, y: torch.Tensor, n_active: torch.Tensor | None = None) -> torch.Tensor:
        alpha = self.alpha.abs() + 1e-12
        s = self.noise_scale(n_active, y)
        if not self.training:
            return hard_quantize(y, alpha, self.beta, self.bits, s)
        if self.mode == "ste":
            return ste_quantize(y, alpha, self.beta, self.bits)
        floor = self.sigma_floor * self.lsb0
        sigma = floor if s is None else s + floor
        return concrete_quantize(y, alpha, self.beta, sigma, self.bits, self.tau)

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, mode={self.mode}, alpha={float(self.alpha.detach()):.4g}, "
                f"srmp={self.srmp}")
