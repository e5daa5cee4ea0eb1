"""The analog forward/backward read: what the periphery does to an exact MVM (Gokmen &
Vlasov 2016).

    y = f_ADC(clip(W f_DAC(clip(x, -b_in, b_in)) + sigma_out*xi, -b_out, b_out))
    f_Z(v) = D_Z * round(v / D_Z),  D_Z = 2*b_Z*res_Z,  res_Z = 1/(2^bits - 2)

Defaults are the RPU model of Gokmen & Vlasov 2016 (5-bit DAC, 6 % output noise, output
bound 12, 9-bit ADC). ``noise_management="abs_max"`` divides each input vector by its largest
magnitude before the DAC and multiplies the output back: without it the backward errors
(often 1e-2 and smaller) would fall below one ADC step. The backward pass uses the same
model with the transposed array.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["IOParameters", "analog_mvm"]


@dataclass(frozen=True)
class IOParameters:
    is_perfect: bool = False
    """Exact MVM: no bounds, quantisation or noise."""
    inp_bound: float = 1.0
    inp_bits: int = 5
    """DAC resolution in bits (0: no input quantisation)."""
    out_noise: float = 0.06
    """Std of the additive output noise, in output units."""
    out_bound: float = 12.0
    out_bits: int = 9
    """ADC resolution in bits (0: no output quantisation)."""
    noise_management: str = "abs_max"
    """"abs_max" (scale each input vector to max |x| = 1) or "none"."""

    def __post_init__(self):
        if self.noise_management not in ("abs_max", "none"):
            raise ValueError(f"noise_management must be 'abs_max' or 'none', got "
                             f"{self.noise_management!r}")
        for name in ("inp_bits", "out_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= 24 or v == 1:
                raise ValueError(f"{name} must be 0 (off) or an integer in [2, 24], got {v!r}")
        if self.inp_bound <= 0 or self.out_bound <= 0 or self.out_noise < 0:
            raise ValueError("inp_bound and out_bound must be > 0 and out_noise >= 0")

    def step(self, bound: float, bits: int) -> float:
        return 2 * bound / (2**bits - 2)


def _quantise(v, step: float):
    return torch.round(v / step) * step


def analog_mvm(x: torch.Tensor, w: torch.Tensor, io: IOParameters, generator=None):
    """x (N, n_in) through the array w (n_out, n_in) with periphery ``io``: (N, n_out)."""
    if io.is_perfect:
        return x @ w.T
    scale = None
    if io.noise_management == "abs_max":
        scale = x.abs().amax(dim=1, keepdim=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        x = x / scale
    x = x.clamp(-io.inp_bound, io.inp_bound)
    if io.inp_bits:
        x = _quantise(x, io.step(io.inp_bound, io.inp_bits))
    y = x @ w.T
    if io.out_noise:
        y = y + io.out_noise * torch.randn(y.shape, generator=generator, device=y.device,
                                           dtype=y.dtype)
    y = y.clamp(-io.out_bound, io.out_bound)
    if io.out_bits:
        y = _quantise(y, io.step(io.out_bound, io.out_bits))
    return y if scale is None else y * scale
