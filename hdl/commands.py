"""The command encoding of the core (docs/command_set.md): opcodes, error causes and the
programming operations, as Amaranth enums so the ports that carry them are typed.

Every block and test in hdl/ takes the codes from here; ``hdl/controller.py`` re-exports them.
"""

from __future__ import annotations

from amaranth.lib import enum

__all__ = ["Op", "Cause", "ProgOp", "MAX_TAP"]

MAX_TAP = 10
"""Largest delay-line tap of a programming pulse (SET_PULSE bits 11..8)."""


class Op(enum.Enum, shape=5):
    """Opcodes (docs/command_set.md)."""

    NOP = 0x0
    SET_MODE = 0x1
    SET_PRECISION = 0x2
    SET_INJECT = 0x3
    SET_IN_LEN = 0x4
    MVM = 0x5
    RPU_UPDATE = 0x6
    SEED_A = 0x7
    SEED_B = 0x8
    SEED_LOAD = 0x9
    SET_PULSE = 0xA
    SET_WIDTH = 0xB
    PROGRAM = 0xC
    # 0xD is unassigned (unknown opcode)
    POWER = 0xE
    CLEAR_ERROR = 0xF
    SET_GAIN = 0x10
    """STR gain code C * 2^str_gain_frac_bits for RPU updates (arg < 2^str_gain_bits)."""
    SET_TIMING = 0x11
    """MVM strobe widths in clocks: [3:0] WL pulse, [7:4] sample, [15:8] integrate (>= 1)."""


class Cause(enum.Enum, shape=3):
    """Last error cause (``status`` bits 5..3)."""

    NONE = 0
    UNKNOWN_OPCODE = 1
    BUSY = 2
    BAD_ARG = 3
    POWER_GATED = 4
    SELECTION = 5
    """PROGRAM with not exactly one row and one column register equal to 1."""
    NOT_READY = 6
    """RPU_UPDATE or a stochastic MVM while the LFSR is not ready."""
    UNIT = 7
    """The STR bank reported an error during RPU_UPDATE."""


class ProgOp(enum.Enum, shape=2):
    """Programming operation of a PROGRAM command (its argument) and of ``prog_op``."""

    NONE = 0
    """No pulse (``prog_op`` between pulses; refused as a PROGRAM argument)."""
    SET = 1
    """Raise the selected cell's conductance."""
    RESET = 2
    """Lower the selected cell's conductance."""
    READ = 3
    """Read the selected cell's conductance into ``read_data``."""
