"""Front end: both file formats read to the same graph; the matrices it extracts compute what
torch computes (BN folding, HWI order, LSTM gates); unsupported input is named in one line."""

import numpy as np
import pytest
import torch
from torch import nn

from cimflow.mapping import zoo
from cimflow.mapping.errors import CompileError
from cimflow.mapping.frontend import load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _save(model, path, fmt, example):
    model = model.eval()
    if fmt == "ts":
        torch.jit.save(torch.jit.script(model), path)
    else:
        torch.export.save(torch.export.export(model, (example,)), path)
    return path


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(5 * 4 * 4, 7)

    def forward(self, x):
        y = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(y + y, 1))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    m = SmallCnn().eval()
    zoo._randomise_bn(m)
    return m


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
def test_both_formats_give_the_same_layers(cnn, tmp_path, fmt):
    g, name = load_model(_save(cnn, tmp_path / f"m.{fmt}", fmt, torch.zeros(1, 3, 8, 8)))
    assert name == {"ts": "torchscript", "pt2": "exported-program"}[fmt]
    assert [(n.name, n.op) for n in g.analog] == [("conv", "conv2d"), ("fc", "linear")]
    digital = {n.op.lower() for n in g.nodes if n.kind == "digital"}
    assert {"relu", "add", "flatten"} <= digital and ("maxpool2d" in digital
                                                      or "max_pool2d" in digital)
    assert "batch_norm" not in {n.op for n in g.nodes}  # folded
    # dataflow: the linear layer reads what the digital nodes made of the conv's output
    producer = {v: n for n in g.nodes for v in n.outputs}
    fc = g.analog[1]
    assert producer[fc.inputs[0]].kind == "digital" and g.outputs == fc.outputs
    if fmt == "pt2":
        assert g.analog[0].attrs["shape"] == [1, 5, 8, 8]


def test_folded_conv_in_hwi_order_reproduces_conv_and_batchnorm(cnn, tmp_path):
    """The HWI-flattened, BN-folded matrix applied to HWI patches equals torch's bn(conv(x))."""
    g, _ = load_model(_save(cnn, tmp_path / "m.ts", "ts", None))
    conv = g.analog[0]
    w, b = conv.params["weight"], conv.params["bias"]
    assert w.shape == (3 * 3 * 3, 5)
    x = torch.randn(2, 3, 8, 8)
    ref = cnn.bn(cnn.conv(x)).detach().double().numpy()
    xp = np.pad(x.double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    # patch row order (h, w, i): index (h * kW + w) * I + i
    patches = np.stack([xp[:, :, h:h + 8, v:v + 8] for h in range(3) for v in range(3)], 1)
    patches = patches.transpose(0, 3, 4, 1, 2).reshape(2, 8, 8, 27)
    y = (patches @ w + b).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
def test_lstm_matrices_reproduce_torch_lstm_step(tmp_path, fmt):
    m = zoo.lstm_kws()
    g, _ = load_model(_save(m, tmp_path / f"l.{fmt}", fmt, torch.zeros(3, 1, 40)))
    lstm = next(n for n in g.analog if n.op == "lstm")
    p = lstm.params
    assert p["weight_ih"].shape == (40, 448) and p["weight_hh"].shape == (112, 448)
    x = torch.randn(2, 1, 40)
    ref = m.lstm(x)[0].detach().double().numpy()[:, 0]
    h = c = np.zeros(112)
    for t in range(2):
        z = x[t, 0].double().numpy() @ p["weight_ih"] + h @ p["weight_hh"] + p["bias"]
        i, f, gg, o = np.split(z, 4)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(gg)
        h = sig(o) * np.tanh(c)
        np.testing.assert_allclose(h, ref[t], atol=1e-5)


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
def test_rbm_is_recognised_by_class_name(tmp_path, fmt):
    r = zoo.rbm(n_visible=30, n_hidden=6)
    g, _ = load_model(_save(r, tmp_path / f"r.{fmt}", fmt, torch.zeros(1, 30)))
    (node,) = g.nodes
    assert node.op == "rbm" and node.attrs["n_visible"] == 30
    np.testing.assert_array_equal(node.params["weight"], r.weight.detach().double().numpy())
    np.testing.assert_array_equal(node.params["visible_bias"],
                                  r.visible_bias.detach().double().numpy())


class WithGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 4)

    def forward(self, x):
        return self.rnn(x)[0]


class WithExp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.exp(self.fc(x))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, groups=4)

    def forward(self, x):
        return self.dw(x)


class LoneBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(x) + 1


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
@pytest.mark.parametrize("model,shape,msg", [
    (WithGru, (2, 1, 4), "unsupported module 'rnn' of type GRU"),
    (WithExp, (1, 4), "unsupported operator aten::exp"),
    (Grouped, (1, 4, 5, 5), "unsupported module 'dw' of type Conv2d: groups = 4"),
    (LoneBn, (1, 4, 2, 2), "'bn' of type BatchNorm2d does not directly follow a Conv2d"),
])
def test_unsupported_input_is_named_in_one_line(tmp_path, fmt, model, shape, msg):
    path = _save(model(), tmp_path / f"m.{fmt}", fmt, torch.zeros(*shape))
    with pytest.raises(CompileError) as e:
        load_model(path)
    assert msg in str(e.value) and "\n" not in str(e.value)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


@pytest.mark.parametrize("fmt", ["ts", "pt2"])
def test_a_module_called_twice_shares_its_matrix(tmp_path, fmt):
    from cimflow.config import preset
    from cimflow.mapping.compiler import compile_graph

    g, _ = load_model(_save(Twice(), tmp_path / f"t.{fmt}", fmt, torch.zeros(1, 4)))
    first, second = g.analog
    assert first.name == "fc" and second.attrs["shares"] == "fc" and not second.params
    assert second.inputs[0] in g.nodes[1].outputs  # reads the relu of the first call
    cm = compile_graph(g, preset("small"), n_cores=2)
    assert [m.name for m in cm.layers] == ["fc"]


def test_not_a_model(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"hello")
    with pytest.raises(CompileError, match="neither a TorchScript nor an ExportedProgram"):
        load_model(p)
    with pytest.raises(CompileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
