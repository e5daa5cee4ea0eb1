"""What every testbench shares: its environment, its result record, bit packing, and the
golden lockstep checker of an MVM's control words.

The environment (configuration, seeds, cycle budget) comes from the regression runner
(verif/regress.py) through CIMFLOW_CONFIG, CIMFLOW_SEEDS and CIMFLOW_CYCLES; each test
appends its figures as one JSON line to CIMFLOW_METRICS. ``Lockstep`` is used both by the
Amaranth-simulator tests of the MVM engine and by the cocotb testbenches of the core, so
both judge the RTL's control words by one golden sequence in one way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from cimflow.config import CoreConfig
from cimflow.golden.cycle import Control, CycleCore, Phase, mvm_program

__all__ = ["TbEnv", "tb_env", "record", "unpack_bits", "pack_bits", "Lockstep"]


@dataclass(frozen=True)
class TbEnv:
    """A testbench's inputs: the configuration, LFSR seed pairs and its cycle budget."""

    cfg: CoreConfig
    seeds: list[tuple[int, int]]
    budget: int


def tb_env() -> TbEnv:
    """The environment the regression runner passed to this simulator process."""
    cfg = CoreConfig.from_json(os.environ["CIMFLOW_CONFIG"])
    seeds = [tuple(int(x, 0) for x in s.split(":"))
             for s in os.environ.get("CIMFLOW_SEEDS", "1:1").split(",")]
    return TbEnv(cfg, seeds, int(os.environ.get("CIMFLOW_CYCLES", "100000")))


def record(test: str, **figures) -> None:
    """Append one test's figures (seeds, cycles compared, coverage points) to the metrics."""
    path = os.environ.get("CIMFLOW_METRICS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **figures}) + "\n")


def unpack_bits(values: list[int], width: int) -> np.ndarray:
    """Integers (LSB = line 0) to a (len(values), width) bool array."""
    nbytes = (width + 7) // 8
    raw = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(values), nbytes),
                         axis=1, bitorder="little")
    return bits[:, :width].astype(bool)


def pack_bits(bits) -> int:
    """A bool vector (line 0 first) as an integer, line 0 in the LSB."""
    return int.from_bytes(np.packbits(np.asarray(bits, bool), bitorder="little").tobytes(),
                          "little")


class _Replay:
    """Feeds CycleCore the noise bits the RTL was already checked against."""

    def __init__(self, bits):
        self._bits = bits

    def bits(self, n):
        return self._bits[None, :]


class Lockstep:
    """Golden lockstep of one MVM: the expected control word of each cycle, and the
    comparator bits the golden array and neurons answer it with.

    ``check(got)`` compares the RTL's word with the golden ``mvm_program`` word of this
    step (AssertionError naming the step and field), steps the golden ``CycleCore`` with
    it and returns the comparator bits to drive back. Pass ``noise`` (the RTL's injected
    noise bits) in INJECT cycles to check them against the golden LFSR too.
    """

    def __init__(self, case: dict, lfsr):
        self.st = case["st"]
        self.core = CycleCore(case["xb"], case["ni"], offsets=case["off"], lfsr=lfsr)
        self.core.configure(self.st)
        self.want = list(mvm_program(case["xb"], case["x"], self.st))
        self.step = 0

    @property
    def done(self) -> bool:
        return self.step >= len(self.want)

    @property
    def expected(self) -> Control:
        return self.want[self.step]

    def check(self, got: Control, noise: int | None = None) -> np.ndarray:
        exp = self.expected
        where = f"step {self.step}: expected {exp.phase.name}, got {got.phase.name}"
        assert got.phase is exp.phase, where
        assert np.array_equal(got.drv_bl, exp.drv_bl), where + " (drv_bl)"
        assert np.array_equal(got.drv_sl, exp.drv_sl), where + " (drv_sl)"
        assert np.array_equal(got.wl_en, exp.wl_en), where + " (wl_en)"
        assert got.nrn_in is exp.nrn_in and got.out_bl == exp.out_bl, where + " (neuron)"
        assert got.dac_code == exp.dac_code, where + " (dac_code)"
        lfsr = self.core.lfsr
        if exp.phase is Phase.INJECT and noise is not None:
            want_bits = lfsr.bits(1)[0, :len(exp.wl_en)]
            assert noise == pack_bits(want_bits), where + " (noise bits)"
            self.core.lfsr = _Replay(want_bits)
        try:
            self.core.step(got)
        finally:
            self.core.lfsr = lfsr
        self.step += 1
        return self.core.bank.cmp

    def outputs(self, out_bl: bool) -> tuple[np.ndarray, np.ndarray]:
        """Golden (sign, magnitude) registers of the output lines (BL side if ``out_bl``),
        after the MVM's ``done`` clock (the write-back has landed: ``WRITEBACK_DELAY``)."""
        c = self.core
        c.land()
        return (c.bl_sign, c.bl_mag) if out_bl else (c.sl_sign, c.sl_mag)
