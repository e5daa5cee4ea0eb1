"""Mode encodings shared by the configuration, the golden model, the testbenches and the
compiler: MVM direction, neuron ADC mode and neuron activation.

Each member's value is the code the core's mode register holds (docs/command_set.md,
``SET_MODE``). The RTL in hdl/ declares its own port enums and is checked against these
values by the co-simulation, so a wrong code on either side shows up as a mismatch.
"""

from __future__ import annotations

import enum

__all__ = ["Direction", "AdcMode", "Activation"]


class Direction(enum.Enum):
    """MVM direction; the value is the ``direction`` register code."""

    FORWARD = 0
    """BL inputs (differential row pairs) -> SL outputs, SL neuron switch, SL registers."""
    BACKWARD = 1
    """SL inputs (single-ended) -> BL outputs, BL switch, BL registers, differential output."""
    RECURRENT = 2
    """BL inputs -> settle on SLs (SL switch) -> results written to the BL registers."""


class AdcMode(enum.Enum):
    """Neuron ADC mode; the value is the ``adc_mode`` register code."""

    BINARY = 0
    """Sign, then a binary search: the charge decrement V_decr is halved after each bit."""
    COUNTING = 1
    """Sign, then a count of equal charge-decrement steps (the NeuRRAM board's default)."""

    @classmethod
    def parse(cls, value: AdcMode | str) -> AdcMode:
        """An AdcMode from itself or from its lower-case name ("binary", "counting")."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        names = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"adc_mode {value!r} is not one of: {names}")


class Activation(enum.Enum):
    """Neuron activation; the value is the ``act`` register code."""

    IDENTITY = 0
    RELU = 1
    """Sign 0 skips the magnitude conversion and reads out 0."""
    STOCHASTIC = 2
    """LFSR Bernoulli charge pulses are injected before conversion (RBM sampling)."""
