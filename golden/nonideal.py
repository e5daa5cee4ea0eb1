"""Switchable non-idealities of one core; every one is off by default.

Static effects (programming error, relaxation) change the array's conductances once, so
both model levels see them alike. Dynamic ones (read noise, IR drop, comparator noise) are
applied by the algorithmic level only. ADC offset and integrator swing are integer-charge
effects that the cycle level reproduces exactly too.

Models (each deliberately simple, for a golden reference rather than device physics):

* programming error: G += N(0, prog_sigma_us^2) per cell (residual after write-verify).
* relaxation: G += N(0, (relax_scale * sigma(G))^2), sigma(G) = 1.536e-4 G^3 - 1.167e-2 G^2
  + 0.2374 G + 1.053 uS (CrossSim ``RRAM_Wan`` fit, G clamped to its range 0..39.26 uS).
  The fit averages 2.06 uS over 1..40 uS and peaks at 2.5 uS near 14 uS, i.e. it matches
  the paper's ~2 uS std *after* 3 write-verify iterations (docs/model.md#relaxation); use
  relax_scale = 1/0.71 for a single programming pass (~2.8 uS).
* read noise: Gaussian on every sampled line voltage, std read_noise_v (kT/C of C_sample),
  independent on each of the 2^(m-1) samples of a pulse.
* line noise: Gaussian on the settled line voltage, std line_noise_v, drawn once per WL pulse
  and frozen on the floating line, so every sample of that pulse carries it (RRAM read noise
  and the line's thermal noise at the end of the pulse). Both are volts: the signal scales
  with V_read and they do not, so lowering V_read (headroom) costs signal-to-noise.
* IR drop: each input line is driven through its driver's output resistance ir_drop_ohm
  (lumped with the wire) into the line's load, the sum of its cells' conductances to the
  floating outputs held near V_ref, so the line's swing is scaled by 1 / (1 + R sum_j G_ij):
  the drop grows with the cells one driver drives (64 per BL forward, 128 per SL backward
  for a 64 x 64 matrix on differential rows).
* ADC offset: a static per-neuron comparator offset, N(0, adc_offset_v^2) referred to the
  integrator node (what is left after calibration, docs/model.md#calibration, cancels the mean).
* ADC dynamic range: the integrator saturates at +/- integrator_swing_v, the headroom
  clipping that grows with the number of integration cycles (docs/model.md#bit-serial-inputs).
* small read margin: logistic comparator noise of scale cmp_noise_v (docs/model.md#non-idealities)
  on every comparison, so thresholds become probabilistic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from .fast_random import logistic
from .neuron import integ_units

__all__ = [
    "NonIdeal", "relaxation_sigma", "inject_weight_noise", "REALISTIC", "NEURRAM_FIT",
    "KT_OVER_C_SAMPLE_V",
]

_RELAX_G_MAX = 39.26


def relaxation_sigma(g: np.ndarray) -> np.ndarray:
    """CrossSim fit of the relaxation std (uS) at conductance g (uS)."""
    g = np.clip(np.asarray(g, dtype=np.float64), 0.0, _RELAX_G_MAX)
    return ((1.536e-4 * g - 1.167e-2) * g + 0.2374) * g + 1.053


@dataclass(frozen=True)
class NonIdeal:
    """Non-ideality switches and parameters (all off by default)."""

    prog_sigma_us: float = 0.0
    relaxation: bool = False
    relax_scale: float = 1.0
    read_noise_v: float = 0.0
    ir_drop_ohm: float = 0.0
    adc_offset_v: float = 0.0
    integrator_swing_v: float | None = None
    cmp_noise_v: float = 0.0
    line_noise_v: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "relaxation":
                if not isinstance(v, bool):
                    raise ValueError(f"relaxation must be a bool, got {v!r}")
            elif v is not None and not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"{f.name} must be a number >= 0, got {v!r}")
        if self.integrator_swing_v is not None and not self.integrator_swing_v > 0:
            raise ValueError(f"integrator_swing_v must be > 0, got {self.integrator_swing_v}")

    @property
    def ideal(self) -> bool:
        return self == NonIdeal()

    @property
    def dynamic(self) -> bool:
        """True if an effect needs the float path (the cycle level does not model it)."""
        return bool(self.read_noise_v or self.line_noise_v or self.ir_drop_ohm
                    or self.cmp_noise_v)

    @property
    def random(self) -> bool:
        """True if an MVM under these effects draws random numbers."""
        return bool(self.read_noise_v or self.line_noise_v or self.cmp_noise_v
                    or self.adc_offset_v)

    # ------------------------------------------------------------- static effects
    def perturb(self, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actual conductances from the targets; unformed cells (0 uS) stay at 0."""
        g = np.array(target, dtype=np.float64)
        formed = g > 0
        if self.prog_sigma_us:
            g += formed * rng.normal(0.0, self.prog_sigma_us, g.shape)
        if self.relaxation:
            g += formed * rng.normal(0.0, 1.0, g.shape) * self.relax_scale * relaxation_sigma(g)
        return np.maximum(g, 0.0)

    def offsets(self, n: int, v_read: float, rng) -> np.ndarray:
        """Per-neuron comparator offsets in charge units (int64); ``rng`` a NumPy or a
        torch Generator."""
        if not self.adc_offset_v:
            return np.zeros(n, np.int64)
        if isinstance(rng, torch.Generator):  # drawn where the generator lives
            z = torch.randn(n, generator=rng, device=rng.device, dtype=torch.float64)
            v = z.cpu().numpy() * self.adc_offset_v
        else:
            v = rng.normal(0.0, self.adc_offset_v, n)
        return np.rint(v * integ_units(1.0, v_read)).astype(np.int64)

    def clip_units(self, v_read: float) -> int | None:
        if self.integrator_swing_v is None:
            return None
        return int(integ_units(self.integrator_swing_v, v_read))

    # ------------------------------------------------------------- dynamic effects
    def line_gain(self, g_in_by_out: np.ndarray) -> np.ndarray:
        """IR-drop gain of every input line; g_in_by_out is (input lines, output lines) uS."""
        load = g_in_by_out.sum(axis=1) * 1e-6
        return 1.0 / (1.0 + self.ir_drop_ohm * load)

    def cmp_noise(self, v_read: float, rng: np.random.Generator):
        """Comparator noise function for the ADC (charge units), or None when off."""
        if not self.cmp_noise_v:
            return None
        scale = self.cmp_noise_v * integ_units(1.0, v_read)
        return lambda shape: logistic(rng, shape, scale)


REALISTIC = NonIdeal(
    relaxation=True, relax_scale=1.0, read_noise_v=2e-3, ir_drop_ohm=100.0,
    adc_offset_v=1e-3, integrator_swing_v=0.5, cmp_noise_v=0.5e-3,
)
"""The set used by the mvm-rmse experiment. Relaxation is the CrossSim fit (the state after
3 programming iterations, as for the paper's measurement); the voltages are assumptions (no
chip value is published): 2 mV per-sample read noise, 100 ohm driver, 1 mV residual
offset, +/-0.5 V integrator swing, 0.5 mV
logistic comparator noise."""


def inject_weight_noise(w: np.ndarray, nu: float, rng: np.random.Generator) -> np.ndarray:
    """Training-time noise injection W + N(0, (nu max|W|)^2), a fresh draw per call
    (docs/model.md#training-noise)."""
    w = np.asarray(w, dtype=np.float64)
    if not nu >= 0:
        raise ValueError(f"nu must be >= 0, got {nu}")
    return w + rng.normal(0.0, nu * float(np.max(np.abs(w))), w.shape)


KT_OVER_C_SAMPLE_V = 0.49e-3
"""sqrt(k T / C_sample) at 300 K and C_sample = 17 fF (Wan et al. 2022, Methods): the
sampling capacitor's thermal noise, 0.49 mV rms per sample."""

NEURRAM_FIT = NonIdeal(
    prog_sigma_us=1.0 / 3**0.5, relaxation=True, relax_scale=1.0,
    read_noise_v=KT_OVER_C_SAMPLE_V, line_noise_v=0.0248, ir_drop_ohm=100.0,
    adc_offset_v=1e-3, integrator_swing_v=0.5, cmp_noise_v=0.5e-3,
)
"""The golden chip calibrated to Extended Data Fig. 5a (docs/golden_results.md#mvm-rmse).
prog_sigma_us: the +-1 uS write-verify acceptance as a uniform residual, 1/sqrt(3) uS
(paper); relaxation: the CrossSim fit, the paper's ~2 uS after 3 rounds (paper, fit);
read_noise_v: kT/C of C_sample (physics); line_noise_v: the one parameter fitted, to the
forward 4-bit r.m.s.e. 0.582 (``cimflow experiment mvm-rmse-fit``); ir_drop_ohm: the driver's
output resistance, adc_offset_v, integrator_swing_v, cmp_noise_v: assumptions, as REALISTIC."""
