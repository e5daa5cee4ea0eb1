"""Programming-mode cell selection (docs/model.md#operating-modes).

In programming mode the drivers address one cell: the one whose row (BL) register and
column (SL) register both hold 1, every other register holding 0. The line registers keep
one registered "holds 1" flag per line (``LineRegisters.bl_is_one`` / ``sl_is_one``); this
block turns them into the select masks of the BL/WL and SL drivers and checks the
selection: ``sel_ok`` is high when exactly one row and exactly one column are selected.
A programming command must not start otherwise: the controller reads ``sel_ok`` and refuses
PROGRAM with cause SELECTION (docs/command_set.md).

The check is a pipeline of ``SEL_LATENCY`` registers (a register per group of
``SEL_GROUP`` flags, then one for the whole selection): gathering one flag per line
register from across the design into one tree, and that tree into the controller's
refusal, was the longest path of the core at preset medium (docs/fpga.md). ``sel_ok`` is
the check of the flags as they were ``SEL_LATENCY`` clocks ago; ``sel_valid`` says that no
line register was written (``lines_we``) in those clocks, so ``sel_ok`` is the check of the
flags as they are now. The controller decides a PROGRAM only with ``sel_valid`` high, and
waits (busy) for it otherwise.

"Holds 1" means the W-bit register equals 1 (sign 0, magnitude 1); any other value,
including -1 or 2, leaves the line unselected.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import ConfiguredComponent

__all__ = ["ProgDrivers", "one_hot", "any_several", "SEL_LATENCY", "SEL_GROUP"]

SEL_LATENCY = 2
"""Clocks from a change of the line flags to ``sel_ok``."""
SEL_GROUP = 8
"""Flags per first-stage register pair of the selection check."""


def any_several(nodes):
    """Combine (any set, several set) pairs into one with a balanced tree, so the depth is
    logarithmic in the count (no carry chain, no popcount)."""
    nodes = list(nodes)
    while len(nodes) > 1:
        pairs = []
        for i in range(0, len(nodes) - 1, 2):
            (a_any, a_many), (b_any, b_many) = nodes[i], nodes[i + 1]
            pairs.append((a_any | b_any, a_many | b_many | (a_any & b_any)))
        if len(nodes) % 2:
            pairs.append(nodes[-1])
        nodes = pairs
    return nodes[0]


def one_hot(x):
    """1 when exactly one bit of ``x`` is set (``any_several`` over its bits)."""
    any_set, several = any_several((x[k], 0) for k in range(len(x)))
    return any_set & ~several


class ProgDrivers(ConfiguredComponent):
    """Ports: ``bl_is_one`` In rows, ``sl_is_one`` In cols (the line registers' flags),
    ``lines_we`` In 1 (a line register is written at this clock's edge, or a host write
    for a later edge is requested or pending: high in every clock in which the flags may be
    about to change);
    ``prog_sel_bl`` Out rows, ``prog_sel_sl`` Out cols, ``sel_ok`` Out 1 (registered,
    the flags ``SEL_LATENCY`` clocks ago), ``sel_valid`` Out 1 (registered: no write in
    those clocks)."""

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        super().__init__({
            "bl_is_one": In(config.rows),
            "sl_is_one": In(config.cols),
            "prog_sel_bl": Out(config.rows),
            "prog_sel_sl": Out(config.cols),
            "lines_we": In(1),
            "sel_ok": Out(1),
            "sel_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.prog_sel_bl.eq(self.bl_is_one),
            self.prog_sel_sl.eq(self.sl_is_one),
        ]
        # stage 1: (any, several) per group of SEL_GROUP flags, registered
        banks = []
        for name, flags in (("bl", self.bl_is_one), ("sl", self.sl_is_one)):
            groups = []
            for g, lo in enumerate(range(0, len(flags), SEL_GROUP)):
                part = flags[lo:lo + SEL_GROUP]
                any_c, many_c = any_several((part[k], 0) for k in range(len(part)))
                any_r = Signal(name=f"{name}_any{g}")
                many_r = Signal(name=f"{name}_many{g}")
                m.d.sync += [any_r.eq(any_c), many_r.eq(many_c)]
                groups.append((any_r, many_r))
            banks.append(any_several(groups))
        # stage 2: the whole selection, registered
        (bl_any, bl_many), (sl_any, sl_many) = banks
        m.d.sync += self.sel_ok.eq(bl_any & ~bl_many & sl_any & ~sl_many)
        # no write in the last SEL_LATENCY clocks: the flags are those the check saw
        we_d = Signal()
        m.d.sync += [we_d.eq(self.lines_we), self.sel_valid.eq(~self.lines_we & ~we_d)]
        assert SEL_LATENCY == 2  # one stage per register above
        return m
