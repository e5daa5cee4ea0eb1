"""AnalogSGD: plain torch SGD for digital parameters, pulsed updates for analog tiles.

The training loop stays ordinary (zero_grad, loss.backward(), step). ``step`` turns the
(x, d) pairs each analog layer recorded during backward into one pulsed update per tile at
the group's learning rate; every other parameter takes torch's SGD step.
"""

from __future__ import annotations

import torch

__all__ = ["AnalogSGD"]


class AnalogSGD(torch.optim.SGD):
    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's, but returns at once when no parameter holds a gradient (an all-analog
        model: the tiles keep their own records), skipping its profiler region per step."""
        if any(p.grad is not None for g in self.param_groups for p in g["params"]):
            super().zero_grad(set_to_none)

    def step(self, closure=None):
        """The pulsed updates work on buffers and records that carry no autograd history, and
        torch's SGD step sets its own grad mode: no ``no_grad`` region needed (1-2 us)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        digital = False
        for group in self.param_groups:
            for p in group["params"]:
                tile = getattr(p, "_rpu_tile", None)
                if tile is not None:
                    if p.grad is not None:
                        p.grad = None  # the zero-size context carries no gradient
                    tile.step(group["lr"])
                elif p.grad is not None:
                    digital = True
        if digital:
            super().step()
        return loss
