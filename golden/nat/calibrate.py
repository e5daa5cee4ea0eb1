"""Model-driven calibration: per layer, an operating point that fills the ADC range.

Wan et al. 2022 (main text "Hardware-algorithm co-optimizations", and Methods) choose each
layer's operating conditions on a subset of *training* data so that the MVM outputs fill
the ADC swing without saturating, and record the ADC offsets for cancellation. Here, per
NoiseAware layer in forward order (each layer sees the inputs its calibrated predecessors
give it):

* PACT clip level: the ``pct`` percentile of the layer's non-zero |input| (``act=True``);
* ADC step: the smallest step whose level grid covers the ``pct`` and ``100 - pct``
  percentiles of the pre-ADC output (``adc=True``);
* chip operating point (:func:`operating_point`, on the ideal charges of
  :func:`layer_charge`): V_read lowered from its maximum until the ``pct`` percentile of
  the integrated charge stays within ``headroom`` of the integrator swing and the V_decr
  that puts the ADC full scale 2 C_s V_decr at that percentile is within the DAC's range
  (docs/model.md#calibration);
* offsets (:func:`record_offsets`): the mean per output of (measured - reference) over the
  calibration inputs, subtracted after conversion. ``measure`` is any callable giving a
  layer's measured pre-ADC output for its inputs, the software model here and the chip's
  runtime in a chip-in-the-loop flow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..neuron import C_INTEG, C_SAMPLE
from .aware import NoiseAware, aware_layers
from .concrete import level_indices

__all__ = ["OperatingPoint", "operating_point", "layer_charge", "differential", "adc_step",
           "record_offsets",
           "layer_inputs", "calibrate", "G_MIN_US", "G_MAX_US"]

G_MIN_US, G_MAX_US = 1.0, 40.0
"""Conductance range of the differential encoding (docs/model.md#differential-weight-encoding)."""


@dataclass(frozen=True)
class OperatingPoint:
    v_read: float
    v_decr: float
    q_hi: float
    """Calibration percentile of |charge|, in units of C_sample * V_read."""
    clipped: float
    """Fraction of the calibration charges beyond the ADC full scale."""


def operating_point(q: torch.Tensor, swing: float = 0.5, v_read_max: float = 0.5,
                    v_decr_max: float = 0.5, headroom: float = 0.9,
                    pct: float = 99.9) -> OperatingPoint:
    """V_read and V_decr for charges ``q`` (units of C_sample * V_read) of one layer.

    The integrator holds C_s V_read q / C_integ volts; it must stay below ``headroom`` *
    ``swing`` at the percentile. The ADC full scale 2 C_s V_decr equals C_s V_read q_hi, and
    V_decr (a DAC rail offset) is at most ``v_decr_max``; V_read is the largest value, at
    most ``v_read_max``, that meets both (the largest signal-to-noise ratio).
    """
    if not (swing > 0 and v_read_max > 0 and v_decr_max > 0 and 0 < headroom <= 1
            and 0 < pct <= 100):
        raise ValueError("operating_point needs swing, v_read_max, v_decr_max > 0, "
                         f"0 < headroom <= 1 and 0 < pct <= 100; got {swing}, {v_read_max}, "
                         f"{v_decr_max}, {headroom}, {pct}")
    a = q.detach().abs().flatten().double().cpu().numpy()
    q_hi = max(float(np.percentile(a, pct)), 1e-12)
    v_read = min(v_read_max, headroom * swing * C_INTEG / (C_SAMPLE * q_hi),
                 2 * v_decr_max / q_hi)
    v_decr = v_read * q_hi / 2
    return OperatingPoint(v_read, v_decr, q_hi, float(np.mean(a > q_hi)))


def differential(w: torch.Tensor, g_min: float = G_MIN_US, g_max: float = G_MAX_US):
    """G+ and G- (uS) of weights ``w``: max(+-g_max W / w_max, g_min), w_max = max|W|."""
    w_max = w.abs().max().clamp_min(1e-30)
    return (torch.clamp(g_max * w / w_max, min=g_min), torch.clamp(-g_max * w / w_max, min=g_min))


@torch.no_grad()
def layer_charge(layer: NoiseAware, x: torch.Tensor) -> torch.Tensor:
    """Ideal integrated charge (units of C_s V_read) of every output of ``layer`` at ``x``.

    Inputs become the integer codes of the layer's PACT quantiser; weights become
    differential conductances; each output's charge is sum_i code_i (G+ - G-)_ij / Den_j
    with Den_j = sum_i (G+_ij + G-_ij) over the layer's rows
    (docs/model.md#voltage-mode-mvm, docs/model.md#bit-serial-inputs). Bias rows are left
    out: the compiler decides how many there are.
    """
    codes = x if layer.act is None else layer.act.integers(x)
    w = layer.layer.weight.detach()
    gp, gn = differential(w)
    den = (gp + gn).reshape(w.shape[0], -1).sum(1).view((-1,) + (1,) * (w.dim() - 1))
    wd = (gp - gn) / den
    if isinstance(layer.layer, torch.nn.Linear):
        return torch.nn.functional.linear(codes, wd)
    return layer.layer._conv_forward(codes, wd, None)


def adc_step(y: torch.Tensor, bits: int, pct: float = 99.9) -> float:
    """Smallest step whose grid alpha * (-2^(b-1) .. 2^(b-1) - 1) covers the percentiles."""
    a = y.detach().flatten().double().cpu().numpy()
    hi, lo = float(np.percentile(a, pct)), float(np.percentile(a, 100 - pct))
    k = level_indices(bits)
    cand = [1e-12]
    if k[-1] > 0 and hi > 0:
        cand.append(hi / float(k[-1]))
    if lo < 0:
        cand.append(-lo / float(-k[0]))
    return max(cand)


def record_offsets(measured: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean of (measured - reference) per output channel (dim 1), over all other dims."""
    if measured.shape != reference.shape:
        raise ValueError(f"offset calibration: measured shape {tuple(measured.shape)} differs "
                         f"from the reference {tuple(reference.shape)}")
    d = (measured - reference).detach().transpose(0, 1).reshape(measured.shape[1], -1)
    return d.mean(1)


class _Stop(Exception):
    pass


@torch.no_grad()
def layer_inputs(model: torch.nn.Module, x: torch.Tensor, layer: NoiseAware) -> torch.Tensor:
    """The input ``layer`` receives when ``model`` runs on ``x`` (the rest is not run)."""
    got = []

    def hook(_m, args):
        got.append(args[0])
        raise _Stop

    h = layer.register_forward_pre_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        h.remove()
    if not got:
        raise ValueError("calibration: the layer is not reached by the model's forward pass")
    return got[0]


Measure = Callable[[int, NoiseAware, torch.Tensor], torch.Tensor]


@torch.no_grad()
def calibrate(model: torch.nn.Module, x_cal: torch.Tensor, *, act: bool = True,
              adc: bool = True, measure: Measure | None = None, pct: float = 99.9,
              swing: float = 0.5) -> list[OperatingPoint]:
    """Calibrate every NoiseAware layer of ``model`` on ``x_cal`` in order (module docstring).

    Evaluation mode, weight noise off while calibrating; returns the chip operating points.
    Before training, the defaults initialise the clip levels and ADC steps; after training,
    ``act=False, adc=False`` gives the operating points (and, with ``measure``, the offsets)
    without moving what training learnt.
    """
    was_training = model.training
    model.eval()
    layers = aware_layers(model)
    if not layers:
        raise ValueError("calibrate: the model has no NoiseAware layers (apply noise_aware)")
    saved = [m.nu_test for m in layers]
    for m in layers:
        m.nu_test = 0.0
    points = []
    try:
        for i, m in enumerate(layers):
            x = layer_inputs(model, x_cal, m)
            if act and m.act is not None:
                nz = x.abs()[x != 0]
                if nz.numel():
                    m.act.alpha.fill_(float(np.percentile(nz.double().cpu().numpy(), pct)))
            y = m.mvm(x)
            if adc and m.adc is not None:
                m.adc.set_step(adc_step(y, m.adc.bits, pct))
            points.append(operating_point(layer_charge(m, x), swing=swing, pct=pct))
            if measure is not None:
                m.offset.copy_(record_offsets(measure(i, m, x), y))
    finally:
        for m, nu in zip(layers, saved, strict=True):
            m.nu_test = nu
        model.train(was_training)
    return points
