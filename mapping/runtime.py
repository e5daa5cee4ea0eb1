"""Runtime: evaluate a compiled model on a batch, the analog layers on golden cores.

The layer graph is interpreted node by node; digital nodes (pooling, additions, flatten,
activations, ...) run in torch, analog nodes become matrix-vector products ``matvec(name,
x)`` on one conductance matrix, supplied by a *backend*:

* :class:`FloatBackend`: ``x W + b`` in float64 from the model's own weights (needs a
  fresh compile, which keeps them; used for calibration and as the software reference);
* :class:`GoldenChip`: the image's segments programmed into golden cores (the targets as
  they are with ``ideal``, else write-verify, relaxation and the dynamic non-idealities of
  :data:`cimflow.golden.nonideal.REALISTIC`), every segment of a matrix evaluated in one
  :func:`cimflow.golden.mvm.mvm_cores` call, the row segments' partial sums added
  digitally, the codes turned into layer units with the segments' code scales;
* the RTL backend (:mod:`cimflow.verif.tb_compiled`) runs the same segments on the
  generated core in Verilator.

Quantisation (the chip's, docs/compiler.md#runtime): a matrix's input x becomes the codes
``round(clip(x / s_in, -1, 1) x_top)`` (``[0, 1]`` for 1-bit inputs), its bias rows are
driven with ``x_top``; each row segment's output code c stands for ``code_value(c) *
code_scale``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cimflow.golden import fused_cpu
from cimflow.golden.array import Crossbar, Mapping, neuron_of_line
from cimflow.golden.mvm import MvmSettings, code_value, mvm_cores
from cimflow.golden.nonideal import REALISTIC, NonIdeal

from .compiler import CompiledModel, x_top
from .graph import Graph, Node

__all__ = ["RunError", "Interpreter", "FloatBackend", "Chip", "GoldenChip", "Layout", "layout",
           "quantise", "run_model", "input_shape", "check_batch"]


class RunError(ValueError):
    """An input the runtime cannot evaluate (wrong shape, dtype, an unsupported node)."""


def quantise(x: np.ndarray, scale: float, in_bits: int) -> np.ndarray:
    """Input codes of real values ``x`` for a full-scale value ``scale`` (int64)."""
    top = x_top(in_bits)
    lo = 0.0 if in_bits == 1 else -1.0
    return np.rint(np.clip(np.asarray(x, np.float64) / scale, lo, 1.0) * top).astype(np.int64)


def input_shape(graph: Graph) -> list[int] | None:
    """The model's input shape without the batch dimension, where the graph records it
    (ExportedProgram models); None for TorchScript models."""
    for n in graph.nodes:
        if graph.inputs and graph.inputs[0] in n.inputs and n.attrs.get("in_shape"):
            return list(n.attrs["in_shape"])[1:]
    return None


# ----------------------------------------------------------------------------- interpreter
MatVec = Callable[[str, np.ndarray], np.ndarray]


class Interpreter:
    """Runs a :class:`Graph` on torch tensors, analog nodes through ``matvec``."""

    def __init__(self, graph: Graph, matvec: MatVec) -> None:
        self.graph, self.matvec = graph, matvec
        self._modules: dict[str, torch.nn.Module] = {}

    def run(self, x: torch.Tensor) -> torch.Tensor:
        g = self.graph
        if len(g.inputs) != 1:
            raise RunError(f"the model has {len(g.inputs)} inputs; run takes one")
        env: dict[str, object] = {g.inputs[0]: x}
        for n in g.nodes:
            args = _resolve(n.attrs.get("args", [{"ref": v} for v in n.inputs]), env)
            try:
                out = self._analog(n, args) if n.kind == "analog" else self._digital(n, args,
                                                                                     env)
            except (RuntimeError, TypeError, IndexError) as e:
                text = str(e).strip().splitlines()
                raise RunError(f"node {n.name!r} ({n.op}): {text[0] if text else e}") from None
            if len(n.outputs) == 1:
                env[n.outputs[0]] = out
            else:
                for v, o in zip(n.outputs, out, strict=True):
                    env[v] = o
        outs = [env[v] for v in g.outputs]
        if len(outs) != 1 or not isinstance(outs[0], torch.Tensor):
            raise RunError("the model's output is not one tensor")
        return outs[0]

    # ------------------------------------------------------------------ analog
    def _mv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        if _codes_path(self.matvec) and flat.dtype in (torch.float32, torch.float64):
            # a chip: quantise straight from the tensor's values (float64 arithmetic inside)
            y = self.matvec.from_codes(name, self.matvec.input_codes(name, flat.numpy()))
        else:
            y = self.matvec(name, flat.double().numpy())
        return torch.from_numpy(np.ascontiguousarray(y)).reshape(*lead, y.shape[-1])

    def _analog(self, n: Node, args: list):
        x = args[0]
        a = n.attrs
        name = a.get("shares", n.name)
        if n.op == "linear":
            return self._mv(name, x).to(x.dtype)
        if n.op == "rbm":  # the forward direction: p(h | v)
            return torch.sigmoid(self._mv(name, x)).to(x.dtype)
        if n.op == "conv2d":
            kh, kw = a["kernel_size"]
            stride, pad = _pair(a.get("stride"), 1), _pair(a.get("padding"), 0)
            dil = _pair(a.get("dilation"), 1)
            if x.ndim != 4 or x.shape[1] != a["in_channels"]:
                raise RunError(f"node {n.name!r} (conv2d) needs (N, {a['in_channels']}, H, W) "
                               f"input, got {tuple(x.shape)}")
            ho = (x.shape[2] + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
            wo = (x.shape[3] + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
            if not _codes_path(self.matvec):
                y = self._mv(name, _patches(x.float(), (kh, kw), stride, pad, dil, ho, wo,
                                            torch.float64))
            else:  # a chip: quantise the image once, then im2col its int8 codes
                q = torch.from_numpy(self.matvec.input_codes(name, x.float().numpy()))
                cols = _patches(q, (kh, kw), stride, pad, dil, ho, wo, torch.int8)
                y = self.matvec.from_codes(name, cols.reshape(-1, cols.shape[-1]).numpy())
                y = torch.from_numpy(np.ascontiguousarray(y))
            return y.reshape(x.shape[0], ho, wo, -1).permute(0, 3, 1, 2).to(
                x.dtype, memory_format=torch.contiguous_format)
        if n.op == "lstm":
            return self._lstm(n, name, x)
        raise RunError(f"node {n.name!r}: analog op {n.op!r} cannot run")

    def _lstm(self, n: Node, name: str, x: torch.Tensor):
        a = n.attrs
        hid = a["hidden_size"]
        xs = x.transpose(0, 1) if a.get("batch_first") else x
        if xs.ndim == 2:
            xs = xs[:, None]
        gates_x = self._mv(f"{name}.ih", xs)  # (T, N, 4H), both biases included
        h = torch.zeros(xs.shape[1], hid, dtype=torch.float64)
        c = torch.zeros_like(h)
        outs = []
        for t in range(xs.shape[0]):  # the recurrence is sequential by nature
            gt = gates_x[t] + self._mv(f"{name}.hh", h)
            i, f, g, o = gt.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        y = torch.stack(outs)
        if x.ndim == 2:
            y = y[:, 0]
        elif a.get("batch_first"):
            y = y.transpose(0, 1)
        y, h, c = y.to(x.dtype), h.to(x.dtype)[None], c.to(x.dtype)[None]
        # TorchScript nodes give (output, h_n, c_n); an ExportedProgram's one value is the
        # output sequence (the front end resolved the tuple indexing)
        return (y, h, c) if len(n.outputs) == 3 else y

    # ------------------------------------------------------------------ digital
    def _digital(self, n: Node, args: list, env: dict):
        a = n.attrs
        call = a.get("call")
        kwargs = _resolve(a.get("kwargs", {}), env)
        if call == "module":
            mod = self._modules.get(n.name)
            if mod is None:
                cls = getattr(torch.nn, n.op, None)
                if cls is None:
                    raise RunError(f"node {n.name!r}: unknown module {n.op}")
                mod = self._modules[n.name] = cls(**a.get("hyper", {}))
                mod.eval()
            return mod(*args)
        if call == "functional":
            return getattr(F, n.op)(*args, **kwargs)
        if call == "python" or n.op in ("getitem", "__getitem__"):
            return args[0][args[1]]
        if n.op == "unpack":
            return list(args[0])
        if n.op in ("add", "sub") and len(args) == 3:  # TorchScript passes alpha positionally
            return getattr(torch, n.op)(args[0], args[1], alpha=args[2])
        if n.op in ("Int", "NumToTensor", "device", "dtype"):
            return args[0]
        fn = getattr(torch.ops.aten, n.op, None)
        if fn is None:
            raise RunError(f"node {n.name!r}: unknown operator aten::{n.op}")
        if n.op in ("dropout", "feature_dropout") and len(args) >= 3:
            args = [args[0], args[1], False]  # inference
        return fn(*args, **kwargs)


def _codes_path(mv) -> bool:
    """Whether ``mv`` is a :class:`Chip` whose matrix-vector product is Chip's own, so that
    the interpreter may hand it input codes (``input_codes`` / ``from_codes``); a subclass
    that overrides ``__call__`` is called as before."""
    return isinstance(mv, Chip) and type(mv).__call__ is Chip.__call__


def _patches(x: torch.Tensor, k, stride, pad, dil, ho: int, wo: int, dtype) -> torch.Tensor:
    """im2col in the matrices' HWI row order, as ``dtype``: (N, ho * wo, kH * kW * I) with row
    (h * kW + w) * I + i, the values F.unfold gives (zero padding), made by one copy from a
    strided view of the NHWC input (runs of I contiguous values) instead of unfolding in
    CHW order and permuting."""
    nb, c = x.shape[:2]
    xp = F.pad(x, (pad[1], pad[1], pad[0], pad[0])) if pad[0] or pad[1] else x
    xh = xp.permute(0, 2, 3, 1).contiguous()
    s_n, s_h, s_w, s_c = xh.stride()
    view = xh.as_strided((nb, ho, wo, k[0], k[1], c), (s_n, s_h * stride[0], s_w * stride[1],
                                                       s_h * dil[0], s_w * dil[1], s_c))
    out = torch.empty((nb, ho, wo, k[0], k[1], c), dtype=dtype)
    out.copy_(view)
    return out.reshape(nb, ho * wo, -1)


def _pair(v, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, list):
        return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])
    if isinstance(v, str):
        raise RunError(f"padding {v!r} is not supported; give numbers")
    return v, v


def _resolve(v, env: dict):
    if isinstance(v, dict) and set(v) == {"ref"}:
        return env[v["ref"]]
    if isinstance(v, dict):
        return {k: _resolve(x, env) for k, x in v.items()}
    if isinstance(v, list):
        return [_resolve(x, env) for x in v]
    return v


# ----------------------------------------------------------------------------- backends
class FloatBackend:
    """``x W + b`` from the graph's weights (a fresh compile keeps them), float64.

    ``record`` collects every matrix's inputs (for calibration)."""

    def __init__(self, graph: Graph, record: dict[str, list[np.ndarray]] | None = None):
        self.w: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for n in graph.analog:
            p = n.params
            if "shares" in n.attrs:
                continue
            if not p:
                raise RunError("the graph carries no weights (read back from an image); "
                               "the float reference needs the compiled model")
            if n.op == "lstm":
                self.w[f"{n.name}.ih"] = (p["weight_ih"], p.get("bias"))
                self.w[f"{n.name}.hh"] = (p["weight_hh"], None)
            else:
                self.w[n.name] = (p["weight"], p.get("bias"))
        self.record = record

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        if self.record is not None:
            self.record.setdefault(name, []).append(np.asarray(x))
        w, b = self.w[name]
        y = x @ w
        return y + b if b is not None else y


@dataclass
class Layout:
    """Where one matrix's segments sit, for one batched evaluation of all of them."""

    segments: list
    """The matrix's segments (all copies), in the order of the leading axis below."""
    settings: MvmSettings
    idx: np.ndarray
    """(G, n): each segment's input pair -> the matrix's logical pair (``pairs``: a zero);
    n is the largest segment's, so every segment's MVM has one input length."""
    copy: np.ndarray
    """(G,): the copy each segment belongs to."""
    dest: np.ndarray
    """(G, width): output column -> slot copy * (cols + 1) + column (cols: discarded)."""
    scale: np.ndarray
    """(G, width): layer units per code step (0 outside the segment)."""


def layout(cm: CompiledModel, name: str) -> Layout:
    m = cm.layer(name)
    segs = [s for s in cm.placement.segments if s.layer == name]
    p = m.precision["forward"]
    st = MvmSettings.from_config(cm.config, in_bits=p["in_bits"], out_bits=p["out_bits"],
                                 v_decr=p["v_decr"])
    half = max(s.n_rows // 2 for s in segs)
    width = max(s.n_cols for s in segs)
    idx = np.full((len(segs), half), m.pairs, np.int64)
    dest = np.zeros((len(segs), width), np.int64)
    scale = np.zeros((len(segs), width))
    for k, s in enumerate(segs):
        idx[k, :s.n_rows // 2] = s.pair_index
        dest[k] = s.copy * (m.cols + 1) + m.cols
        dest[k, :s.n_cols] = s.copy * (m.cols + 1) + np.arange(*s.cols)
        scale[k, :s.n_cols] = cm.code_scale[(s.layer, s.index, s.copy)]
    copies = np.array([s.copy for s in segs], np.int64)
    return Layout(segs, st, idx, copies, dest, scale)


class Chip:
    """A compiled model on cores: quantises a matrix's inputs, hands every segment its
    input codes (:meth:`codes`, the cores' part) and adds the segments' decoded outputs
    (the host's part). Subclasses: :class:`GoldenChip`, the RTL's in verif."""

    def __init__(self, cm: CompiledModel) -> None:
        self.cm = cm
        self.layouts = {m.name: layout(cm, m.name) for m in cm.layers}

    def codes(self, name: str, xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sign, magnitude) of every segment of matrix ``name`` for its input codes ``xc``
        (G, batch, n), each (G, batch, >= width)."""
        raise NotImplementedError

    def input_codes(self, name: str, x: np.ndarray) -> np.ndarray:
        """The input codes (int8, x's shape) of real values ``x`` for matrix ``name``:
        :func:`quantise` element by element, so that a convolution quantises its input
        image once, before im2col repeats each pixel kH kW times (padding zeros are code 0
        either way)."""
        m = self.cm.layer(name)
        p = m.precision["forward"]
        top = x_top(p["in_bits"])
        lo = 0.0 if p["in_bits"] == 1 else -1.0
        if fused_cpu.AVAILABLE and x.dtype in (np.float32, np.float64):
            # the same operations in one pass (fresh float64 temporaries cost page faults)
            x = np.ascontiguousarray(x)
            out = np.empty(x.shape, np.int8)
            fused_cpu.input_codes(x.reshape(-1), float(m.input_scale), lo, float(top),
                                  out.reshape(-1))
            return out
        xf = np.divide(np.asarray(x, np.float64), m.input_scale)
        np.clip(xf, lo, 1.0, out=xf)
        xf *= top
        np.rint(xf, out=xf)
        return xf.astype(np.int8)  # |codes| <= x_top <= 127

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        m = self.cm.layer(name)
        if x.shape[-1] != m.n_in:
            raise RunError(f"matrix {name!r} takes {m.n_in} inputs, got {x.shape[-1]}")
        return self.from_codes(name, self.input_codes(name, x))

    def from_codes(self, name: str, xq: np.ndarray) -> np.ndarray:
        """Matrix ``name``'s outputs (layer units, float64) for input codes ``xq`` (batch,
        n_in) (:meth:`input_codes`)."""
        m = self.cm.layer(name)
        lay = self.layouts[name]
        p = m.precision["forward"]
        if xq.shape[-1] != m.n_in:
            raise RunError(f"matrix {name!r} takes {m.n_in} inputs, got {xq.shape[-1]}")
        n_copies = int(lay.copy.max()) + 1
        b = xq.shape[0]
        chunk = -(-b // n_copies)  # a batch is split evenly over the copies
        # the codes next to the bias pairs (driven with x_top); each segment then takes its
        # pairs (a strided range)
        xa = np.empty((n_copies * chunk, m.pairs), np.int8)
        xa[:b, :m.n_in] = xq
        xa[b:, :m.n_in] = 0
        xa[:, m.n_in:] = x_top(p["in_bits"])
        x3 = xa.reshape(n_copies, chunk, m.pairs)
        g_n, half = lay.idx.shape
        xc = np.empty((g_n, chunk, half), np.int8)
        for k, s in enumerate(lay.segments):
            n = s.n_rows // 2
            xc[k, :, :n] = x3[s.copy, :, slice(*s.pairs)]
            xc[k, :, n:] = 0
        sign, mag = self.codes(name, xc)
        w = lay.scale.shape[1]
        if fused_cpu.AVAILABLE:  # decode, scale and add in one pass, segment by segment
            ys = np.zeros((chunk, n_copies * (m.cols + 1)))
            fused_cpu.add_code_values(sign, mag, lay.settings.k, _value_table(lay.settings.k),
                                      lay.scale, lay.dest, ys)
            y = ys.reshape(chunk, n_copies, m.cols + 1)[..., :m.cols].transpose(1, 0, 2)
            return y.reshape(-1, m.cols)[:b, :m.n_out]
        vals = _decode(sign[..., :w], mag[..., :w], lay.settings.k)
        vals *= lay.scale[:, None, :]
        y = np.zeros((n_copies, chunk, m.cols))
        for k, s in enumerate(lay.segments):  # row segments of a column add up
            y[s.copy, :, s.cols[0]:s.cols[1]] += vals[k, :, :s.n_cols]
        return y.reshape(-1, m.cols)[:b, :m.n_out]


@functools.lru_cache(maxsize=16)
def _value_table(k: int) -> np.ndarray:
    """code_value of every code (sign << k | magnitude) of a converter with k magnitude bits."""
    c = np.arange(2 << k)
    t = code_value(c >> k, c & ((1 << k) - 1))
    t.flags.writeable = False
    return t


def _decode(sign: np.ndarray, mag: np.ndarray, k: int) -> np.ndarray:
    """code_value(sign, mag) as float64, by one table look-up per code (a fresh array)."""
    idx = np.left_shift(sign, k, dtype=np.int64)
    idx |= mag
    return _value_table(k).take(idx)


class GoldenChip(Chip):
    """The image programmed into golden cores; every segment of a matrix is evaluated in
    one :func:`cimflow.golden.mvm.mvm_cores` call.

    ``ideal``: the cores hold the target conductances exactly and MVMs are noiseless, so
    only the quantisation of inputs, weights (the 2^-10 uS grid) and outputs remains.
    Otherwise every core's used cells are programmed by write-verify from a previous
    random state (the paper's 3 rounds, :func:`cimflow.golden.write_verify.program_rounds`,
    golden device model) and relax (CrossSim fit, scaled by ``nonideal.relax_scale``, off
    when ``nonideal.relaxation`` is False), then MVMs see the dynamic effects of
    ``nonideal`` (default :data:`REALISTIC`).

    Each segment is a golden core holding the segment's block from row and column 0 and
    driven only on its own rows (the rows of other segments on its physical core float);
    its comparator offsets are those of the physical neurons of its columns.
    """

    def __init__(self, cm: CompiledModel, ideal: bool = False, seed: int = 0,
                 nonideal: NonIdeal | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(cm)
        self.ideal = ideal
        self.rng = np.random.default_rng(seed)
        base = nonideal or REALISTIC
        self._relax = (base.relax_scale if base.relaxation else 0.0)
        if ideal:
            self.nonideal = NonIdeal()
        else:  # the static effects are the programming's; the dynamic ones each MVM's
            self.nonideal = NonIdeal(**{**base.__dict__, "relaxation": False,
                                        "prog_sigma_us": 0.0})
        say = progress or (lambda _: None)
        self.programming: dict = {}
        self.g = dict(cm.targets) if ideal else self._program(say)
        self.cores = {m.name: self._cores(m) for m in cm.layers}
        # the segments' columns: the cores evaluate only these output lines
        self._lines = {m.name: np.arange(self.layouts[m.name].scale.shape[1])
                       for m in cm.layers}

    def _program(self, say) -> dict[int, np.ndarray]:
        from cimflow.golden.device import RramArray
        from cimflow.golden.relaxation import Relaxation
        from cimflow.golden.write_verify import WriteVerifyParams, program_rounds

        cores = sorted(self.cm.targets)
        used = {c: self.cm.targets[c] > 0 for c in cores}
        t = np.concatenate([self.cm.targets[c][used[c]] for c in cores])
        say(f"programming {t.size:,} cells on {len(cores)} cores (write-verify, 3 rounds, "
            f"relaxation)")
        g_lo = min(m.g_min for m in self.cm.layers)
        g_hi = max(m.g_max for m in self.cm.layers)
        wv = WriteVerifyParams(g_min=g_lo, g_max=g_hi, tol=self.cm.tolerance)
        g0 = self.rng.uniform(g_lo, g_hi, t.size)  # the array held an earlier weight set
        rep = program_rounds(g0, t, RramArray(t.size, rng=self.rng),
                             Relaxation(scale=self._relax), wv, rounds=3, rng=self.rng)
        g_all = rep.relaxed[-1]
        self.programming = {"cells": int(t.size),
                            "mean_pulses": float(rep.total_pulses.mean()),
                            "rms_error_us": float(np.sqrt(np.mean((g_all - t) ** 2)))}
        out, k = {}, 0
        for c in cores:
            g = np.zeros_like(self.cm.targets[c])
            n = int(used[c].sum())
            g[used[c]] = g_all[k:k + n]
            k += n
            out[c] = g
        return out

    def _cores(self, m) -> tuple[list[Crossbar], np.ndarray | None]:
        cm, cfg = self.cm, self.cm.config
        lay = self.layouts[m.name]
        half, width = lay.idx.shape[1], lay.scale.shape[1]
        nrn_sl = neuron_of_line(cfg, on_sl=True)
        xbars, offs = [], []
        core_off: dict[int, np.ndarray] = {}
        for s in lay.segments:
            cell = np.ix_(s.phys_rows, s.phys_cols)
            target = np.zeros((cfg.rows, cfg.cols))
            g = np.zeros((cfg.rows, cfg.cols))
            target[:s.n_rows, :s.n_cols] = cm.targets[s.core][cell]
            g[:s.n_rows, :s.n_cols] = self.g[s.core][cell]
            xb = Crossbar(cfg, m.g_min, m.g_max)
            xb.load(target, Mapping(half, width, m.w_max, m.g_min, m.g_max))
            xb.set_conductances(g)
            xbars.append(xb)
            if self.nonideal.adc_offset_v:
                if s.core not in core_off:  # one comparator offset per physical neuron
                    core_off[s.core] = self.nonideal.offsets(cfg.rows, lay.settings.v_read,
                                                             self.rng)
                o = np.zeros(cfg.rows, np.int64)
                o[nrn_sl[:s.n_cols]] = core_off[s.core][nrn_sl[s.phys_cols]]
                offs.append(o)
        return xbars, (np.stack(offs) if offs else None)

    def codes(self, name: str, xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xbars, offsets = self.cores[name]
        res = mvm_cores(xbars, xc, self.layouts[name].settings, self.nonideal, self.rng,
                        offsets, lines=self._lines[name])
        return res.sign, res.mag


def check_batch(cm: CompiledModel, x) -> np.ndarray:
    """``x`` as an array if it is a non-empty numeric batch in the model's input shape (as
    far as the image records it), else a one-line :class:`RunError`."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise RunError(f"input must be numeric, got dtype {x.dtype}")
    shape = input_shape(cm.graph)
    if shape is not None and (x.ndim != len(shape) + 1 or any(
            want >= 0 and got != want for got, want in zip(x.shape[1:], shape, strict=True))):
        dims = ", ".join("any" if d < 0 else str(d) for d in shape)
        raise RunError(f"input batch has shape {tuple(x.shape)}; the model takes (N, {dims})")
    if x.ndim < 2 or x.shape[0] == 0:
        raise RunError(f"input must be a non-empty batch (N, ...), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise RunError("input holds NaN or infinite values")
    return x


def run_model(cm: CompiledModel, x: np.ndarray, backend: str = "golden", ideal: bool = False,
              seed: int = 0, chip: Chip | None = None,
              progress: Callable[[str], None] | None = None) -> np.ndarray:
    """Outputs of the compiled model for the batch ``x`` (float32)."""
    x = check_batch(cm, x)
    if chip is not None:
        mv = chip
    elif backend == "golden":
        mv = GoldenChip(cm, ideal, seed, progress=progress)
    elif backend == "float":
        mv = FloatBackend(cm.graph)
    else:
        raise RunError(f"unknown backend {backend!r}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.no_grad():
        y = Interpreter(cm.graph, mv).run(xt)
    return y.detach().numpy().astype(np.float32)
