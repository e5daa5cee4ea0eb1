"""Golden array: corelet map, differential encoding, placement (docs/model.md#corelets)."""

import numpy as np
import pytest

from cimflow.config import PRESETS
from cimflow.golden.array import (
    G_FRAC_BITS,
    Crossbar,
    Direction,
    corelet_map,
    encode_differential,
    neuron_of_line,
)


@pytest.mark.parametrize("name", list(PRESETS))
def test_corelet_map_is_two_permutations(name):
    cfg = PRESETS[name]
    bl, sl = corelet_map(cfg)
    n = cfg.rows
    assert sorted(bl) == list(range(n)) and sorted(sl) == list(range(n))
    c = cfg.corelet
    for i in range(c):
        for j in range(c):
            assert bl[c * i + j] == c * i + j and sl[c * i + j] == c * j + i
    # every line is served by exactly one neuron, and neuron_of_line inverts the map
    assert np.array_equal(bl[neuron_of_line(cfg, on_sl=False)], np.arange(n))
    assert np.array_equal(sl[neuron_of_line(cfg, on_sl=True)], np.arange(n))


def test_full_map_matches_paper_example():
    bl, sl = corelet_map(PRESETS["full"])
    n = 16 * 3 + 5  # corelet (3, 5)
    assert bl[n] == 16 * 3 + 5 and sl[n] == 16 * 5 + 3


def test_encoding_max_form():
    g_min, g_max = 1.0, 40.0
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5000)
    gp, gm, w_max = encode_differential(w, g_min, g_max)
    assert w_max == np.max(np.abs(w))
    assert gp.min() >= g_min and gm.min() >= g_min
    assert gp.max() <= g_max + 1e-12 and gm.max() <= g_max + 1e-12
    big = np.abs(w) > w_max * g_min / g_max
    assert np.all(((gp > g_min) ^ (gm > g_min))[big])
    assert np.all((gp == g_min) & (gm == g_min) | big)
    # max(.) form: the other cell sits at g_min, so G+ - G- = g_max W/w_max - g_min sign(W)
    np.testing.assert_allclose((gp - gm)[big], (g_max * w / w_max - g_min * np.sign(w))[big])
    np.testing.assert_allclose(np.maximum(gp, gm)[big], (g_max * np.abs(w) / w_max)[big])
    # not the offset map g_min + (g_max - g_min) max(W, 0)/w_max
    assert not np.allclose(gp, g_min + (g_max - g_min) * np.maximum(w, 0) / w_max)


def test_encoding_errors():
    with pytest.raises(ValueError, match="w_max"):
        encode_differential(np.zeros(4), 1.0, 40.0)
    with pytest.raises(ValueError, match="g_min"):
        encode_differential(np.ones(4), 5.0, 4.0)
    with pytest.raises(ValueError, match="exceeds w_max"):
        encode_differential(np.array([2.0]), 1.0, 40.0, w_max=1.0)


def test_program_places_pairs_on_adjacent_rows():
    cfg = PRESETS["small"]
    xb = Crossbar(cfg)
    w = np.array([[1.0, -0.5], [0.25, 0.0], [-1.0, 0.75]])
    m = xb.program(w)
    assert (m.n_in, m.n_out, m.w_max) == (3, 2, 1.0)
    assert xb.require_mapping() is m
    # x W takes 3 inputs and gives 2 outputs; the backward W delta the other way round
    assert [xb.vector_lengths(d) for d in Direction] == [(3, 2), (2, 3), (3, 2)]
    gp, gm, _ = encode_differential(w, 1.0, 40.0)
    np.testing.assert_array_equal(xb.target[0:6:2, :2], gp)
    np.testing.assert_array_equal(xb.target[1:6:2, :2], gm)
    assert np.all(xb.target[6:] == 0) and np.all(xb.target[:, 2:] == 0)  # unformed
    big = np.abs(w) > 1 / 40
    np.testing.assert_allclose(xb.weights()[big], (w - np.sign(w) / 40)[big])
    assert xb.codes().dtype == np.int64
    assert xb.codes()[0, 0] == 40 << G_FRAC_BITS


def test_program_bad_shapes():
    xb = Crossbar(PRESETS["tiny"])
    with pytest.raises(ValueError, match="does not fit"):
        xb.program(np.ones((3, 2)))  # 2*3 rows > 4
    with pytest.raises(ValueError, match="does not fit"):
        xb.program(np.ones((1, 5)))
    with pytest.raises(ValueError, match="2-D"):
        xb.program(np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        xb.set_conductances(np.ones((3, 3)))
    with pytest.raises(RuntimeError, match="program"):
        Crossbar(PRESETS["tiny"]).weights()
    with pytest.raises(RuntimeError, match="program"):
        Crossbar(PRESETS["tiny"]).vector_lengths(Direction.BACKWARD)
