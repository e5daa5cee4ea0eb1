"""The regression's coverage table names as holes only the widths the config can reach."""

from cimflow.config import CoreConfig
from cimflow.verif.regress import Result, format_table


def _mvm(in_bits, out_bits):
    return {"mode": "mvm", "direction": "forward", "in_bits": in_bits, "out_bits": out_bits,
            "activation": "identity", "adc": "binary"}


def _holes(text):
    line = next(x for x in text.splitlines() if x.startswith("holes: "))
    return set(line[len("holes: "):].split(", "))


def test_unreachable_widths_are_not_holes():
    cfg = CoreConfig(rows=36, cols=36, corelet=6, input_bits=6, output_bits=7)
    points = [_mvm(i, o) for i in range(1, 6) for o in range(1, 8)]  # in_bits 6 never hit
    table = format_table([Result("core.mvm_random", "c6", True, 1.0,
                                 {"coverage": points}, config=cfg)])
    holes = {h for h in _holes(table) if "bits" in h}
    assert holes == {"mvm in_bits=6"}
    assert "input bits : 1:7 2:7 3:7 4:7 5:7 6:0" in table
    assert "output bits: " + " ".join(f"{b}:5" for b in range(1, 8)) in table


def test_widest_config_sets_the_bins():
    narrow = CoreConfig(rows=4, cols=4, corelet=2, input_bits=3, output_bits=4,
                        lfsr_a_taps=(7, 6), lfsr_b_taps=(5, 3))
    wide = CoreConfig(rows=4, cols=4, corelet=2, input_bits=5, output_bits=9,
                      lfsr_a_taps=(7, 6), lfsr_b_taps=(5, 3))
    res = [Result("t", "a", True, 1.0, {"coverage": [_mvm(1, 1)]}, config=narrow),
           Result("t", "b", True, 1.0, {"coverage": [_mvm(2, 2)]}, config=wide)]
    holes = {h for h in _holes(format_table(res)) if "bits" in h}
    assert holes == {f"mvm in_bits={b}" for b in (3, 4, 5)} | {
        f"mvm out_bits={b}" for b in range(3, 10)}
