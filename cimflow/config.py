"""`CoreConfig`: the single source of truth for one NeuRRAM-style core.

hdl/, golden/, verif/ and mapping/ all read this one dataclass; nothing else fixes an array
size, a bit width or an LFSR polynomial. It validates every field (errors name the field and
its allowed range), round-trips through JSON, and ships presets: ``full`` (NeuRRAM sizes)
and smaller ones for fast tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .gf2 import is_primitive
from .modes import AdcMode

__all__ = [
    "CoreConfig", "ConfigError", "PRESETS", "preset", "input_pulses", "LINE_ADDR_BITS",
    "MAX_LINES", "MAX_CORELET", "MAX_INPUT_BITS", "MAX_OUTPUT_BITS", "CMD_ARG_BITS",
]

# Limits the RTL (hdl/) imposes; `CoreConfig.validate` checks each one so a config is refused
# with the field named before any elaboration.
LINE_ADDR_BITS = 8
"""Width of the line field of a register address (the chip's 8-bit address decoder)."""
MAX_LINES = 1 << LINE_ADDR_BITS
"""Most lines per bank (rows, cols) the address decoder reaches."""
MAX_CORELET = math.isqrt(MAX_LINES)
"""Largest corelet edge: rows = cols = corelet**2 <= MAX_LINES."""
MAX_INPUT_BITS = 8
"""Widest input: the sequencer counts at most 7 magnitude pulses (3-bit ``in_m``)."""
MAX_OUTPUT_BITS = 10
"""Widest output: the sequencer counts at most 9 ADC magnitude bits (``out_k``)."""
CMD_ARG_BITS = 16
"""Width of a command argument, which carries BL (RPU_UPDATE) and the STR gain (SET_GAIN)."""


class ConfigError(ValueError):
    """A CoreConfig field is missing, of the wrong type or out of range."""


def input_pulses(in_bits: int) -> int:
    """Magnitude pulses (bit planes) of one MVM input of ``in_bits`` bits.

    An ``in_bits`` = 1 input is unsigned {0, 1}: one pulse. n >= 2 bits are 1 sign + (n - 1)
    magnitude bits, one pulse per magnitude bit. The RTL's ``in_m`` register holds this count.
    """
    return max(in_bits - 1, 1)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} = {value} is out of range [{lo}, {hi}]")


@dataclass(frozen=True)
class CoreConfig:
    """Parameters of one core. Defaults are the NeuRRAM chip's (Wan et al. 2022)."""

    # --- array organisation (docs/model.md#core-organisation) ---
    rows: int = 256
    """Word lines / bit lines (BL) of the TNSA; one neuron per BL."""
    cols: int = 256
    """Source lines (SL); one neuron per SL."""
    corelet: int = 16
    """Corelet edge: a corelet is corelet x corelet cells with one neuron; the array is a
    corelet x corelet grid of corelets, so rows == cols == corelet**2."""

    # --- neuron precisions (docs/model.md#bit-serial-inputs, docs/model.md#conversion) ---
    input_bits: int = 8
    """Widest signed MVM input the hardware supports: 1 sign + (input_bits - 1) magnitude
    bits, 1..8 (NeuRRAM: 1-8). The precision of one MVM is a run-time mode register."""
    output_bits: int = 10
    """Widest neuron output: 1 sign + (output_bits - 1) magnitude bits, 1..10 (NeuRRAM:
    1-10). Sets the line-register width max(input_bits, output_bits)."""

    # --- random numbers (docs/model.md#lfsr-chains) ---
    lfsr_a_taps: tuple[int, ...] = (63, 62)
    """Chain A recurrence a(t) = XOR a(t - k), k in taps; must be maximal-length."""
    lfsr_b_taps: tuple[int, ...] = (47, 42)
    """Chain B recurrence; its degree should be coprime with chain A's for a long joint period."""

    # --- stochastic translators for the RPU parallel update (docs/model.md#rpu-update) ---
    str_bits: int = 8
    """Translator resolution n: line values are n-bit magnitudes compared with n-bit random
    words, so P(pulse) is a multiple of 2^-n."""
    str_gain_bits: int = 8
    """Width of the programmable STR gain C register (unsigned fixed point)."""
    str_gain_frac_bits: int = 4
    """Fraction bits of C: C = gain_code / 2^str_gain_frac_bits."""
    bl: int = 10
    """Default stochastic stream length BL (the RPU paper's value)."""
    bl_max: int = 255
    """Largest BL the hardware supports; sets the BL register width."""

    # --- neuron ADC (docs/model.md#conversion; docs/cycle_interface.md) ---
    adc_mode: AdcMode = AdcMode.BINARY
    """Reset value of the ADC mode register (:class:`cimflow.modes.AdcMode`); JSON and the
    constructor also take its lower-case name, "binary" or "counting"."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "adc_mode", AdcMode.parse(self.adc_mode))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        object.__setattr__(self, "lfsr_a_taps", tuple(self.lfsr_a_taps))
        object.__setattr__(self, "lfsr_b_taps", tuple(self.lfsr_b_taps))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        _check_int("corelet", self.corelet, 1, MAX_CORELET)
        _check_int("rows", self.rows, 1, MAX_LINES)
        _check_int("cols", self.cols, 1, MAX_LINES)
        if self.rows != self.corelet**2 or self.cols != self.corelet**2:
            raise ConfigError(
                f"rows and cols must both equal corelet**2 = {self.corelet**2} (one neuron per "
                f"BL and per SL, docs/model.md#corelets); got rows={self.rows}, cols={self.cols}"
            )
        _check_int("input_bits", self.input_bits, 1, MAX_INPUT_BITS)
        _check_int("output_bits", self.output_bits, 1, MAX_OUTPUT_BITS)
        for name in ("lfsr_a_taps", "lfsr_b_taps"):
            taps = getattr(self, name)
            if not taps:
                raise ConfigError(f"{name} must list at least one tap")
            for k in taps:
                _check_int(f"{name} entry", k, 1, 64)
            if len(set(taps)) != len(taps):
                raise ConfigError(f"{name} = {taps} has repeated taps")
            if max(taps) < 2:
                raise ConfigError(f"{name} = {taps}: degree must be in [2, 64]")
            if not is_primitive(taps):
                raise ConfigError(
                    f"{name} = {taps} is not maximal-length (its characteristic polynomial is "
                    f"not primitive over GF(2))"
                )
        _check_int("str_bits", self.str_bits, 1, 16)
        _check_int("str_gain_bits", self.str_gain_bits, 1, CMD_ARG_BITS)
        _check_int("str_gain_frac_bits", self.str_gain_frac_bits, 0, self.str_gain_bits)
        _check_int("bl_max", self.bl_max, 1, (1 << CMD_ARG_BITS) - 1)
        _check_int("bl", self.bl, 1, self.bl_max)

    # ------------------------------------------------------------------ derived values
    @property
    def lines(self) -> int:
        """Lines served by the LFSR and the translators: rows first, then columns."""
        return self.rows + self.cols

    @property
    def lfsr_chain_length(self) -> int:
        """Stages per LFSR chain: str_bits stages per line (at least the LFSR degree)."""
        return max(self.lines * self.str_bits, max(self.lfsr_a_taps), max(self.lfsr_b_taps))

    @property
    def lfsr_warmup_cycles(self) -> int:
        """Cycles after a seed load until every chain stage holds sequence bits."""
        d = min(max(self.lfsr_a_taps), max(self.lfsr_b_taps))
        return math.ceil(max(self.lfsr_chain_length - d, 0) / self.str_bits)

    @property
    def line_bits(self) -> int:
        """W: width of every line register (sign-magnitude, sign 1 = positive)."""
        return max(self.input_bits, self.output_bits)

    @property
    def bl_bits(self) -> int:
        return self.bl_max.bit_length()

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, AdcMode):
                v = v.name.lower()
            out[f.name] = v
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        kwargs = dict(data)
        for name in ("lfsr_a_taps", "lfsr_b_taps"):
            if name in kwargs:
                if not isinstance(kwargs[name], (list, tuple)):
                    raise ConfigError(f"{name} must be a list of integers")
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> CoreConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> CoreConfig:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        if not p.is_file():
            raise ConfigError(f"config file {p} is not a file")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {p} is not UTF-8 text") from None
        return cls.from_json(text)

    def replace(self, **changes: Any) -> CoreConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, CoreConfig] = {
    "full": CoreConfig(),
    "medium": CoreConfig(
        rows=64, cols=64, corelet=8, str_bits=6,
        lfsr_a_taps=(41, 38), lfsr_b_taps=(39, 35),
    ),
    "small": CoreConfig(
        rows=16, cols=16, corelet=4, str_bits=4,
        lfsr_a_taps=(31, 28), lfsr_b_taps=(29, 27),
    ),
    "tiny": CoreConfig(
        rows=4, cols=4, corelet=2, str_bits=3, bl_max=15, bl=5,
        lfsr_a_taps=(7, 6), lfsr_b_taps=(5, 3), str_gain_bits=5, str_gain_frac_bits=2,
    ),
}
"""Named configurations: ``full`` is the NeuRRAM core; the others keep tests fast."""


def preset(name: str) -> CoreConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}"
        ) from None
