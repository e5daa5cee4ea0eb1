"""Programming-mode cell selection (docs/model.md#operating-modes).

In programming mode the drivers address one cell: the one whose row (BL) register and
column (SL) register both hold 1, every other register holding 0. This block turns the
register values into per-line select masks for the BL/WL and SL drivers and checks the
selection: ``sel_ok`` is high when exactly one row and exactly one column are selected.
A programming command must not start otherwise: the controller reads ``sel_ok`` and refuses
PROGRAM with cause SELECTION (docs/command_set.md).

"Holds 1" means the W-bit register equals 1 (sign 0, magnitude 1); any other value,
including -1 or 2, leaves the line unselected.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import lines, require_config

__all__ = ["ProgDrivers", "one_hot"]


def one_hot(x):
    """1 when exactly one bit of ``x`` is set: linear in width (no popcount)."""
    return (x != 0) & ((x & (x - 1))[: len(x)] == 0)


class ProgDrivers(wiring.Component):
    """Ports: ``bl_values`` In rows*W, ``sl_values`` In cols*W; ``prog_sel_bl`` Out rows,
    ``prog_sel_sl`` Out cols, ``sel_ok`` Out 1."""

    def __init__(self, config: CoreConfig):
        require_config(self, config)
        self._config = config
        w = config.line_bits
        super().__init__({
            "bl_values": In(config.rows * w),
            "sl_values": In(config.cols * w),
            "prog_sel_bl": Out(config.rows),
            "prog_sel_sl": Out(config.cols),
            "sel_ok": Out(1),
        })

    @property
    def config(self) -> CoreConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        w = cfg.line_bits
        m = Module()
        bl = lines(m, self.bl_values, cfg.rows, w, "bl")
        sl = lines(m, self.sl_values, cfg.cols, w, "sl")
        m.d.comb += [
            self.prog_sel_bl.eq(Cat(bl[k] == 1 for k in range(cfg.rows))),
            self.prog_sel_sl.eq(Cat(sl[k] == 1 for k in range(cfg.cols))),
            self.sel_ok.eq(one_hot(self.prog_sel_bl) & one_hot(self.prog_sel_sl)),
        ]
        return m
