"""The update step the generated core performs, in conductance codes (the RTL replay reference).

The FPGA core's behavioural macro (docs/core_architecture.md) models every cell as a
deterministic constant-step device on its unsigned conductance code: a coincidence of a
row and a column pulse in an up phase adds ``step`` codes, in a down phase subtracts them,
clamped to [0, 2^g_bits - 1]. Within one update every coincidence at a cell has the sign
of x_i * delta_j (Gokmen & Vlasov 2016, up/down phases), so clamping once after the net
count equals clamping per pulse, and the codes after ``RPU_UPDATE`` are

    code'_ij = clip(code_ij + n_ij * step, 0, 2^g_bits - 1),

n_ij the signed coincidences of the bit-exact LFSR and stochastic-translator streams
(:class:`~.pulses.LfsrSource`, fed the thresholds the core loads from its line registers).

Weight view: with a midpoint code c0 (0 < c0 < 2^g_bits - 1) a code is the weight
w = c - c0 in units of one code, and the same cell is the golden
:class:`~.devices.ConstantStepDevice` of :func:`code_device` (dw_min = step, bounds -c0 and
2^g_bits - 1 - c0, no variation): the golden training step on that device, driven by the
same LFSR seeds, gives the same codes (exact in float32 while codes stay below 2^24).
"""

from __future__ import annotations

import numpy as np

from ..stochastic_translator import line_thresholds
from .devices import ConstantStepDevice
from .pulses import LfsrSource

__all__ = ["rtl_code_step", "code_device"]


def _g_max(g_bits: int) -> int:
    if not 1 <= g_bits <= 24:
        raise ValueError(f"g_bits = {g_bits} is out of range [1, 24]")
    return (1 << g_bits) - 1


def rtl_code_step(source: LfsrSource, codes, words, gain_code: int, bl: int, step: int,
                  g_bits: int = 16) -> np.ndarray:
    """Codes (rows x cols) after one ``RPU_UPDATE`` of BL ``bl`` with gain register
    ``gain_code``, from the line-register ``words`` (rows first, then columns; W-bit
    sign-magnitude, sign 1 = positive) and ``step`` codes per coincidence.

    ``source`` holds the chains as the RTL's stand when the update starts (seeded like the
    core, advanced by every earlier update and noise injection); it advances with the update.
    """
    cfg = source.config
    g_max = _g_max(g_bits)
    c = np.asarray(codes)
    if c.shape != (cfg.rows, cfg.cols):
        raise ValueError(f"codes must have shape ({cfg.rows}, {cfg.cols}), got {c.shape}")
    c = c.astype(np.int64)
    if c.size and (c.min() < 0 or c.max() > g_max):
        raise ValueError(f"codes must lie in [0, {g_max}] (g_bits = {g_bits})")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) \
            or not 0 <= step <= g_max:
        raise ValueError(f"step = {step!r} must be an integer in [0, {g_max}]")
    thr, sign = line_thresholds(cfg, words, gain_code)
    r = cfg.rows
    n, _, _ = source.register_counts(thr[:r], sign[:r], thr[r:], sign[r:], bl)
    return np.clip(c + n * int(step), 0, g_max)


def code_device(step: float, midpoint: int, g_bits: int = 16) -> ConstantStepDevice:
    """The golden device of one RTL cell in the weight view w = code - ``midpoint``."""
    g_max = _g_max(g_bits)
    if not 0 < midpoint < g_max:
        raise ValueError(f"midpoint = {midpoint} must lie in (0, {g_max})")
    return ConstantStepDevice(dw_min=float(step), dw_min_dtod=0.0, dw_min_std=0.0, up_down=0.0,
                              up_down_dtod=0.0, w_max=float(g_max - midpoint),
                              w_min=float(-midpoint), w_max_dtod=0.0, w_min_dtod=0.0)
