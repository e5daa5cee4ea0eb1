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
