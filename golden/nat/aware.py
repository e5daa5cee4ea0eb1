"""One switch from a torch model to its noise-aware version, and back to a plain one.

``noise_aware(model, NatConfig(...))`` wraps every ``nn.Linear`` and ``nn.Conv2d`` in a
:class:`NoiseAware` layer that does what the chip does to it: the input is clipped and
quantised to the core's input precision (PACT), the weights get fresh Gaussian noise on
every pass (``nu`` in training, ``nu_test`` in evaluation), and, when an ADC is asked for,
the output goes through the trainable ADC quantiser with the small-read-margin noise.
The wrapped layer keeps its own parameters, so ``plain(model)`` (the layers unwrapped, no
noise, no quantisers) has exactly the trained weights; that is what is exported for the
compiler, with the quantiser settings beside it (``quant_settings``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .adc import MODES, Adc
from .noise import check_nu, noisy_weight
from .pact import Pact, pact_steps
from .srmp import Srmp, active_lines

__all__ = ["NatConfig", "NoiseAware", "noise_aware", "plain", "set_noise", "aware_layers",
           "quant_settings", "ALLOWED_PLAIN"]

ALLOWED_PLAIN = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
                 nn.Flatten, nn.Sequential)
"""Module types of an exported plain model (what the model compiler accepts)."""


@dataclass(frozen=True)
class NatConfig:
    """What the chip does to a layer (all off is the float network)."""

    nu: float = 0.0
    """Training weight noise, a fraction of the layer's max|W|."""
    nu_test: float = 0.0
    """Weight noise in evaluation (the paper deploys against 10 %)."""
    act_bits: int | None = 4
    """Input precision of every layer (None: no quantisation, no clip)."""
    act_signed: bool = False
    act_alpha: float = 4.0
    """Initial PACT clipping level (calibration can set it from data)."""
    adc_bits: int | None = None
    """ADC output bits (None: no ADC quantiser)."""
    adc_mode: str = "ste"
    srmp: Srmp | None = None
    tau: float = 0.5
    sigma_floor: float = 0.2

    def __post_init__(self) -> None:
        check_nu(self.nu, "training weight noise nu")
        check_nu(self.nu_test, "test weight noise nu_test")
        if self.act_bits is not None:
            pact_steps(self.act_bits, self.act_signed)
        if self.adc_mode not in MODES:
            raise ValueError(f"adc_mode must be one of {', '.join(MODES)}, got {self.adc_mode!r}")


class NoiseAware(nn.Module):
    """A Linear or Conv2d as the chip runs it (see the module docstring)."""

    def __init__(self, layer: nn.Module, cfg: NatConfig):
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"NoiseAware wraps nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        self.layer = layer
        self.nu, self.nu_test = cfg.nu, cfg.nu_test
        self.act = (None if cfg.act_bits is None
                    else Pact(cfg.act_bits, cfg.act_alpha, cfg.act_signed))
        self.adc = (None if cfg.adc_bits is None
                    else Adc(cfg.adc_bits, cfg.adc_mode, cfg.srmp, cfg.tau, cfg.sigma_floor))
        self.register_buffer("offset", torch.zeros(self._n_out()))
        """Per-output ADC offset recorded by calibration, subtracted after conversion."""

    def _n_out(self) -> int:
        return self.layer.out_features if isinstance(self.layer, nn.Linear) else \
            self.layer.out_channels

    def mvm(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output before the ADC (input quantised, weights noisy)."""
        if self.act is not None:
            x = self.act(x)
        nu = self.nu if self.training else self.nu_test
        w = noisy_weight(self.layer.weight, nu)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mvm(x)
        if self.adc is not None:
            n = None
            # the STE trains without the noise model, so it needs no word-line count then
            if not self.adc.srmp.off and not (self.training and self.adc.mode == "ste"):
                xq = self.act(x) if self.act is not None else x
                n = active_lines(self.layer, xq.detach())
            y = self.adc(y, n)
        shape = (-1,) + (1,) * (y.dim() - 2)
        return y - self.offset.view(shape)


def noise_aware(model: nn.Module, cfg: NatConfig) -> nn.Module:
    """Wrap every Linear and Conv2d of ``model`` in place and return the model.

    A bare Linear or Conv2d comes back wrapped (use the return value). A model that is
    already noise-aware is refused: change its noise with :func:`set_noise`, or start again
    from :func:`plain`.
    """
    if isinstance(model, (nn.Linear, nn.Conv2d)):
        return NoiseAware(model, cfg)
    if isinstance(model, NoiseAware) or aware_layers(model):
        raise ValueError("noise_aware: the model is already noise-aware; change its noise "
                         "with set_noise, or start again from plain(model)")
    _wrap(model, cfg)
    if not aware_layers(model):
        raise ValueError("noise_aware: the model has no nn.Linear or nn.Conv2d layer to wrap")
    return model


def _wrap(module: nn.Module, cfg: NatConfig) -> None:
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, NoiseAware(child, cfg))
        else:
            _wrap(child, cfg)


def aware_layers(model: nn.Module) -> list[NoiseAware]:
    """The NoiseAware layers in forward-definition order."""
    return [m for m in model.modules() if isinstance(m, NoiseAware)]


def set_noise(model: nn.Module, nu: float | None = None, nu_test: float | None = None):
    """Change the training and/or evaluation weight noise of every NoiseAware layer."""
    layers = [model] if isinstance(model, NoiseAware) else aware_layers(model)
    for m in layers:
        if nu is not None:
            m.nu = check_nu(nu, "training weight noise nu")
        if nu_test is not None:
            m.nu_test = check_nu(nu_test, "test weight noise nu_test")
    return model


def _unwrap(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, NoiseAware):
            setattr(module, name, child.layer)
        else:
            _unwrap(child)


def plain(model: nn.Module) -> nn.Module:
    """A copy with every NoiseAware layer replaced by its bare layer (same weights)."""
    out = copy.deepcopy(model).cpu().eval()
    if isinstance(out, NoiseAware):
        return out.layer
    _unwrap(out)
    return out


def quant_settings(model: nn.Module) -> list[dict]:
    """Per layer, what a plain export leaves out: input clip and bits, ADC step and bits,
    the recorded offsets (a list, in layer order, to store next to the TorchScript file)."""
    out = []
    for m in aware_layers(model):
        d = {"layer": type(m.layer).__name__, "nu_test": m.nu_test}
        if m.act is not None:
            d.update(act_bits=m.act.bits, act_signed=m.act.signed,
                     act_alpha=float(m.act.alpha.detach().abs()))
        if m.adc is not None:
            d.update(adc_bits=m.adc.bits, adc_step=float(m.adc.alpha.detach().abs()),
                     adc_mode=m.adc.mode)
        d["offset"] = [float(v) for v in m.offset]
        out.append(d)
    return out
