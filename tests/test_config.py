"""CoreConfig validation, JSON round trip and presets."""

import json

import pytest

from cimflow.config import PRESETS, ConfigError, CoreConfig, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    cfg = PRESETS[name]
    again = CoreConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["rows"] == cfg.rows


def test_full_preset_is_neurram():
    cfg = preset("full")
    assert (cfg.rows, cfg.cols, cfg.corelet) == (256, 256, 16)
    assert cfg.bl == 10  # RPU paper's BL


@pytest.mark.parametrize("field,value,match", [
    ("input_bits", 9, r"input_bits = 9 is out of range \[1, 8\]"),
    ("input_bits", 0, r"input_bits = 0 is out of range \[1, 8\]"),
    ("output_bits", 11, r"output_bits = 11 is out of range \[1, 10\]"),
    ("str_bits", 0, r"str_bits = 0 is out of range \[1, 16\]"),
    ("bl", 256, r"bl = 256 is out of range \[1, 255\]"),
    ("rows", 128, r"rows and cols must both equal corelet\*\*2"),
    ("lfsr_a_taps", (8, 4), r"lfsr_a_taps = \(8, 4\) is not maximal-length"),
    ("lfsr_b_taps", (5, 5), r"repeated taps"),
    ("input_bits", True, r"input_bits must be an integer"),
    ("str_gain_frac_bits", 9, r"str_gain_frac_bits = 9 is out of range \[0, 8\]"),
])
def test_bad_fields_name_field_and_range(field, value, match):
    with pytest.raises(ConfigError, match=match):
        CoreConfig().replace(**{field: value})


def test_unknown_field_and_bad_json():
    with pytest.raises(ConfigError, match="unknown config field.*colums"):
        CoreConfig.from_dict({"colums": 4})
    with pytest.raises(ConfigError, match="not valid JSON"):
        CoreConfig.from_json("{rows: 4")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")


def test_derived_sizes():
    cfg = preset("small")
    assert cfg.lines == 32
    assert cfg.lfsr_chain_length == 32 * cfg.str_bits
    assert cfg.lfsr_warmup_cycles == -(-(cfg.lfsr_chain_length - 29) // cfg.str_bits)


@pytest.mark.parametrize("changes,match", [
    # the register address has an 8-bit line field: at most 256 lines per bank
    ({"corelet": 17, "rows": 289, "cols": 289}, r"corelet = 17 is out of range \[1, 16\]"),
    ({"corelet": 64, "rows": 4096, "cols": 4096}, r"corelet = 64 is out of range \[1, 16\]"),
    ({"rows": 257}, r"rows = 257 is out of range \[1, 256\]"),
    ({"cols": 1024}, r"cols = 1024 is out of range \[1, 256\]"),
    # a command argument is 16 bits wide: BL and the STR gain code travel in one
    ({"bl_max": 1 << 16}, r"bl_max = 65536 is out of range \[1, 65535\]"),
    ({"str_gain_bits": 17}, r"str_gain_bits = 17 is out of range \[1, 16\]"),
])
def test_rtl_limits_refused_before_elaboration(changes, match):
    with pytest.raises(ConfigError, match=match):
        CoreConfig().replace(**changes)


def test_every_valid_line_count_elaborates():
    """The largest config validate accepts is accepted by the RTL's line decoder as well
    (which refuses more than MAX_LINES lines per bank at construction)."""
    from cimflow.config import MAX_CORELET, MAX_LINES
    from cimflow.hdl.regfile import LineRegisters

    big = CoreConfig(corelet=MAX_CORELET, rows=MAX_LINES, cols=MAX_LINES)
    regs = LineRegisters(big)
    regs._MustUse__silence = True  # constructed to see it accepted, not elaborated
    assert regs.config is big
    with pytest.raises(ConfigError, match=r"corelet = 17"):
        CoreConfig(corelet=MAX_CORELET + 1, rows=(MAX_CORELET + 1) ** 2,
                   cols=(MAX_CORELET + 1) ** 2)
