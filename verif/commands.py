"""The host command encoding, as the verification side reads docs/command_set.md.

One opcode table and one packer per multi-field argument, imported by the cocotb
testbenches, the benchmark workload and the tests. It is written from the document, not
imported from hdl/, so that a wrong opcode or field position in the RTL is caught.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Op", "ProgOp", "set_mode_arg", "set_precision_arg", "set_timing_arg", "set_pulse_arg",
           "power_arg", "mode_commands"]


class Op(IntEnum):
    """Opcodes of the 5-bit ``cmd_op`` port (0xD and 0x12-0x1F are unassigned)."""

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
    POWER = 0xE
    CLEAR_ERROR = 0xF
    SET_GAIN = 0x10
    SET_TIMING = 0x11


class ProgOp(IntEnum):
    """PROGRAM's argument [1:0], also the ``prog_op`` port during the pulse (0 otherwise)."""

    NONE = 0  # refused as a PROGRAM argument (OPERAND)
    SET = 1
    RESET = 2
    READ = 3


def _field(name: str, value: int, bits: int) -> int:
    value = int(value)
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} = {value} does not fit in {bits} bits")
    return value


def set_mode_arg(direction: int, adc_mode: int, act: int, neuron_test: bool = False) -> int:
    """SET_MODE: [1:0] direction, [2] adc_mode, [4:3] activation, [5] neuron_test."""
    return (_field("direction", direction, 2) | _field("adc_mode", adc_mode, 1) << 2
            | _field("act", act, 2) << 3 | _field("neuron_test", int(neuron_test), 1) << 5)


def set_precision_arg(out_k: int, in_m: int) -> int:
    """SET_PRECISION: [3:0] output magnitude bits K, [6:4] input pulses M."""
    return _field("out_k", out_k, 4) | _field("in_m", in_m, 3) << 4


def set_timing_arg(t_wl: int, t_sample: int, t_integ: int) -> int:
    """SET_TIMING: [3:0] WL pulse, [7:4] sample, [15:8] integrate strobe widths (cycles)."""
    return (_field("t_wl", t_wl, 4) | _field("t_sample", t_sample, 4) << 4
            | _field("t_integ", t_integ, 8) << 8)


def set_pulse_arg(amp: int, tap: int = 0) -> int:
    """SET_PULSE: [7:0] amplitude DAC code, [11:8] delay-line tap (0 = clocked width)."""
    return _field("amp", amp, 8) | _field("tap", tap, 4) << 8


def power_arg(pwr_gate: bool, clk_gate: bool) -> int:
    """POWER: [0] power gate (1 = POWER_DOWN), [1] clock gate."""
    return int(bool(pwr_gate)) | int(bool(clk_gate)) << 1


def mode_commands(regs: dict, neuron_test: bool = False) -> list[tuple[Op, int]]:
    """The commands that load the MVM mode registers ``regs`` (mvm_scenario.mode_registers)."""
    return [
        (Op.SET_MODE, set_mode_arg(regs["direction"], regs["adc_mode"], regs["act"],
                                   neuron_test)),
        (Op.SET_PRECISION, set_precision_arg(regs["out_k"], regs["in_m"])),
        (Op.SET_IN_LEN, regs["in_len"]),
        (Op.SET_INJECT, regs["inject_steps"]),
        (Op.SET_TIMING, set_timing_arg(regs["t_wl"], regs["t_sample"], regs["t_integ"])),
    ]


PULSE_AMP_MAX = 255
"""Largest SET_PULSE amplitude (8-bit field of ``set_pulse_arg``)."""


def set_pulses(code: int) -> list[tuple[int, int]]:
    """(amplitude, width) of the SET pulses that raise a zero cell of the behavioural macro
    to ``code`` (every clock of a SET pulse adds its amplitude): full-amplitude clocks for
    ``code // 255``, then one clock of the remainder. Used by the testbenches and the host
    driver, so both program cells the same way."""
    return [(a, w) for a, w in ((PULSE_AMP_MAX, code // PULSE_AMP_MAX),
                                (code % PULSE_AMP_MAX, 1)) if a and w]


def reset_pulse(code: int) -> tuple[int, int] | None:
    """(amplitude, width) of one RESET pulse that takes a cell at ``code`` down to 0 (the
    macro clamps at 0), or None when it is already 0."""
    return (PULSE_AMP_MAX, -(-code // PULSE_AMP_MAX)) if code else None


def selection_writes(prev: tuple[int | None, int | None], new: tuple[int, int]
                     ) -> list[tuple[int, int, int]]:
    """Register writes (bank, line, value) that move the one-cell selection from ``prev``
    (row, column; None: nothing selected) to ``new``: the old BL / SL register back to 0,
    the new one to 1 (bank 0 = BL rows, 1 = SL columns)."""
    writes = []
    for bank, old, line in ((0, prev[0], new[0]), (1, prev[1], new[1])):
        if line != old:
            if old is not None:
                writes.append((bank, old, 0))
            writes.append((bank, line, 1))
    return writes
