"""Programming-mode cell selection (docs/model.md#operating-modes).

In programming mode the drivers address one cell: the one whose row (BL) register and
column (SL) register both hold 1, every other register holding 0. This block turns the
register values into per-line select masks for the BL/WL and SL drivers and checks the
selection: ``sel_ok`` is high when exactly one row and exactly one column are selected.
A programming command must not start otherwise: the controller reads ``sel_ok`` (cause
"selection" in docs/command_set.md) and ``check`` here makes the block pulse its own
``error`` the cycle after a start with a bad selection, for a top level that wants it.

"Holds 1" means the W-bit register equals 1 (sign 0, magnitude 1); any other value,
including -1 or 2, leaves the line unselected.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

__all__ = ["ProgDrivers", "one_hot"]


def one_hot(x):
    """1 when exactly one bit of ``x`` is set: linear in width (no popcount)."""
    return (x != 0) & ((x & (x - 1))[: len(x)] == 0)


class ProgDrivers(wiring.Component):
    """Ports: ``bl_values`` In rows*W, ``sl_values`` In cols*W, ``check`` In 1;
    ``prog_sel_bl`` Out rows, ``prog_sel_sl`` Out cols, ``sel_ok`` Out 1, ``error`` Out 1."""

    def __init__(self, config: CoreConfig):
        self._config = config
        w = config.line_bits
        super().__init__({
            "bl_values": In(config.rows * w),
            "sl_values": In(config.cols * w),
            "check": In(1),
            "prog_sel_bl": Out(config.rows),
            "prog_sel_sl": Out(config.cols),
            "sel_ok": Out(1),
            "error": Out(1),
        })

    @property
    def config(self) -> CoreConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        w = cfg.line_bits
        m = Module()
        # split each bus once; slicing inside the per-line loop is quadratic
        bl = [Signal(w, name=f"bl{k}") for k in range(cfg.rows)]
        sl = [Signal(w, name=f"sl{k}") for k in range(cfg.cols)]
        m.d.comb += [Cat(*bl).eq(self.bl_values), Cat(*sl).eq(self.sl_values)]
        m.d.comb += [
            self.prog_sel_bl.eq(Cat(v == 1 for v in bl)),
            self.prog_sel_sl.eq(Cat(v == 1 for v in sl)),
            self.sel_ok.eq(one_hot(self.prog_sel_bl) & one_hot(self.prog_sel_sl)),
        ]
        m.d.sync += self.error.eq(self.check & ~self.sel_ok)
        return m
