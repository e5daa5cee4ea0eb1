"""Front end: a saved PyTorch model -> :class:`~cimflow.mapping.graph.Graph`.

Two formats are read, chosen by content (not by file name):

* TorchScript (``torch.jit.save``): the module-level graph of ``forward`` is walked; calls
  into user modules and containers are followed, supported ``torch.nn`` modules are leaves.
* ExportedProgram (``torch.export.save``, ``.pt2``): the program is unflattened back into
  its module hierarchy (``torch.export.unflatten``) and walked the same way. Its recorded
  example-input shapes give each layer's output shape, hence the MVMs per inference that
  placement uses to rank compute-heavy layers (TorchScript carries no shapes).

Analog leaves: ``nn.Linear``, ``nn.Conv2d`` (groups = 1), ``nn.BatchNorm2d`` (folded into the
convolution that feeds it), ``nn.LSTM`` (one layer, unidirectional), and an RBM: **any module
whose class name ends in ``RBM``**, with parameter ``weight`` (n_visible x n_hidden) and
optional ``visible_bias`` / ``hidden_bias``; its forward is not read (the Gibbs loop is the
runtime's), its one matrix serves visible -> hidden and hidden -> visible. Everything else
becomes a digital node; an unknown ``torch.nn`` module, an unknown operator or control flow
is refused with a one-line :class:`CompileError` naming it and its type.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CompileError
from .graph import Graph, Node

__all__ = ["load_model", "read_graph"]

_ANALOG = {"Linear", "Conv2d", "BatchNorm2d", "LSTM"}
_DIGITAL_MODULES = {
    "ReLU": (), "Sigmoid": (), "Tanh": (), "ReLU6": (), "Identity": (), "Dropout": ("p",),
    "Flatten": ("start_dim", "end_dim"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "AdaptiveAvgPool2d": ("output_size",), "Softmax": ("dim",), "LogSoftmax": ("dim",),
}
"""torch.nn modules that stay digital, with the attributes recorded for a runtime."""
_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
_DIGITAL_OPS = {
    "relu", "sigmoid", "tanh", "hardtanh", "relu6", "add", "sub", "mul", "div", "flatten",
    "view", "reshape", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "mean", "sum",
    "cat", "stack", "dropout", "contiguous", "size", "permute", "transpose", "t", "squeeze",
    "unsqueeze", "softmax", "log_softmax", "_log_softmax", "_softmax", "clamp", "select",
    "slice", "getitem", "zeros", "zeros_like", "ones", "neg", "Int", "dim", "clone",
    "alias", "detach", "max_pool2d_with_indices", "identity", "_to_copy", "to", "__getitem__",
}
"""Element-wise, pooling and shape operators that stay digital (in-place forms included)."""


def load_model(path: str | Path) -> tuple[Graph, str]:
    """Read a TorchScript or ExportedProgram file; returns (graph, format name)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise CompileError(f"model file {p} does not exist")
    try:
        names = zipfile.ZipFile(p).namelist()
    except (zipfile.BadZipFile, OSError):
        raise CompileError(f"{p} is neither a TorchScript nor an ExportedProgram file "
                           f"(not a zip archive)") from None
    if any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
        loader, fmt = torch.export.load, "exported-program"
    elif any(n.endswith("constants.pkl") or n.endswith("code/__torch__.py") for n in names):
        loader, fmt = (lambda q: torch.jit.load(q, map_location="cpu")), "torchscript"
    else:
        loader = fmt = None
    if loader is not None:
        try:
            with warnings.catch_warnings():  # torch's deprecation notices are not ours
                warnings.simplefilter("ignore")
                model = loader(p)
        except Exception as e:  # torch's loaders raise many types; keep one line
            text = str(e).strip()
            msg = text.splitlines()[0] if text else type(e).__name__
            raise CompileError(f"cannot load {p}: {msg}") from None
        try:
            return read_graph(model), fmt
        except CompileError:
            raise
        except Exception as e:  # a torch internal failing on an unusual model: one line
            text = str(e).strip()
            msg = text.splitlines()[0] if text else ""
            raise CompileError(f"cannot read the graph of {p}: {type(e).__name__}: {msg}"
                               ) from None
    raise CompileError(f"{p} is neither a TorchScript nor an ExportedProgram archive")


def read_graph(model: Any) -> Graph:
    """Graph of a loaded ``torch.jit.ScriptModule`` or ``torch.export.ExportedProgram``."""
    import torch

    b = _Builder()
    if isinstance(model, torch.export.ExportedProgram):
        _Pt2Walker(model, b).run()
    elif isinstance(model, torch.jit.ScriptModule):
        _TsWalker(model, b).run()
    else:
        raise CompileError(f"unsupported model object of type {type(model).__name__}")
    return _fold_batchnorm(b.graph())


# ----------------------------------------------------------------------------- builder
class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._n = 0
        self._names: set[str] = set()
        self._analog: set[str] = set()

    def value(self) -> str:
        self._n += 1
        return f"v{self._n - 1}"

    def add(self, name: str, op: str, kind: str, inputs: list[str], n_out: int = 1,
            attrs: dict | None = None, params: dict | None = None) -> list[str]:
        if kind == "analog" and name in self._analog:  # a module called again: same matrix
            attrs, params = {**(attrs or {}), "shares": name}, {}
        elif kind == "analog":
            self._analog.add(name)
        base, k = name or op, 1
        while name in self._names or not name:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        outs = [self.value() for _ in range(n_out)]
        self.nodes.append(Node(name, op, kind, inputs, outs, attrs or {}, params or {}))
        return outs

    def graph(self) -> Graph:
        return Graph(self.inputs, self.outputs, self.nodes)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _jsonable(x: Any) -> Any:
    """Constant arguments as JSON values (tensors and dtypes by description)."""
    import torch

    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        if x.numel() == 1:
            return x.item()
        raise CompileError(f"a constant tensor of shape {tuple(x.shape)} is used as an "
                           f"operator argument (only parameters of supported modules are)")
    return str(x)


def _tensor_refs(args: list) -> list[str]:
    out = []
    for a in args:
        if isinstance(a, dict) and "ref" in a:
            out.append(a["ref"])
        elif isinstance(a, list):
            out.extend(_tensor_refs(a))
    return out


def _short(cls: str) -> str:
    return cls.rsplit(".", 1)[-1]


def _is_torch_nn(qualname: str) -> bool:
    return qualname.startswith(("torch.nn.", "__torch__.torch.nn."))


# ----------------------------------------------------------------------------- leaves
def _leaf(b: _Builder, path: str, cls: str, params: dict, hyper: dict, inputs: list[str],
          shape: list[int] | None, n_out: int = 1) -> list[str]:
    """Emit the node of an analog leaf module (or the BatchNorm2d to be folded)."""
    attrs: dict[str, Any] = {"module": cls}
    if shape is not None:
        attrs["shape"] = shape

    def need(name: str) -> np.ndarray:
        if name not in params or params[name] is None:
            raise CompileError(f"module {path!r} of type {cls} has no parameter {name!r}")
        return params[name]

    if cls == "Linear":
        w = need("weight")
        return b.add(path, "linear", "analog", inputs, 1, attrs,
                     {"weight": w.T.copy(), "bias": params.get("bias")})
    if cls == "Conv2d":
        w = need("weight")
        if hyper.get("groups", 1) != 1:
            raise CompileError(f"unsupported module {path!r} of type Conv2d: groups = "
                               f"{hyper['groups']} (grouped convolution)")
        o, i, kh, kw = w.shape
        attrs.update(in_channels=i, out_channels=o, kernel_size=[kh, kw],
                     **{k: _jsonable(hyper.get(k)) for k in ("stride", "padding", "dilation")})
        hwi = w.transpose(2, 3, 1, 0).reshape(kh * kw * i, o)  # row (h*kw + w)*I + i
        return b.add(path, "conv2d", "analog", inputs, 1, attrs,
                     {"weight": hwi.copy(), "bias": params.get("bias")})
    if cls == "BatchNorm2d":
        eps = float(hyper.get("eps", 1e-5))
        p = {k: need(k) for k in ("running_mean", "running_var")}
        n = p["running_mean"].size
        p["weight"] = params.get("weight") if params.get("weight") is not None else np.ones(n)
        p["bias"] = params.get("bias") if params.get("bias") is not None else np.zeros(n)
        return b.add(path, "batch_norm", "digital", inputs, 1, {**attrs, "eps": eps}, p)
    if cls == "LSTM":
        if hyper.get("num_layers", 1) != 1 or hyper.get("bidirectional", False):
            raise CompileError(f"unsupported module {path!r} of type LSTM: only one "
                               f"unidirectional layer per nn.LSTM (stack modules instead)")
        if hyper.get("proj_size", 0):
            raise CompileError(f"unsupported module {path!r} of type LSTM: proj_size > 0")
        w_ih, w_hh = need("weight_ih_l0"), need("weight_hh_l0")
        bias = None
        if params.get("bias_ih_l0") is not None:
            bias = params["bias_ih_l0"] + params.get("bias_hh_l0", 0)
        attrs.update(input_size=w_ih.shape[1], hidden_size=w_hh.shape[1],
                     batch_first=bool(hyper.get("batch_first", False)))
        return b.add(path, "lstm", "analog", inputs, n_out, attrs,
                     {"weight_ih": w_ih.T.copy(), "weight_hh": w_hh.T.copy(), "bias": bias})
    if cls.endswith("RBM"):
        w = need("weight")
        if w.ndim != 2:
            raise CompileError(f"RBM module {path!r}: weight must be 2-D (n_visible, "
                               f"n_hidden), got shape {w.shape}")
        attrs.update(n_visible=w.shape[0], n_hidden=w.shape[1])
        return b.add(path, "rbm", "analog", inputs, n_out, attrs,
                     {"weight": w, "bias": params.get("hidden_bias"),
                      "visible_bias": params.get("visible_bias")})
    raise AssertionError(cls)


def _fold_batchnorm(g: Graph) -> Graph:
    """Fold every BatchNorm2d into the Conv2d whose output only it reads:
    W' = W gamma / sigma, b' = (b - mean) gamma / sigma + beta, sigma = sqrt(var + eps)."""
    producer = {v: n for n in g.nodes for v in n.outputs}
    readers: dict[str, int] = {}
    for n in g.nodes:
        for v in n.inputs:
            readers[v] = readers.get(v, 0) + 1
    keep = []
    for n in g.nodes:
        if n.op != "batch_norm":
            keep.append(n)
            continue
        conv = producer.get(n.inputs[0]) if n.inputs else None
        if conv is None or conv.op != "conv2d" or readers.get(n.inputs[0], 0) != 1:
            raise CompileError(f"module {n.name!r} of type BatchNorm2d does not directly "
                               f"follow a Conv2d, so it cannot be folded")
        p = n.params
        s = p["weight"] / np.sqrt(p["running_var"] + n.attrs["eps"])
        bias = conv.params["bias"] if conv.params["bias"] is not None else 0.0
        conv.params["weight"] = conv.params["weight"] * s[None, :]
        conv.params["bias"] = (bias - p["running_mean"]) * s + p["bias"]
        conv.attrs["folded"] = n.name
        if "shape" in n.attrs:
            conv.attrs["shape"] = n.attrs["shape"]
        conv.outputs = list(n.outputs)
    g.nodes = keep
    return g


# ----------------------------------------------------------------------------- TorchScript
class _TsWalker:
    def __init__(self, model, b: _Builder) -> None:
        self.model, self.b = model, b

    def run(self) -> None:
        m = self.model
        if m.original_name.endswith("RBM"):
            self.b.inputs = [self.b.value()]
            res = self._module(m, "rbm", [{"ref": self.b.inputs[0]}])
            self.b.outputs = _tensor_refs(res)
            return
        g = m.graph
        env: dict[Any, Any] = {}
        ins = list(g.inputs())
        env[ins[0]] = ("module", m, "")
        for v in ins[1:]:
            name = self.b.value()
            self.b.inputs.append(name)
            env[v] = {"ref": name}
        outs = self._body(g, env, "")
        self.b.outputs = _tensor_refs(outs)

    def _body(self, g, env: dict, path: str) -> list:
        for n in g.nodes():
            self._node(n, env, path)
        return [env[v] for v in g.return_node().inputs()]

    def _node(self, n, env: dict, path: str) -> None:
        k = n.kind()
        outs = list(n.outputs())
        ins = [env.get(v) for v in n.inputs()]
        if k == "prim::Constant":
            fn = outs[0].type().kind() == "FunctionType"
            env[outs[0]] = n.s("name") if fn else _ts_const(outs[0])
            return
        if k == "prim::GetAttr":
            owner = ins[0]
            attr = getattr(owner[1], n.s("name"))
            sub = f"{owner[2]}.{n.s('name')}".lstrip(".")
            import torch
            if isinstance(attr, torch.jit.ScriptModule):
                env[outs[0]] = ("module", attr, sub)
            elif isinstance(attr, torch.Tensor):
                raise CompileError(f"parameter {sub!r} is used directly in an operator (only "
                                   f"parameters of supported modules can be mapped)")
            else:
                env[outs[0]] = _jsonable(attr)
            return
        if k == "prim::CallMethod":
            mod = ins[0]
            if not (isinstance(mod, tuple) and n.s("name").startswith("forward")):
                raise CompileError(f"unsupported method call {n.s('name')!r} in {path!r}")
            res = self._module(mod[1], mod[2], ins[1:])
            if len(outs) == 1 and len(res) != 1:
                env[outs[0]] = res  # a tuple result
            else:
                for v, r in zip(outs, res, strict=False):
                    env[v] = r
            return
        if k in ("prim::ListConstruct", "prim::TupleConstruct"):
            env[outs[0]] = list(ins)
            return
        if k in ("prim::TupleUnpack", "prim::ListUnpack"):
            seq = ins[0]
            if isinstance(seq, list) and len(seq) == len(outs):
                for v, r in zip(outs, seq, strict=False):
                    env[v] = r
                return
            res = self.b.add("", "unpack", "digital", _tensor_refs(ins), len(outs),
                             {"call": "aten", "args": ins})
            for v, r in zip(outs, res, strict=False):
                env[v] = {"ref": r}
            return
        if k in ("prim::If", "prim::Loop"):
            raise CompileError(f"unsupported control flow {k} in {path or 'forward'!r} "
                               f"(data-dependent Python branches cannot be mapped)")
        if k == "prim::CallFunction":
            fname = ins[0]
            if fname not in _DIGITAL_OPS:
                raise CompileError(f"unsupported function {fname!r} in {path or 'forward'!r}")
            self._emit(fname, "functional", ins[1:], outs, env)
            return
        if k.startswith("aten::"):
            op = k[6:]
            base = op.rstrip("_")
            if base in ("linear", "conv2d", "matmul", "mm", "addmm", "_convolution", "lstm"):
                raise CompileError(f"unsupported operator {k} in {path or 'forward'!r}: "
                                   f"use nn.Linear / nn.Conv2d / nn.LSTM modules")
            if base not in _DIGITAL_OPS:
                raise CompileError(f"unsupported operator {k} in {path or 'forward'!r}")
            self._emit(base, "aten", ins, outs, env)
            return
        if k in ("prim::NumToTensor", "prim::device", "prim::dtype", "aten::Int"):
            self._emit(k.split("::")[1], "aten", ins, outs, env)
            return
        raise CompileError(f"unsupported operator {k} in {path or 'forward'!r}")

    def _emit(self, op: str, call: str, args: list, outs, env: dict) -> None:
        res = self.b.add("", op, "digital", _tensor_refs(args), len(outs),
                         {"call": call, "args": args})
        for v, r in zip(outs, res, strict=False):
            env[v] = {"ref": r}

    def _module(self, mod, path: str, args: list) -> list:
        cls = mod.original_name
        qual = mod._c._type().qualified_name()
        refs = _tensor_refs(args)
        if cls in _ANALOG or cls.endswith("RBM"):
            params = {k: _np(v) for k, v in mod.named_parameters(recurse=False)}
            params.update({k: _np(v) for k, v in mod.named_buffers(recurse=False)})
            hyper = {h: getattr(mod, h, None) for h in (
                "stride", "padding", "dilation", "groups", "eps", "num_layers",
                "bidirectional", "batch_first", "proj_size")}
            hyper = {k: v for k, v in hyper.items() if v is not None}
            n_out = 3 if cls == "LSTM" else 1
            res = _leaf(self.b, path, cls, params, hyper, refs, None, n_out)
            if cls == "LSTM":  # (output, (h_n, c_n)) as TorchScript returns it
                return [[{"ref": res[0]}, [{"ref": res[1]}, {"ref": res[2]}]]]
            return [{"ref": r} for r in res]
        if cls in _DIGITAL_MODULES:
            attrs = {h: _jsonable(getattr(mod, h)) for h in _DIGITAL_MODULES[cls]}
            res = self.b.add(path, cls, "digital", refs, 1,
                             {"call": "module", "args": args, "hyper": attrs})
            return [{"ref": res[0]}]
        if _is_torch_nn(qual) and cls not in _CONTAINERS:
            raise CompileError(f"unsupported module {path or 'model'!r} of type {cls}")
        g = mod.graph
        env: dict[Any, Any] = {}
        ins = list(g.inputs())
        env[ins[0]] = ("module", mod, path)
        for v, a in zip(ins[1:], args, strict=False):
            env[v] = a
        res = self._body(g, env, path)
        return res


def _ts_const(v) -> Any:
    try:
        return _jsonable(v.toIValue())
    except CompileError:
        raise
    except Exception:
        return None


# ----------------------------------------------------------------------------- .pt2
class _Pt2Walker:
    def __init__(self, ep, b: _Builder) -> None:
        import torch

        self.ep, self.b = ep, b
        self.types: dict[str, str] = {}
        for n in ep.graph.nodes:
            for fqn, typ in n.meta.get("nn_module_stack", {}).values():
                self.types[fqn] = typ if isinstance(typ, str) else getattr(typ, "__name__", "")
        self.state = {k: _np(v) for k, v in ep.state_dict.items()}
        self.state.update({k: _np(v) for k, v in getattr(ep, "constants", {}).items()
                           if isinstance(v, torch.Tensor)})

    def run(self) -> None:
        import torch

        top = self.types.get("", "")
        user = self.ep.graph_signature.user_inputs
        self.b.inputs = [self.b.value() for _ in user]
        if _short(top).endswith("RBM") or not self.types:
            cls = _short(top) or type(self.ep.module()).__name__
            if not cls.endswith("RBM"):
                raise CompileError("the exported program has no module structure to read")
            self.b.outputs = _leaf(self.b, "rbm", cls, self._params(""), {},
                                   self.b.inputs, None)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = torch.export.unflatten(self.ep)
        res = self._graph(u, "", [{"ref": v} for v in self.b.inputs])
        self.b.outputs = _tensor_refs(res)
        self._input_shape()

    def _input_shape(self) -> None:
        """Record the example input's shape on the first node reading the model input
        (``attrs["in_shape"]``), so a runtime can check a batch's shape."""
        user = set(self.ep.graph_signature.user_inputs)
        shapes = [_shape(n) for n in self.ep.graph.nodes
                  if n.op == "placeholder" and n.name in user]
        if len(shapes) != 1 or shapes[0] is None or not self.b.inputs:
            return
        for n in self.b.nodes:
            if self.b.inputs[0] in n.inputs:
                n.attrs["in_shape"] = shapes[0]
                return

    def _params(self, fqn: str) -> dict:
        pre = f"{fqn}." if fqn else ""
        return {k[len(pre):]: v for k, v in self.state.items()
                if k.startswith(pre) and "." not in k[len(pre):]}

    def _graph(self, mod, path: str, args: list) -> list:
        env: dict[str, Any] = {}
        it = iter(args)
        out: list = []
        for n in mod.graph.nodes:
            if n.op == "placeholder":
                env[n.name] = next(it, None)
            elif n.op == "get_attr":
                env[n.name] = ("attr", f"{path}.{n.target}".lstrip("."))
            elif n.op == "call_module":
                fqn = f"{path}.{n.target}".lstrip(".")
                res = self._module(mod.get_submodule(n.target), fqn,
                                   [self._arg(a, env) for a in n.args], n)
                env[n.name] = res if len(res) != 1 else res[0]
            elif n.op == "call_function":
                env[n.name] = self._call(n, env, path)
            elif n.op == "output":
                out = [self._arg(a, env) for a in n.args]
                out = out[0] if len(out) == 1 and isinstance(out[0], list) else out
        return out

    def _arg(self, a, env: dict) -> Any:
        import torch.fx

        if isinstance(a, torch.fx.Node):
            v = env[a.name]
            if isinstance(v, tuple) and v[0] == "attr":
                raise CompileError(f"parameter {v[1]!r} is used directly in an operator (only "
                                   f"parameters of supported modules can be mapped)")
            return v
        if isinstance(a, (list, tuple)):
            return [self._arg(x, env) for x in a]
        return _jsonable(a)

    def _call(self, n, env: dict, path: str) -> Any:
        import operator

        if n.target is operator.getitem:
            seq, i = self._arg(n.args[0], env), n.args[1]
            if isinstance(seq, list):
                return seq[i]
            op, call = "getitem", "python"
        else:
            schema = getattr(n.target, "_schema", None)
            name = schema.name if schema is not None else str(n.target)
            op, call = name.split("::")[-1], "aten"
            if op in ("linear", "conv2d", "matmul", "mm", "addmm", "convolution", "lstm"):
                raise CompileError(f"unsupported operator aten::{op} in {path or 'forward'!r}:"
                                   f" use nn.Linear / nn.Conv2d / nn.LSTM modules")
            if op.rstrip("_") not in _DIGITAL_OPS:
                raise CompileError(f"unsupported operator {name} in {path or 'forward'!r}")
        args = [self._arg(a, env) for a in n.args]
        kwargs = {k: self._arg(v, env) for k, v in n.kwargs.items()}
        attrs = {"call": call, "args": args, "kwargs": kwargs}
        shape = _shape(n)
        if shape is not None:
            attrs["shape"] = shape
        res = self.b.add("", op.rstrip("_"), "digital", _tensor_refs(args) +
                         _tensor_refs(list(kwargs.values())), 1, attrs)
        return {"ref": res[0]}

    def _module(self, sub, fqn: str, args: list, node) -> list:
        typ = self.types.get(fqn, "")
        cls = _short(typ)
        refs = _tensor_refs(args)
        if cls in _ANALOG or cls.endswith("RBM"):
            hyper = _inner_hyper(sub) if hasattr(sub, "graph") else {}
            res = _leaf(self.b, fqn, cls, self._params(fqn), hyper, refs, _shape(node))
            return [{"ref": r} for r in res]
        if _is_torch_nn(typ) and cls not in _CONTAINERS and cls not in _DIGITAL_MODULES:
            raise CompileError(f"unsupported module {fqn!r} of type {cls}")
        return self._graph(sub, fqn, args)


def _shape(node) -> list[int] | None:
    v = node.meta.get("val") if node is not None else None
    shape = getattr(v, "shape", None)
    if shape is None and isinstance(v, (list, tuple)) and v:
        shape = getattr(v[0], "shape", None)
    if shape is None:
        return None
    out = []
    for s in shape:  # a symbolic size (a dynamic batch, say) is recorded as -1
        try:
            out.append(int(s))
        except (TypeError, ValueError, RuntimeError):
            out.append(-1)
    return out


def _inner_hyper(sub) -> dict:
    """Hyper-parameters of a leaf from the ATen call inside it, by schema argument name."""
    out: dict[str, Any] = {}
    for n in sub.graph.nodes:
        schema = getattr(n.target, "_schema", None)
        if n.op != "call_function" or schema is None:
            continue
        op = schema.name.split("::")[-1]
        names = [a.name for a in schema.arguments]
        vals = dict(zip(names, n.args, strict=False)) | dict(n.kwargs)
        if op == "conv2d":
            for k in ("stride", "padding", "dilation", "groups"):
                if k in vals:
                    out[k] = vals[k]
        elif op in ("batch_norm", "_native_batch_norm_legit_no_training"):
            out["eps"] = vals.get("eps", 1e-5)
        elif op == "lstm":
            out.update(num_layers=vals.get("num_layers", 1),
                       bidirectional=vals.get("bidirectional", False),
                       batch_first=vals.get("batch_first", False))
    return out

