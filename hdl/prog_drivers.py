"""Programming-mode cell selection (docs/model.md#operating-modes).

In programming mode the drivers address one cell: the one whose row (BL) register and
column (SL) register both hold 1, every other register holding 0. The line registers keep
one registered "holds 1" flag per line (``LineRegisters.bl_is_one`` / ``sl_is_one``); this
block turns them into the select masks of the BL/WL and SL drivers and checks the
selection: ``sel_ok`` is high when exactly one row and exactly one column are selected.
A programming command must not start otherwise: the controller reads ``sel_ok`` and refuses
PROGRAM with cause SELECTION (docs/command_set.md).

"Holds 1" means the W-bit register equals 1 (sign 0, magnitude 1); any other value,
including -1 or 2, leaves the line unselected.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import ConfiguredComponent

__all__ = ["ProgDrivers", "one_hot"]


def one_hot(x):
    """1 when exactly one bit of ``x`` is set: a balanced tree of (any, several) pairs, so
    its depth is logarithmic in the width (no carry chain, no popcount)."""
    nodes = [(x[k], 0) for k in range(len(x))]
    while len(nodes) > 1:
        pairs = []
        for i in range(0, len(nodes) - 1, 2):
            (a_any, a_many), (b_any, b_many) = nodes[i], nodes[i + 1]
            pairs.append((a_any | b_any, a_many | b_many | (a_any & b_any)))
        if len(nodes) % 2:
            pairs.append(nodes[-1])
        nodes = pairs
    any_set, several = nodes[0]
    return any_set & ~several


class ProgDrivers(ConfiguredComponent):
    """Ports: ``bl_is_one`` In rows, ``sl_is_one`` In cols (the line registers' flags);
    ``prog_sel_bl`` Out rows, ``prog_sel_sl`` Out cols, ``sel_ok`` Out 1."""

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        super().__init__({
            "bl_is_one": In(config.rows),
            "sl_is_one": In(config.cols),
            "prog_sel_bl": Out(config.rows),
            "prog_sel_sl": Out(config.cols),
            "sel_ok": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.prog_sel_bl.eq(self.bl_is_one),
            self.prog_sel_sl.eq(self.sl_is_one),
            self.sel_ok.eq(one_hot(self.bl_is_one) & one_hot(self.sl_is_one)),
        ]
        return m
