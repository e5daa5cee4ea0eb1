"""The RTL's update step in codes (golden.rpu.rtl_step): judged against a pulse-by-pulse loop
over the translator trace, and against the golden training step (pulsed_update with the
LFSR source on the constant-step device of the code view), bit for bit."""

import numpy as np
import pytest
import torch

from cimflow.config import PRESETS
from cimflow.golden.lfsr import LfsrChains
from cimflow.golden.rpu.pulses import LfsrSource
from cimflow.golden.rpu.rtl_step import code_device, rtl_code_step
from cimflow.golden.rpu.update import pulsed_update
from cimflow.golden.stochastic_translator import line_thresholds, str_update

G_MAX = (1 << 16) - 1


def random_words(cfg, rng):
    """Line-register words (sign 1 = positive), some zero magnitudes of either sign."""
    w = cfg.line_bits
    mag = rng.integers(0, 1 << (w - 1), cfg.lines)
    mag[rng.random(cfg.lines) < 0.2] = 0
    return (rng.integers(0, 2, cfg.lines) << (w - 1)) | mag


def random_codes(cfg, rng):
    codes = rng.integers(0, G_MAX + 1, (cfg.rows, cfg.cols))
    codes[0] = rng.integers(0, 40, cfg.cols)  # near the bounds: the clamp matters
    codes[-1] = G_MAX - rng.integers(0, 40, cfg.cols)
    return codes


def pulse_loop(cfg, codes, words, gain, bl, step, seeds):
    """Reference: every slot's coincidences one at a time, clamped after each."""
    thr, sign = line_thresholds(cfg, words, gain)
    r = cfg.rows
    tr = str_update(cfg, LfsrChains(cfg, *seeds), thr[:r], sign[:r], thr[r:], sign[r:], bl)
    out = np.array(codes, dtype=np.int64)
    for t in range(len(tr.phase)):
        for i, j in zip(*np.nonzero(np.outer(tr.row_pulse[t], tr.col_pulse[t])), strict=True):
            out[i, j] = min(out[i, j] + step, G_MAX) if tr.up[t] else max(out[i, j] - step, 0)
    return out


@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize("seeds", [(1, 1), (0x5A, 0x13), (77, 29)])
def test_code_step_equals_pulse_by_pulse(name, seeds):
    cfg = PRESETS[name]
    rng = np.random.default_rng(seeds[0] * 7 + seeds[1])
    for _ in range(3):
        codes, words = random_codes(cfg, rng), random_words(cfg, rng)
        gain = int(rng.integers(1, 1 << cfg.str_gain_bits))
        bl = int(rng.integers(1, min(cfg.bl_max, 20) + 1))
        step = int(rng.choice([1, 37, 5000]))
        got = rtl_code_step(LfsrSource(cfg, *seeds), codes, words, gain, bl, step)
        assert np.array_equal(got, pulse_loop(cfg, codes, words, gain, bl, step, seeds))
        assert got.min() >= 0 and got.max() <= G_MAX


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("seeds", [(3, 5), (0x1D, 0x0F)])
def test_code_step_is_the_golden_training_step(fused, seeds):
    """pulsed_update on w = code - c0 with code_device(step, c0) and the LFSR source, x and
    d the values the registers encode and lr giving the register's gain: the same codes."""
    cfg = PRESETS["small"]
    rng = np.random.default_rng(seeds[0])
    n, f = cfg.str_bits, cfg.str_gain_frac_bits
    c0, step, bl = 1 << 15, 300, 7
    for _ in range(3):
        codes, words = random_codes(cfg, rng), random_words(cfg, rng)
        gain = int(rng.integers(1, 1 << cfg.str_gain_bits))
        mags, neg = line_thresholds(cfg, words, 1 << f)  # gain 1: the str_bits magnitudes
        v = torch.tensor(np.where(neg == 1, -1.0, 1.0) * mags / 2.0**n, dtype=torch.float64)
        x, d = v[None, : cfg.rows], v[None, cfg.rows:]
        lr = (gain / 2**f) ** 2 * step * bl  # gain_for(lr, step, bl) = gain / 2^f
        st = code_device(step, c0).sample((cfg.cols, cfg.rows))
        w = torch.tensor((codes - c0).T, dtype=torch.float32)
        pulsed_update(w, st, x.float(), d.float(), lr, bl=bl, dw_min=float(step),
                      source=LfsrSource(cfg, *seeds), fused=fused)
        want = rtl_code_step(LfsrSource(cfg, *seeds), codes, words, gain, bl, step)
        assert np.array_equal(w.numpy().T.astype(np.int64) + c0, want)
        assert not np.array_equal(want, codes)


def test_bad_inputs_are_refused():
    cfg = PRESETS["tiny"]
    src = LfsrSource(cfg, 1, 1)
    codes = np.zeros((cfg.rows, cfg.cols), int)
    words = np.zeros(cfg.lines, int)
    with pytest.raises(ValueError, match="codes must have shape"):
        rtl_code_step(src, codes[:1], words, 4, 3, 1)
    with pytest.raises(ValueError, match="codes must lie in"):
        rtl_code_step(src, codes - 1, words, 4, 3, 1)
    with pytest.raises(ValueError, match="step"):
        rtl_code_step(src, codes, words, 4, 3, G_MAX + 1)
    with pytest.raises(ValueError, match="words must have shape"):
        rtl_code_step(src, codes, words[:2], 4, 3, 1)
    with pytest.raises(ValueError, match="line register words"):
        rtl_code_step(src, codes, words + (1 << cfg.line_bits), 4, 3, 1)
    with pytest.raises(ValueError, match="midpoint"):
        code_device(1, 0)
