"""Device models: how one RPU cross-point responds to one coincidence (Gokmen & Vlasov 2016).

A device *model* is a frozen dataclass of parameters; :meth:`sample` draws the per-cell
quantities fixed for a run (device-to-device variation) into a :class:`DeviceState`. The
response to n same-sign coincidences is applied in closed form by :mod:`.closed_form`.

Step sizes, for a coincidence in direction d = +1 (up) or -1 (down), cell (i, j):

    |dw_d| = dw_min * (1 + d*beta_ij + dw_min_dtod*xi_ij),   beta_ij = up_down + up_down_dtod*xi'_ij

and every coincidence is further scaled by (1 + dw_min_std*xi) drawn anew (cycle-to-cycle,
multiplicative as in Gokmen & Vlasov 2016). Bounds b_max = w_max*(1 + w_max_dtod*xi''),
b_min = w_min*(1 + w_min_dtod*xi'''), kept on their side of zero.

* :class:`ConstantStepDevice`: w += d*|dw_d|, clipped to [b_min, b_max] (hard bounds).
* :class:`SoftBoundsDevice`: up steps shrink linearly to 0 at b_max, down steps at b_min:
  up  w += |dw_up|*(1 - w/b_max),  down  w -= |dw_down|*(1 - w/b_min). Its symmetry point
  (up step = down step) is w* = (a+ - a-)/(a+/b_max - a-/b_min) (Gokmen & Haensch 2020).
* :class:`IdealDevice`: constant step without variation or bounds.

Defaults are the RPU device of Gokmen & Vlasov 2016, Table 1 (docs/rpu_training.md lists
them row by row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

__all__ = ["ConstantStepDevice", "SoftBoundsDevice", "IdealDevice", "DeviceState"]


@dataclass
class DeviceState:
    """Per-cell quantities of one array, fixed for a run. Tensors share the weight's shape."""

    dw_up: torch.Tensor  # step magnitude of an up coincidence (>= 0)
    dw_down: torch.Tensor  # step magnitude of a down coincidence (>= 0)
    b_max: torch.Tensor  # upper bound (> 0, or +inf)
    b_min: torch.Tensor  # lower bound (< 0, or -inf)
    c2c: float  # cycle-to-cycle std, relative, per coincidence
    soft: bool  # soft bounds (True) or constant step with hard bounds (False)

    packed: torch.Tensor | None = None  # the four tensors stacked, when they came so

    @classmethod
    def unpack(cls, packed: torch.Tensor, c2c: float, soft: bool) -> DeviceState:
        """From one (4, ...) tensor: dw_up, dw_down, b_max, b_min (views, no copy)."""
        return cls(packed[0], packed[1], packed[2], packed[3], c2c, soft, packed)

    def pack(self) -> torch.Tensor:
        if self.packed is not None:
            return self.packed
        return torch.stack([self.dw_up, self.dw_down, self.b_max, self.b_min])

    def rows(self, idx: torch.Tensor) -> DeviceState:
        """The cells of output rows ``idx`` (first dimension): one gather."""
        return DeviceState.unpack(self.pack().index_select(1, idx), self.c2c, self.soft)

    def cols(self, sl: slice) -> DeviceState:
        """The cells of input columns ``sl`` (second dimension), as views."""
        return DeviceState.unpack(self.pack()[:, :, sl], self.c2c, self.soft)

    def to(self, device) -> DeviceState:
        t = {k: getattr(self, k).to(device) for k in ("dw_up", "dw_down", "b_max", "b_min")}
        return DeviceState(**t, c2c=self.c2c, soft=self.soft)

    def symmetry_point(self) -> torch.Tensor:
        """w* where an up step equals a down step (soft bounds); 0 for constant step."""
        if not self.soft:
            return torch.zeros_like(self.dw_up)
        ap, am = self.dw_up, self.dw_down
        return (ap - am) / (ap / self.b_max - am / self.b_min)

    def clip(self, w: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(w, self.b_min), self.b_max)


@dataclass(frozen=True)
class ConstantStepDevice:
    """Constant step with hard bounds. Field names follow the common RPU-simulator names."""

    dw_min: float = 0.001
    """Mean weight change of one coincidence (Table 1: 0.001)."""
    dw_min_dtod: float = 0.3
    """Device-to-device spread of dw_min, relative std (Table 1: 30 %)."""
    dw_min_std: float = 0.3
    """Cycle-to-cycle spread of each coincidence, relative std (Table 1: 30 %)."""
    up_down: float = 0.0
    """Global up/down imbalance beta: up steps (1 + beta), down steps (1 - beta)."""
    up_down_dtod: float = 0.01
    """Device-to-device std of beta (0.01 gives about 2 % on the up/down ratio, Table 1)."""
    w_max: float = 0.6
    """Mean upper bound (Table 1: |w| <= 0.6, 1200 states of dw_min)."""
    w_min: float = -0.6
    """Mean lower bound."""
    w_max_dtod: float = 0.3
    """Device-to-device spread of the bounds, relative std (Table 1: 30 %)."""
    w_min_dtod: float = 0.3

    soft = False

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
                raise ValueError(f"{type(self).__name__}.{f.name} must be a number, got {v!r}")
        if not self.dw_min > 0:
            raise ValueError(f"dw_min must be > 0, got {self.dw_min}")
        if not self.w_min < 0 < self.w_max:
            raise ValueError(f"need w_min < 0 < w_max, got [{self.w_min}, {self.w_max}]")
        for name in ("dw_min_dtod", "dw_min_std", "up_down_dtod", "w_max_dtod", "w_min_dtod"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if abs(self.up_down) >= 1:
            raise ValueError(f"up_down must lie in (-1, 1), got {self.up_down}")

    @property
    def states(self) -> float:
        """(w_max - w_min) / dw_min: the number of steps between the mean bounds."""
        return (self.w_max - self.w_min) / self.dw_min

    def sample(self, shape, generator: torch.Generator | None = None, device=None,
               dtype=torch.float32) -> DeviceState:
        """Draw the per-cell parameters (device-to-device variation) of one array."""
        def randn():
            return torch.randn(shape, generator=generator, device=device, dtype=dtype)

        scale = (1 + self.dw_min_dtod * randn()).clamp_min(0)
        beta = self.up_down + self.up_down_dtod * randn()
        dw_up = self.dw_min * (scale + beta).clamp_min(0)
        dw_down = self.dw_min * (scale - beta).clamp_min(0)
        b_max = self.w_max * (1 + self.w_max_dtod * randn())
        b_min = self.w_min * (1 + self.w_min_dtod * randn())
        if self.soft:
            # a soft bound at (or past) zero would divide by zero: keep it two steps away
            b_max = torch.maximum(b_max, 2 * dw_up).clamp_min(2 * self.dw_min)
            b_min = torch.minimum(b_min, -2 * dw_down).clamp_max(-2 * self.dw_min)
        else:
            b_max, b_min = b_max.clamp_min(0), b_min.clamp_max(0)
        return DeviceState(dw_up, dw_down, b_max, b_min, float(self.dw_min_std), self.soft)


@dataclass(frozen=True)
class SoftBoundsDevice(ConstantStepDevice):
    """Step size falling linearly to zero at the bound; symmetry point where up = down."""

    soft = True


def IdealDevice(dw_min: float = 0.001) -> ConstantStepDevice:  # noqa: N802 - reads as a model
    """Constant step without any variation or bound: the update of Eq. 1.2 exactly."""
    return ConstantStepDevice(dw_min=dw_min, dw_min_dtod=0.0, dw_min_std=0.0,
                              up_down_dtod=0.0, w_max=math.inf, w_min=-math.inf,
                              w_max_dtod=0.0, w_min_dtod=0.0)
