"""Placement: segment sizes, duplication, wide splits, merging, defects, and ResNet-20 on
48 cores against the paper's counts (Wan et al. 2022: 61 matrices, ~553k cells)."""

import json

import numpy as np
import pytest
import torch

from cimflow.config import preset
from cimflow.mapping import zoo
from cimflow.mapping.compiler import compile_graph, compile_model
from cimflow.mapping.defects import load_defects
from cimflow.mapping.errors import CompileError
from cimflow.mapping.graph import Graph, Node
from cimflow.mapping.report import core_table, totals

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SMALL = preset("small")  # 16 x 16 cores: 8 differential pairs per segment


def graph(*layers):
    """Linear layers (n_in, n_out, mvms) chained into one graph."""
    rng = np.random.default_rng(0)
    nodes = []
    for k, (n_in, n_out, mvms) in enumerate(layers):
        shape = [1, mvms, n_out] if mvms > 1 else [1, n_out]
        nodes.append(Node(f"l{k}", "linear", "analog", [f"v{k}"], [f"v{k + 1}"],
                          {"shape": shape},
                          {"weight": rng.uniform(-1, 1, (n_in, n_out)), "bias": None}))
    return Graph(["v0"], [f"v{len(layers)}"], nodes)


def check_consistent(cm):
    """Every matrix copy lies wholly on the cores' targets; no cell is used twice; rows come
    in differential pairs; unused cells are unformed (0)."""
    used = {c: np.zeros((cm.config.rows, cm.config.cols), int) for c in cm.targets}
    for s in cm.placement.segments:
        assert s.n_rows <= cm.placement.seg_rows and s.n_cols <= cm.placement.seg_cols
        assert np.all(s.phys_rows[0::2] % 2 == 0)
        assert np.all(s.phys_rows[1::2] == s.phys_rows[0::2] + 1)
        used[s.core][np.ix_(s.phys_rows, s.phys_cols)] += 1
    for c, u in used.items():
        assert u.max() == 1
        assert np.all(cm.targets[c][u == 0] == 0) and np.all(cm.targets[c][u == 1] >= 1.0)
    for m in cm.layers:
        for copy in {s.copy for s in cm.placement.segments if s.layer == m.name}:
            gp, gm = cm.conductances(m.name, copy)
            np.testing.assert_array_equal(gp, m.gp)
            np.testing.assert_array_equal(gm, m.gm)


def test_segments_hold_whole_pairs_and_cover_each_matrix():
    cm = compile_graph(graph((20, 5, 1), (3, 30, 1), (8, 16, 1)), SMALL, n_cores=64)
    check_consistent(cm)
    segs = {m.name: [s for s in cm.placement.segments if s.layer == m.name and s.copy == 0]
            for m in cm.layers}
    assert len(segs["l0"]) == 3  # 20 pairs / 8 per segment, near-equal: 7, 7, 6
    assert sorted(len(range(*s.pairs)) for s in segs["l0"]) == [6, 7, 7]


def test_spare_cores_split_wide_then_duplicate_heavy_layers():
    cm = compile_graph(graph((4, 16, 100), (4, 4, 1)), SMALL, n_cores=8)
    check_consistent(cm)
    heavy = [s for s in cm.placement.segments if s.layer == "l0"]
    assert {s.n_cols for s in heavy} == {8}  # 16 columns > 16/2: split in two
    copies = {s.copy for s in heavy}
    assert len(copies) == 3 and len(heavy) == 6  # 8 cores - 1 (light) = 7 -> 3 copies of 2
    assert {s.copy for s in cm.placement.segments if s.layer == "l1"} == {0}


def test_merging_when_cores_run_short_keeps_parallel_segments_disjoint():
    cm = compile_graph(graph((2, 4, 1), (2, 4, 1), (2, 4, 1), (8, 16, 50)), SMALL, n_cores=2)
    check_consistent(cm)
    heavy = [s for s in cm.placement.segments if s.layer == "l3"]
    assert len({s.core for s in heavy}) == 1
    assert all(s.core not in {h.core for h in heavy} for s in cm.placement.segments
               if s.layer != "l3")  # the heavy full-core layer is not merged
    small = [s for s in cm.placement.segments if s.layer != "l3"]
    assert len({s.core for s in small}) == 1
    assert "diagonal" in cm.placement.notes[-1]
    assert "parallel" in core_table(cm)


def test_too_big_for_the_cores_is_refused():
    with pytest.raises(CompileError, match="does not fit: 4 segments cannot be merged into 1"):
        compile_graph(graph((32, 16, 1)), SMALL, n_cores=1)


def test_defective_rows_and_columns_are_skipped(tmp_path):
    p = tmp_path / "die.json"
    p.write_text(json.dumps({"format": "cimflow-defects", "version": 1,
                             "cores": {"0": {"rows": [3, 8], "cols": [0, 15]},
                                       "1": {"rows": list(range(10)), "cols": []}}}))
    d = load_defects(p, SMALL, 3)
    cm = compile_graph(graph((10, 12, 1)), SMALL, n_cores=3, defects=d)
    check_consistent(cm)
    assert cm.placement.excluded == [1]  # 5 of 8 pairs lost: more than half
    assert cm.placement.seg_rows == 12 and cm.placement.seg_cols == 14
    for s in cm.placement.segments:
        if s.core == 0:
            assert not set(s.phys_rows) & {2, 3, 8, 9} and not set(s.phys_cols) & {0, 15}
    t = cm.targets[0]
    assert np.all(t[[2, 3, 8, 9]] == 0) and np.all(t[:, [0, 15]] == 0)
    assert 1 not in cm.targets


@pytest.mark.parametrize("data,msg", [
    ({"format": "x", "version": 1, "cores": {}}, "is not cimflow-defects version 1"),
    ({"format": "cimflow-defects", "version": 1, "cores": {"9": {}}}, "core '9' is not in"),
    ({"format": "cimflow-defects", "version": 1, "cores": {"0": {"rows": [99]}}},
     "core 0 rows must be integers in [0, 15]"),
    ({"format": "cimflow-defects", "version": 1, "cores": {}, "x": 1}, "need exactly"),
])
def test_bad_defect_maps(tmp_path, data, msg):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(data))
    with pytest.raises(CompileError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_defects(p, SMALL, 4)


def test_resnet20_on_48_cores_matches_the_paper(tmp_path):
    p = tmp_path / "r20.ts"
    torch.jit.save(torch.jit.script(zoo.resnet20()), p)
    cm = compile_model(p, preset("full"), 48)
    check_consistent(cm)
    t = totals(cm)
    assert t["layers"] == 22 and t["row_segments"] == 61  # the paper's 61 matrices
    assert t["cores_used"] == 48
    assert abs(t["cells"] - 553_524) / 553_524 < 0.02  # bias rows depend on the weights
    assert 0.17 < t["chip_utilisation"] < 0.18  # paper: 17.6 %


def test_rbm_794x120_interleaves_adjacent_pixels_over_cores():
    from cimflow.mapping.frontend import read_graph

    cm = compile_graph(read_graph(torch.jit.script(zoo.rbm())), preset("full"), 48)
    check_consistent(cm)
    (m,) = cm.layers
    assert (m.n_in, m.n_out) == (794, 120) and m.bias_rows >= 1 and m.bias_cols >= 1
    assert m.precision.keys() == {"forward", "backward"}
    core_of = {}
    for s in cm.placement.segments:
        for r in s.pair_index:
            core_of[int(r)] = s.core
    assert len({core_of[i] for i in range(794)}) == 7  # ceil(2 (794 + B) / 256)
    assert all(core_of[i] != core_of[i + 1] for i in range(793))


def test_lstm_compiles_to_input_and_recurrent_matrices():
    from cimflow.mapping.frontend import read_graph

    cm = compile_graph(read_graph(torch.jit.script(zoo.lstm_kws())), preset("full"), 48)
    check_consistent(cm)
    shapes = {m.name: (m.n_in, m.n_out, m.bias_rows) for m in cm.layers}
    assert shapes["lstm.ih"][:2] == (40, 448) and shapes["lstm.ih"][2] >= 1
    assert shapes["lstm.hh"] == (112, 448, 0)  # both biases ride on the input matrix
    assert all(m.g_max == 30.0 for m in cm.layers if m.op == "lstm")
