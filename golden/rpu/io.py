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

import numpy as np
import torch

from . import fused as _fused

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

    def fused_args(self):
        """(inp_bound, inp_step, abs_max, out_noise, out_bound, out_step) as the fused
        periphery passes take them (float32; step 0: no quantisation), computed once."""
        args = self.__dict__.get("_fused_args")
        if args is None:
            f32 = np.float32
            args = (f32(self.inp_bound),
                    f32(self.step(self.inp_bound, self.inp_bits) if self.inp_bits else 0.0),
                    self.noise_management == "abs_max", f32(self.out_noise),
                    f32(self.out_bound),
                    f32(self.step(self.out_bound, self.out_bits) if self.out_bits else 0.0))
            self.__dict__["_fused_args"] = args  # frozen: no setattr, the cache only
        return args


def _quantise(v, step: float):
    return torch.round(v / step) * step


def analog_mvm(x: torch.Tensor, w: torch.Tensor, io: IOParameters, generator=None,
               fused: bool = True):
    """x (N, n_in) through the array w (n_out, n_in) with periphery ``io``: (N, n_out).

    On the CPU in float32 (``fused``) the element-wise periphery runs as two numba passes
    around the product (:func:`.fused.periphery_in`, :func:`.fused.periphery_out`), with the
    output noise drawn from the same generator as here: the same arithmetic in the same
    order, so the same result (tested).
    """
    if io.is_perfect:
        return x @ w.T
    if (fused and _fused.AVAILABLE and x.device.type == "cpu" and x.dtype == torch.float32
            and w.dtype == torch.float32 and x.dim() == 2):
        inp_bound, inp_step, abs_max, noise, out_bound, out_step = io.fused_args()
        xq, scale = _fused.periphery_in(x.detach().contiguous().numpy(), inp_bound, inp_step,
                                        abs_max)
        y = torch.from_numpy(xq) @ w.T
        z = (torch.randn(y.shape, generator=generator, dtype=y.dtype) if noise
             else torch.empty(0, 0))
        _fused.periphery_out(y.numpy(), z.numpy(), noise, out_bound, out_step, abs_max, scale)
        return y
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
