"""Conductance matrices: bias rows, w_max, and output scales checked against the golden chip
(an MVM on the golden model, recovered with the image's code scales, gives x . W + b)."""

import math

import numpy as np
import pytest

from cimflow.config import preset
from cimflow.golden.array import Crossbar, Mapping
from cimflow.golden.mvm import MvmSettings, mvm
from cimflow.mapping.compiler import compile_graph, segment_targets, x_top
from cimflow.mapping.errors import CompileError
from cimflow.mapping.graph import Graph, Node
from cimflow.mapping.matrices import MatrixOptions, bias_rows, layer_matrices


def linear_graph(w, b, name="fc", shape=None):
    attrs = {"shape": shape} if shape else {}
    node = Node(name, "linear", "analog", ["v0"], ["v1"], attrs, {"weight": w, "bias": b})
    return Graph(["v0"], ["v1"], [node])


def decode(gp, gm, m):
    """Exact inverse of the differential encoding outside the g_min dead band."""
    d = gp - gm
    return (d + m.g_min * np.sign(d)) * m.w_max / m.g_max


def test_bias_rows_restore_the_bias():
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (10, 6))
    b = np.array([3.3, -2.0, 0.9, 5.5, -0.7, 1.2])
    for s in (1.0, 0.5):
        (m,) = layer_matrices(linear_graph(w, b).nodes[0], MatrixOptions(input_scale=s))
        assert m.w_max == np.abs(w).max()
        assert m.bias_rows == math.ceil(5.5 / (s * m.w_max)) == bias_rows(b, m.w_max, s)
        assert 5.5 / (s * (m.bias_rows - 1)) > m.w_max  # one row fewer would not do
        assert m.rows == 2 * (10 + m.bias_rows) and m.cols == 6
        wb = decode(m.gp[10:], m.gm[10:], m)
        np.testing.assert_allclose(wb.sum(axis=0) * s, b, rtol=1e-12)
        np.testing.assert_allclose(wb, np.broadcast_to(wb[0], wb.shape))  # split evenly
        assert np.all((m.gp >= m.g_min) & (m.gp <= m.g_max) & (m.gm >= m.g_min))


def test_no_bias_no_rows_and_percentile_clips():
    w = np.linspace(-1, 1, 200).reshape(20, 10)
    (m,) = layer_matrices(linear_graph(w, None).nodes[0], MatrixOptions(w_percentile=90))
    assert m.bias_rows == 0
    assert m.w_max == pytest.approx(np.percentile(np.abs(w), 90))
    assert m.clipped == np.count_nonzero(np.abs(w) > m.w_max) > 0
    assert m.gp.max() == pytest.approx(m.g_max) and m.gm.max() == pytest.approx(m.g_max)


@pytest.mark.parametrize("opts,msg", [
    (dict(w_percentile=0), "w_percentile"),
    (dict(input_scale=-1), "input_scale"),
    (dict(g_min=5, g_max=2), "g_min < g_max"),
])
def test_bad_options(opts, msg):
    with pytest.raises(CompileError, match=msg):
        MatrixOptions(**opts)


def test_all_zero_weights_are_refused():
    with pytest.raises(CompileError, match="'fc': weights are all zero"):
        layer_matrices(linear_graph(np.zeros((3, 3)), None).nodes[0], MatrixOptions())


@pytest.mark.parametrize("in_bits,out_bits", [(4, 8), (3, 6)])
def test_code_scale_turns_golden_codes_into_layer_units(in_bits, out_bits):
    """Run the compiled segments on the golden chip; sum of code_scale * (code + 1/2) over
    row segments is x . W_eff + b_eff within half a code step per segment (W_eff: what the
    conductances represent, dead band included)."""
    cfg = preset("small")  # 16 x 16: a 12-input layer needs 2 row segments
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (12, 5))
    b = rng.uniform(-0.5, 0.5, 5)
    opts = MatrixOptions(in_bits=in_bits, out_bits=out_bits, input_scale=2.0, v_decr=2.0)
    cm = compile_graph(linear_graph(w, b), cfg, n_cores=4, options=opts)
    m = cm.layer("fc")
    segs = cm.segments_of("fc")
    assert len(segs) == 2
    top = x_top(in_bits)
    x = rng.integers(-top, top + 1, (50, 12))
    xa = np.concatenate([x, np.full((50, m.bias_rows), top)], axis=1)  # bias: full scale
    y = np.zeros((50, 5))
    worst = np.zeros(5)
    st = MvmSettings.from_config(cfg, in_bits=in_bits, out_bits=out_bits, v_decr=2.0)
    for s in segs:
        block = segment_targets(m, s)
        xbar = Crossbar(cfg, m.g_min, m.g_max)
        xbar.target[:block.shape[0], :block.shape[1]] = block
        xbar.set_conductances(xbar.target)
        xbar.mapping = Mapping(block.shape[0] // 2, block.shape[1], m.w_max, m.g_min, m.g_max)
        res = mvm(xbar, xa[:, np.arange(*s.pairs)], st)
        assert res.mag.max() < (1 << st.k) - 1, "saturated: the bound below would not hold"
        assert res.mag.max() >= (1 << st.k) // 8, "codes too small to test the scale"
        v = np.where(res.sign == 1, res.mag + 0.5, -(res.mag + 0.5))[:, :s.n_cols]
        scale = cm.code_scale[("fc", s.index, 0)]
        y += v * scale
        worst += 0.5 * np.abs(scale)
    w_eff = (m.gp - m.gm) * m.w_max / m.g_max
    ref = xa / top * m.input_scale @ w_eff
    assert np.all(np.abs(y - ref) <= worst + 1e-9)
    assert np.abs(y - ref).max() > 0  # quantisation is really there
    assert np.corrcoef(y.ravel(), (x / top * 2.0 @ w + b).ravel())[0, 1] > 0.97


def test_precision_beyond_the_core_is_refused():
    with pytest.raises(CompileError, match="exceeds the core's 8 / 10 bits"):
        compile_graph(linear_graph(np.ones((2, 2)), None), preset("full"),
                      options=MatrixOptions(in_bits=8, out_bits=11))
