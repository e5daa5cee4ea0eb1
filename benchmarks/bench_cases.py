"""A fixed workload for the FPGA core with its golden answers, as a plain text file.

The cocotb testbench (test_throughput in verif/tb_core_fpga.py) and the plain C++
Verilator harness (benchmarks/cpp/harness.cpp) run
the same file, so their speeds compare the same work: program the cells of the rows an
MVM uses, then run MVMs and check every output register against the golden model.

Format (whitespace separated integers, one record per line):
``W ROWS COLS`` / ``NCELLS`` then ``r c code`` per cell / ``NMVMS`` then per MVM one line
``set_mode set_precision in_len inject d_units inject_units clip out_bank`` followed by
a line of ROWS BL register values, a line of COLS SL values and a line of the expected
output-bank values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cimflow.atomic import write_atomic
from cimflow.config import CoreConfig
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.cycle import CycleCore
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.mvm import MvmSettings
from cimflow.golden.neuron import Activation
from cimflow.golden.nonideal import NonIdeal
from cimflow.hdl.analog_macro import no_clip
from cimflow.verif.commands import set_mode_arg, set_precision_arg
from cimflow.verif.mvm_scenario import encode_line, mode_registers

__all__ = ["make_cases"]


def make_cases(cfg: CoreConfig, n_in: int, n_mvms: int, seed: int, path: Path) -> dict:
    """Write the workload to ``path``; return a summary."""
    rng = np.random.default_rng(seed)
    w = cfg.line_bits
    xb = Crossbar(cfg)
    xb.program(rng.standard_normal((n_in, cfg.cols)))
    codes = xb.codes()
    used = 2 * n_in  # forward MVMs drive BL 0..2n_in-1: only these rows conduct
    cells = [(r, c, int(codes[r, c])) for r in range(used) for c in range(cfg.cols)]
    lines = [f"{w} {cfg.rows} {cfg.cols}", str(len(cells))]
    lines += [f"{r} {c} {g}" for r, c, g in cells]
    lines.append(str(n_mvms))
    lfsr = LfsrChains(cfg, 1, 1)
    for k in range(n_mvms):
        in_bits, out_bits = (4, 8) if k % 2 == 0 else (6, 10)
        adc = "counting" if k % 3 == 2 and out_bits <= 8 else "binary"
        st = MvmSettings(Direction.FORWARD, in_bits, out_bits, adc, Activation.IDENTITY,
                         v_read=0.3, v_decr=0.2)
        top = (1 << (in_bits - 1)) - 1
        x = rng.integers(-top, top + 1, n_in)
        bl = np.zeros(cfg.rows, dtype=np.int64)
        bl[0:2 * n_in:2] = [encode_line(v, w, rng) for v in x]
        bl[1:2 * n_in:2] = [encode_line(-v, w, rng) for v in x]
        sl = np.zeros(cfg.cols, dtype=np.int64)
        case = {"st": st, "in_len": 2 * n_in}
        regs = mode_registers(case)
        want = CycleCore(xb, NonIdeal(), lfsr=lfsr).run(x[None], st)
        expect = (want.sign[0].astype(np.int64) << (w - 1)) | want.mag[0]
        set_mode = set_mode_arg(regs["direction"], regs["adc_mode"], regs["act"])
        set_prec = set_precision_arg(regs["out_k"], regs["in_m"])
        lines.append(f"{set_mode} {set_prec} {regs['in_len']} {regs['inject_steps']} "
                     f"{st.d_units} {st.inject_units} {no_clip(cfg)} 1")
        lines += [" ".join(map(str, bl)), " ".join(map(str, sl)),
                  " ".join(map(str, expect))]
    write_atomic(path, "\n".join(lines) + "\n")
    return {"cells": len(cells), "mvms": n_mvms, "n_in": n_in}
