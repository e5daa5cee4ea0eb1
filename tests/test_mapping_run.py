"""`cimflow run` and the runtime: the ideal golden chip against an independent torch model
with the chip's quantisation, the stated error bounds, copies, seeds and one-line errors.

The bound (docs/compiler.md#runtime): in ideal mode every row segment's output is one ADC
code, i.e. the exact partial sum ``x_q . W_t`` (x_q the quantised input, W_t the weights
the target conductances represent) to within one code step ``code_scale``, so a matrix
output is within ``R * code_scale`` of ``x_q . W_t + b`` (R row segments).
"""

import io
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cimflow.cli import main
from cimflow.config import preset
from cimflow.mapping.compiler import calibration_inputs, compile_graph, x_top
from cimflow.mapping.frontend import read_graph
from cimflow.mapping.image import write_image
from cimflow.mapping.runtime import FloatBackend, GoldenChip, RunError, quantise, run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = preset("small")  # 16 x 16 cores: 8 pairs per row segment, so every layer splits


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc1 = nn.Linear(4 * 4 * 4, 24)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(y, 1))))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    m = Cnn().eval()
    x = torch.rand(40, 2, 8, 8) * 2 - 0.5
    g = read_graph(torch.export.export(m, (x[:2],)))
    return m, x, g


@pytest.fixture(scope="module")
def cm(net):
    m, x, g = net
    return compile_graph(g, SMALL, n_cores=30, calibration=x[:20].numpy())


# ----------------------------------------------------------------------------- reference
def weights_of_targets(cm, name):
    """W as the target conductances represent it ((G+ - G-) w_max / g_max, 2^-10 uS grid),
    bias rows included: an independent decoding of the image."""
    lm = cm.layer(name)
    gp, gm = cm.conductances(name)
    q = 2.0 ** -10
    return (np.rint(gp / q) - np.rint(gm / q)) * q * lm.w_max / lm.g_max


def quantised_input(lm, x):
    top = x_top(lm.precision["forward"]["in_bits"])
    xq = torch.round(torch.clamp(torch.as_tensor(x, dtype=torch.float64) / lm.input_scale,
                                 -1, 1) * top)
    bias = torch.full(xq.shape[:-1] + (lm.bias_rows,), float(top), dtype=torch.float64)
    return torch.cat([xq, bias], -1) * lm.input_scale / top


def reference_matvec(cm, name, x):
    """The chip's quantisation in torch, without the golden model: quantised inputs, the
    targets' weights, and per row segment an ADC that truncates toward zero (a positive
    charge on a threshold reads one code lower, a zero charge reads 0), codes read at the
    middle of their bin and clipped at the largest code."""
    lm = cm.layer(name)
    w = torch.from_numpy(weights_of_targets(cm, name))
    xa = quantised_input(lm, x)
    y = torch.zeros(xa.shape[0], lm.cols, dtype=torch.float64)
    top = (1 << (lm.precision["forward"]["out_bits"] - 1)) - 1
    for s in cm.segments_of(name):
        step = torch.from_numpy(cm.code_scale[(s.layer, s.index, s.copy)])
        part = xa[:, s.pair_index] @ w[s.pair_index, s.cols[0]:s.cols[1]]
        mag = torch.where(part > 0, torch.ceil(part / step) - 1, torch.floor(-part / step))
        mag = mag.clamp(max=top)
        v = torch.where(part > 0, mag + 0.5, torch.where(mag > 0, -(mag + 0.5), 0.0 * mag))
        y[:, s.cols[0]:s.cols[1]] += v * step
    return y[:, :lm.n_out].numpy()


# ----------------------------------------------------------------------------- tests
def test_layers_have_several_row_segments(cm):
    rows = {m.name: len({s.pairs for s in cm.segments_of(m.name)}) for m in cm.layers}
    assert min(rows.values()) >= 3, rows


@pytest.fixture(scope="module")
def acts(net):
    """Every matrix's inputs on the calibration batch: no row segment saturates on them."""
    return calibration_inputs(net[2], net[1][:20].numpy())


def test_ideal_matvec_within_one_code_step_per_row_segment(cm, acts):
    chip = GoldenChip(cm, ideal=True)
    for lm in cm.layers:
        x = acts[lm.name]
        y = chip(lm.name, x)
        exact = (quantised_input(lm, x).numpy() @ weights_of_targets(cm, lm.name))[:, :lm.n_out]
        segs = cm.segments_of(lm.name)
        step = np.zeros(lm.cols)
        for s in segs:
            step[s.cols[0]:s.cols[1]] = np.maximum(step[s.cols[0]:s.cols[1]],
                                                   cm.code_scale[(s.layer, s.index, 0)])
        bound = len({s.pairs for s in segs}) * step[:lm.n_out]
        err = np.abs(y - exact)
        assert np.all(err <= bound * (1 + 1e-9)), (lm.name, (err / bound).max())
        assert np.mean(err / bound) < 0.5  # the codes' centres, not a loose bound


def test_ideal_matvec_equals_the_torch_adc_reference(cm):
    chip = GoldenChip(cm, ideal=True)
    rng = np.random.default_rng(1)
    for lm in cm.layers:
        x = rng.uniform(-1, 1, (300, lm.n_in)) * lm.input_scale
        y, ref = chip(lm.name, x), reference_matvec(cm, lm.name, x)
        step = max(v.max() for k, v in cm.code_scale.items() if k[0] == lm.name)
        # codes agree except where a partial sum lies within float rounding of a threshold
        assert np.mean(np.isclose(y, ref, rtol=0, atol=1e-9 * step)) > 0.995, lm.name
        assert np.abs(y - ref).max() <= 1.0001 * step * len(cm.segments_of(lm.name))


def test_ideal_matvec_against_float_within_the_quantisation_bound(cm, net, acts):
    """|chip - (x W + b)| <= R steps + input quantisation sum_i |W_i| s_in / (2 x_top)
    + weight encoding sum_i |x_q,i| |W_i - W_t,i|."""
    chip, fb = GoldenChip(cm, ideal=True), FloatBackend(net[2])
    for lm in cm.layers:
        w, b = fb.w[lm.name]
        x = acts[lm.name]
        y, yf = chip(lm.name, x), fb(lm.name, x)
        xa = quantised_input(lm, x).numpy()
        wt = weights_of_targets(cm, lm.name)[:, :lm.n_out]
        full = np.vstack([w, np.tile(b / (lm.input_scale * max(lm.bias_rows, 1)),
                                     (lm.bias_rows, 1))]) if lm.bias_rows else w
        top = x_top(lm.precision["forward"]["in_bits"])
        step = max(v.max() for k, v in cm.code_scale.items() if k[0] == lm.name)
        bound = (len(cm.segments_of(lm.name)) * step
                 + np.abs(w).sum(0) * lm.input_scale / (2 * top)
                 + np.abs(xa) @ np.abs(full - wt))
        assert np.all(np.abs(y - yf) <= bound * (1 + 1e-9)), lm.name
        assert np.abs(y - yf).max() > 0  # the chip is not the float model


def test_ideal_chip_equals_the_quantised_torch_model_end_to_end(cm, net):
    m, x, g = net
    y = run_model(cm, x.numpy(), ideal=True)

    def q(name, v):
        return torch.from_numpy(reference_matvec(cm, name, v.reshape(-1, v.shape[-1]).numpy()))

    with torch.no_grad():
        lm = cm.layer("conv")
        cols = F.unfold(x.double(), 3, padding=1)  # (N, I*9, L), rows (i, h, w)
        cols = cols.reshape(len(x), 2, 9, 64).permute(0, 3, 2, 1).reshape(-1, 18)  # HWI
        c = q("conv", cols).reshape(len(x), 8, 8, lm.n_out).permute(0, 3, 1, 2)
        h = torch.flatten(F.max_pool2d(torch.relu(c), 2), 1)
        ref = q("fc2", torch.relu(q("fc1", h))).numpy()
    close = np.isclose(y, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    assert close.mean() > 0.97, close.mean()
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.95
    # and both are near the float model (4-bit inputs: a loose check only)
    f = m(x).detach().numpy()
    assert np.linalg.norm(y - f) / np.linalg.norm(f) < 0.3


def test_copies_split_the_batch_and_change_nothing_ideal(net):
    m, x, g = net
    few = compile_graph(g, SMALL, n_cores=25, calibration=x[:20].numpy())
    many = compile_graph(g, SMALL, n_cores=80, calibration=x[:20].numpy())
    assert max(s.copy for s in many.placement.segments) >= 1
    assert max(s.copy for s in few.placement.segments) == 0
    np.testing.assert_array_equal(run_model(few, x.numpy(), ideal=True),
                                  run_model(many, x.numpy(), ideal=True))


class _PlainChip(GoldenChip):
    """A chip that overrides __call__: the interpreter calls it per matrix with float inputs
    (unfolded patches for a convolution), as before the codes path existed."""

    def __call__(self, name, x):
        return super().__call__(name, x)


@pytest.mark.parametrize("ideal", [True, False])
def test_the_codes_path_equals_the_float_path_bit_for_bit(cm, net, ideal):
    """The interpreter hands a chip input codes (a convolution's image quantised once, then
    im2col of the int8 codes); a chip called with float patches (F.unfold-like) gives the
    same outputs exactly, noise included (same seed); input_codes is quantise."""
    x = net[1].numpy()
    fast = run_model(cm, x, chip=GoldenChip(cm, ideal=ideal, seed=5))
    plain = run_model(cm, x, chip=_PlainChip(cm, ideal=ideal, seed=5))
    np.testing.assert_array_equal(fast, plain)
    chip = GoldenChip(cm, ideal=True)
    lm = cm.layer("fc1")
    v = np.random.default_rng(0).normal(0, 2 * lm.input_scale, (50, lm.n_in))
    np.testing.assert_array_equal(chip.input_codes("fc1", v),
                                  quantise(v, lm.input_scale, lm.precision["forward"]["in_bits"]))


def test_non_ideal_chip_is_seeded_and_near_the_ideal_one(cm, net):
    x = net[1].numpy()
    ideal = run_model(cm, x, ideal=True)
    a = run_model(cm, x, seed=3)
    b = run_model(cm, x, seed=3)
    c = run_model(cm, x, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, ideal)
    assert np.linalg.norm(a - ideal) / np.linalg.norm(ideal) < 0.5
    chip = GoldenChip(cm, seed=3)
    assert chip.programming["rms_error_us"] > 0.1  # programmed, not copied


@pytest.mark.filterwarnings("ignore:The tensor attributes")  # torch.export on nn.LSTM
def test_lstm_and_rbm_run(tmp_path):
    from cimflow.mapping import zoo

    cases = ((zoo.lstm_kws(), torch.randn(6, 3, 40), "ts"), (zoo.lstm_kws(), torch.randn(6, 3, 40),
             "pt2"), (zoo.rbm(), torch.rand(5, 794), "ts"))
    for model, x, fmt in cases:
        g = read_graph(torch.jit.script(model) if fmt == "ts" else
                       torch.export.export(model, (x,)))
        cmod = compile_graph(g, preset("full"), calibration=x.numpy())
        ref = model(x).detach().numpy()
        y = run_model(cmod, x.numpy(), ideal=True)
        assert y.shape == ref.shape
        assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.25


def test_wrong_batches_are_one_line_errors(cm):
    for bad, msg in ((np.zeros((3, 2, 8, 7)), "the model takes (N, 2, 8, 8)"),
                     (np.zeros((0, 2, 8, 8)), "non-empty batch"),
                     (np.full((1, 2, 8, 8), np.nan), "NaN"),
                     (np.zeros((1, 2, 8, 8), bool), "numeric")):
        with pytest.raises(RunError) as e:
            run_model(cm, bad, ideal=True)
        assert msg in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture()
def image(tmp_path, cm):
    return write_image(cm, tmp_path / "img")


def npy(path, a):
    buf = io.BytesIO()
    np.save(buf, a)
    path.write_bytes(buf.getvalue())
    return path


def one_error_line(capsys, msg):
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if e.startswith("cimflow:")]
    assert len(err) == 1 and msg in err[0], err


def test_cli_run_ideal_equals_the_library(image, cm, net, tmp_path, capsys):
    x = npy(tmp_path / "x.npy", net[1].numpy()[:9])
    out = tmp_path / "y.npy"
    assert main(["run", str(image), "--input", str(x), "--out", str(out), "--ideal"]) == 0
    assert "9 outputs of shape (5,)" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out), run_model(cm, net[1].numpy()[:9], ideal=True))
    assert main(["run", str(image), "--input", str(x), "--out", str(out), "--seed", "5"]) == 0
    np.testing.assert_array_equal(np.load(out), run_model(cm, net[1].numpy()[:9], seed=5))


@pytest.mark.parametrize("case", ["flip", "truncate", "shape", "not-npy"])
def test_cli_run_refuses_bad_images_and_inputs(image, net, tmp_path, capsys, case):
    x = npy(tmp_path / "x.npy", net[1].numpy()[:3])
    out = tmp_path / "y.npy"
    core = sorted((image / "cores").glob("*.npy"))[0]
    msg = {"flip": "checksum mismatch", "truncate": "truncated", "shape": "the model takes",
           "not-npy": "is not a .npy array"}[case]
    if case == "flip":
        data = bytearray(core.read_bytes())
        data[len(data) // 2] ^= 0x10
        core.write_bytes(bytes(data))
    elif case == "truncate":
        core.write_bytes(core.read_bytes()[:-7])
    elif case == "shape":
        x = npy(x, np.zeros((3, 8, 8, 2)))
    else:
        x.write_bytes(b"not an array")
    assert main(["run", str(image), "--input", str(x), "--out", str(out), "--ideal"]) == 2
    one_error_line(capsys, msg)
    assert not out.exists() and not list(tmp_path.glob(".y.npy*"))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1000), pos=st.integers(0, 1 << 30), xor=st.integers(1, 255),
       truncate=st.booleans())
def test_cli_run_refuses_any_corrupted_byte(tmp_path, cm, which, pos, xor, truncate,
                                            capsys):
    root = tmp_path / f"img-{which}-{pos}-{xor}-{truncate}"
    if not (tmp_path / "clean").exists():
        write_image(cm, tmp_path / "clean")
    shutil.copytree(tmp_path / "clean", root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    f = files[which % len(files)]
    data = bytearray(f.read_bytes())
    if truncate:
        data = data[:pos % len(data)]
    else:
        data[pos % len(data)] ^= xor
    f.write_bytes(bytes(data))
    x = npy(tmp_path / "x.npy", np.zeros((2, 2, 8, 8), np.float32))
    out = tmp_path / f"y-{which}.npy"
    capsys.readouterr()
    assert main(["run", str(root), "--input", str(x), "--out", str(out), "--ideal"]) == 2
    err = [e for e in capsys.readouterr().err.splitlines() if e.startswith("cimflow:")]
    assert len(err) == 1 and err[0].startswith("cimflow: error:"), err
    assert not out.exists()


def test_relaxation_switch_reaches_programming(cm):
    from cimflow.golden.nonideal import REALISTIC, NonIdeal

    relaxed = GoldenChip(cm, seed=1).programming["rms_error_us"]
    base = {**REALISTIC.__dict__, "relaxation": False}
    tight = GoldenChip(cm, seed=1, nonideal=NonIdeal(**base)).programming["rms_error_us"]
    assert tight < cm.tolerance < relaxed  # write-verify alone lands within tolerance
