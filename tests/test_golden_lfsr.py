"""Golden LFSR chains against an independent companion-matrix reference."""

import numpy as np
import pytest
from gf2_matrix import load_state, matmul2, matpow2, step_matrix

from cimflow.config import PRESETS, CoreConfig
from cimflow.golden.lfsr import LfsrChains, MSequence, chain_stages

SEEDS = [(1, 1), (0x5A, 0x13), (0x7F, 0x1E)]


def reference_words(cfg, seed_a, seed_b, cycles):
    """Words from the matrix model: advance both chains by M^n per cycle, read positions."""
    n, L = cfg.str_bits, cfg.lfsr_chain_length
    ma = matpow2(step_matrix(cfg.lfsr_a_taps, L), n)
    mb = matpow2(step_matrix(cfg.lfsr_b_taps, L), n)
    sa = load_state(seed_a, max(cfg.lfsr_a_taps), L)
    sb = load_state(seed_b, max(cfg.lfsr_b_taps), L)
    warm = cfg.lfsr_warmup_cycles
    sa = matmul2(matpow2(ma, warm), sa)
    sb = matmul2(matpow2(mb, warm), sb)
    out = np.zeros((cycles, cfg.lines), dtype=np.uint64)
    for t in range(cycles):
        bits = sa ^ sb[::-1]  # B position p is its stage L-1-p
        for k in range(cfg.lines):
            out[t, k] = sum(int(bits[k * n + j]) << j for j in range(n))
        sa, sb = matmul2(ma, sa), matmul2(mb, sb)
    return out


@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize("seeds", SEEDS)
def test_words_match_matrix_model(name, seeds):
    cfg = PRESETS[name]
    chains = LfsrChains(cfg, *seeds)
    got = np.concatenate([chains.words(13), chains.words(40)])  # chunking must not matter
    assert np.array_equal(got, reference_words(cfg, *seeds, 53))


def test_jump_ahead_100k_cycles():
    cfg = PRESETS["small"]
    chains = LfsrChains(cfg, 0x1234567, 0x89ABC)
    t = 100_000
    for _ in range(10):
        chains.words(t // 10)
    got = chains.words(1)[0]
    n, L = cfg.str_bits, cfg.lfsr_chain_length
    cyc = cfg.lfsr_warmup_cycles + t
    sa = matmul2(matpow2(step_matrix(cfg.lfsr_a_taps, L), n * cyc),
                 load_state(0x1234567, 31, L))
    sb = matmul2(matpow2(step_matrix(cfg.lfsr_b_taps, L), n * cyc),
                 load_state(0x89ABC, 29, L))
    bits = sa ^ sb[::-1]
    want = [sum(int(bits[k * n + j]) << j for j in range(n)) for k in range(cfg.lines)]
    assert got.tolist() == want


@pytest.mark.parametrize("cycle", [0, 1, 3, 9])
def test_warmup_stages_match_matrix(cycle):
    cfg = PRESETS["tiny"]
    L, n = cfg.lfsr_chain_length, cfg.str_bits
    ref = matmul2(matpow2(step_matrix(cfg.lfsr_a_taps, L), n * cycle), load_state(0x55, 7, L))
    assert np.array_equal(chain_stages(cfg.lfsr_a_taps, 0x55, L, n, cycle), ref)


@pytest.mark.parametrize("taps", [(7, 6), (5, 3), (8, 6, 5, 4), (11, 9)])
def test_period_is_maximal_brute_force(taps):
    d = max(taps)
    seq = MSequence(taps, 1)
    buf, off = seq.window(0, 2 * (2**d - 1) + d)
    x = buf[-off:]
    period = 2**d - 1
    assert np.array_equal(x[:period], x[period : 2 * period])
    for p in range(1, period):  # no shorter period
        if period % p == 0:
            assert not np.array_equal(x[:p], x[p : 2 * p])
    assert x[:period].sum() == 2 ** (d - 1)  # m-sequence balance


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_polynomials_have_maximal_order(name):
    """Order of the d x d companion matrix is exactly 2^d - 1 (factors checked here)."""
    cfg = PRESETS[name]
    for taps in (cfg.lfsr_a_taps, cfg.lfsr_b_taps):
        d = max(taps)
        order = 2**d - 1
        m = step_matrix(taps, d)
        eye = np.eye(d, dtype=np.int64)
        assert np.array_equal(matpow2(m, order), eye)
        factors, r, p = set(), order, 2
        while p * p <= r and p < 2_000_000:
            while r % p == 0:
                factors.add(p)
                r //= p
            p += 1
        if r > 1:
            assert pow(3, r - 1, r) == 1  # the cofactor left over is (probably) prime
            factors.add(r)
        for q in factors:
            assert not np.array_equal(matpow2(m, order // q), eye), (taps, q)


def test_bits_are_bit0_of_words():
    cfg = PRESETS["tiny"]
    w = LfsrChains(cfg, 3, 5).words(50)
    b = LfsrChains(cfg, 3, 5).bits(50)
    assert np.array_equal(b, (w & 1).astype(np.uint8))


@pytest.mark.parametrize("seed", [0, 2**31, -1])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed_a"):
        LfsrChains(PRESETS["small"], seed, 1)


def test_chain_length_covers_lines():
    cfg = CoreConfig()
    assert cfg.lfsr_chain_length == 512 * 8
