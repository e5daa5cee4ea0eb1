"""Random MVM cases for the engine and core testbenches, and line-register encoding.

Shared by the Amaranth-simulator tests of the MVM engine and the cocotb testbenches of the
whole core, so both drive the RTL the same way and judge it by the same golden model.
Line registers are sign-magnitude, W = max(input_bits, output_bits) bits, sign 1 =
positive; forward/recurrent inputs are written as +x on BL 2r and -x on BL 2r+1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cimflow.config import input_pulses
from cimflow.golden.array import Crossbar, Direction
from cimflow.golden.mvm import MvmSettings
from cimflow.golden.neuron import Activation
from cimflow.golden.nonideal import NonIdeal

__all__ = ["encode_line", "pack", "unpack", "random_case", "mode_registers", "write_inputs"]


def encode_line(v, w, rng):
    """Sign-magnitude register word (sign 1 = positive); zero gets a random sign."""
    if w == 1:
        return int(v)
    sign = 1 if v > 0 else (0 if v < 0 else int(rng.integers(0, 2)))
    return (sign << (w - 1)) | abs(int(v))


def pack(words, width):
    out = 0
    for i, v in enumerate(words):
        out |= int(v) << (i * width)
    return out


def unpack(value, n, width):
    mask = (1 << width) - 1
    return np.array([(value >> (i * width)) & mask for i in range(n)], dtype=np.int64)


def random_case(cfg, rng, *, direction=None, in_bits=None, out_bits=None, mode=None,
                act=None, static=None, max_counting_k=7, inject_steps=None):
    w = cfg.line_bits
    xb = Crossbar(cfg)
    n_in = int(rng.integers(1, cfg.rows // 2 + 1))
    n_out = int(rng.integers(1, cfg.cols + 1))
    xb.program(rng.standard_normal((n_in, n_out)) * rng.uniform(0.1, 10))
    if direction is None:  # Direction.FORWARD is 0: test for None, not truth
        direction = list(Direction)[rng.integers(0, 3)]
    mode = mode or ("binary", "counting")[rng.integers(0, 2)]
    in_bits = in_bits or int(rng.integers(1, min(w, cfg.input_bits) + 1))
    top_out = cfg.output_bits if mode == "binary" else min(cfg.output_bits, max_counting_k + 1)
    top_out = min(top_out, w)
    out_bits = out_bits or int(rng.integers(1, top_out + 1))
    if act is None:  # Activation.IDENTITY is 0
        act = list(Activation)[rng.integers(0, 3)]
    ni = NonIdeal()
    if static if static is not None else rng.integers(0, 2):
        ni = NonIdeal(relaxation=True, prog_sigma_us=0.5, adc_offset_v=2e-3,
                      integrator_swing_v=float(rng.uniform(0.02, 0.5)))
        xb.set_conductances(ni.perturb(xb.target, rng))
    st = MvmSettings(direction, in_bits, out_bits, mode, act, v_read=float(rng.uniform(0.1, 0.5)),
                     v_decr=float(rng.uniform(0.005, 0.8)),
                     inject_steps=int(rng.integers(0, 6) if inject_steps is None else inject_steps),
                     v_inject=float(rng.uniform(0, 0.05)))
    if rng.random() < 0.3:  # stretched pulse-generator strobes now and then
        st = dataclasses.replace(st, t_wl=int(rng.integers(1, 4)),
                                 t_sample=int(rng.integers(1, 4)),
                                 t_integ=int(rng.integers(1, 5)))
    n = n_out if direction is Direction.BACKWARD else n_in
    if in_bits == 1:
        x = rng.integers(0, 2, n)
    else:
        top = (1 << (in_bits - 1)) - 1
        x = rng.integers(-top, top + 1, n)
        if rng.integers(0, 6) == 0:
            x[:] = 0
    off = ni.offsets(cfg.rows, st.v_read, rng)
    # line registers: the driven lines hold the inputs, every other line random junk
    bl = rng.integers(0, 1 << w, cfg.rows)
    sl = rng.integers(0, 1 << w, cfg.cols)
    in_len = write_inputs(direction, x, w, rng, bl, sl)
    return dict(xb=xb, ni=ni, st=st, x=x, off=off, bl=bl, sl=sl, in_len=in_len)


def write_inputs(direction, x, w: int, rng, bl: np.ndarray, sl: np.ndarray) -> int:
    """Put input vector ``x`` into the line registers ``bl``/``sl`` (in place).

    Backward: SL r holds x_r. Forward/recurrent: BL 2r holds +x_r, BL 2r+1 holds -x_r (the
    differential pair). Returns ``in_len``, the number of driven lines.
    """
    n = len(x)
    if direction is Direction.BACKWARD:
        sl[:n] = [encode_line(v, w, rng) for v in x]
        return n
    bl[0:2 * n:2] = [encode_line(v, w, rng) for v in x]
    bl[1:2 * n:2] = [encode_line(-v, w, rng) for v in x]
    return 2 * n


def mode_registers(case):
    st = case["st"]
    return {
        "direction": st.direction.value,
        "adc_mode": st.adc_mode.value,
        "out_k": st.k,
        "in_m": input_pulses(st.in_bits),
        "act": st.activation.value,
        "inject_steps": st.inject_steps,
        "in_len": case["in_len"],
        "t_wl": st.t_wl,
        "t_sample": st.t_sample,
        "t_integ": st.t_integ,
    }
