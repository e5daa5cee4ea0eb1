"""Conductance matrices: from a layer's weights to differential G+ / G- targets.

The layout follows the NeuRRAM paper (Wan et al., Nature 2022, Methods, "weight mapping"):

* A convolution's kernel (O, I, kH, kW) is flattened in **HWI order**: input row
  ``(h * kW + w) * I + i`` of output column ``o`` holds ``W[o, i, h, w]``; a linear layer's
  row ``r`` is input feature ``r``. The runtime's im2col must use the same order.
* ``B = ceil(max|b| / (s_in * w_max))`` bias rows follow the weight rows, each holding
  ``b / (s_in * B)`` and driven with the full-scale input, so ``B`` rows restore the bias
  exactly (``s_in`` is the layer's input scale: the real value of a full-scale input).
* Every logical row is a differential pair of physical rows (2r: G+, 2r+1: G-), so the
  matrix has ``2 (n_in + B)`` rows, as the paper counts cells.
* ``G+ / G-`` come from the golden model's :func:`cimflow.golden.array.encode_differential`
  (the same function the golden chip programs with), with ``w_max`` = max|W| or a chosen
  percentile of |W| (larger weights are clipped; the count is reported).

An RBM's one matrix also gets ``Bc = ceil(max|a| / w_max)`` visible-bias *columns*, used
when it runs hidden -> visible (SL -> BL); those columns' bias-row cells hold zero weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from cimflow.golden.array import encode_differential
from cimflow.golden.mvm import MvmSettings

from .errors import CompileError
from .graph import Node

__all__ = ["MatrixOptions", "LayerMatrix", "layer_matrices", "bias_rows"]

PAPER_G_MAX = {"linear": 40.0, "conv2d": 40.0, "lstm": 30.0, "rbm": 30.0}
"""g_max (uS) the paper used: 40 uS for the CNNs, 30 uS for the LSTM and the RBM."""


@dataclass(frozen=True)
class MatrixOptions:
    """Compiler choices for every matrix; ``g_max`` None takes the paper's value per op."""

    in_bits: int = 4
    out_bits: int = 8
    w_percentile: float = 100.0
    g_min: float = 1.0
    g_max: float | None = None
    input_scale: float = 1.0
    v_decr: float = MvmSettings().v_decr
    """The ADC's decrement voltage (V), with the golden default V_read: it sets the output
    code step, so the code scales depend on it (calibration may choose another)."""

    def __post_init__(self) -> None:
        if not 0 < self.w_percentile <= 100:
            raise CompileError(f"w_percentile = {self.w_percentile} is out of range (0, 100]")
        if not self.v_decr > 0:
            raise CompileError(f"v_decr must be > 0, got {self.v_decr}")
        if not self.input_scale > 0:
            raise CompileError(f"input_scale must be > 0, got {self.input_scale}")
        if not 0 < self.g_min < (self.g_max or math.inf):
            raise CompileError(f"need 0 < g_min < g_max, got {self.g_min}, {self.g_max}")


@dataclass
class LayerMatrix:
    """One conductance matrix: its logical weights and everything needed to use it."""

    name: str
    node: str
    """Graph node it implements (an LSTM node has two matrices, ``ih`` and ``hh``)."""
    op: str
    n_in: int
    n_out: int
    bias_rows: int
    bias_cols: int
    w_max: float
    w_percentile: float
    clipped: int
    """Weights with |W| > w_max (clipped to w_max)."""
    g_min: float
    g_max: float
    input_scale: float
    precision: dict[str, dict[str, int]]
    """Direction ("forward", "backward") -> {"in_bits", "out_bits", "v_decr"}."""
    mvms: int
    """MVMs per inference in the forward direction (1 if the model carries no shapes)."""
    gp: np.ndarray | None = field(default=None, repr=False)
    gm: np.ndarray | None = field(default=None, repr=False)
    """G+ and G- targets (uS), (n_in + bias_rows) x (n_out + bias_cols); None when read
    back from an image (the cores' targets hold them)."""

    @property
    def pairs(self) -> int:
        return self.n_in + self.bias_rows

    @property
    def rows(self) -> int:
        return 2 * self.pairs

    @property
    def cols(self) -> int:
        return self.n_out + self.bias_cols

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in _FIELDS}


_FIELDS = ("name", "node", "op", "n_in", "n_out", "bias_rows", "bias_cols", "w_max",
           "w_percentile", "clipped", "g_min", "g_max", "input_scale", "precision", "mvms")


def bias_rows(bias: np.ndarray | None, w_max: float, input_scale: float = 1.0) -> int:
    """B = ceil(max|b| / (s_in w_max)): the fewest rows whose weights stay within w_max."""
    if bias is None or not np.any(bias):
        return 0
    return math.ceil(float(np.max(np.abs(bias))) / (input_scale * w_max) - 1e-12)


def _w_max(w: np.ndarray, pct: float, name: str) -> float:
    a = np.abs(w)
    w_max = float(a.max()) if pct >= 100 else float(np.percentile(a, pct))
    if not w_max > 0:
        raise CompileError(f"layer {name!r}: weights are all zero (or the {pct} percentile "
                           f"of |W| is 0), nothing to map")
    return w_max


def _mvms(node: Node) -> int:
    shape = node.attrs.get("shape")
    if not shape:
        return 1
    if node.op == "conv2d":
        dims = shape[-2:]
    elif node.op == "lstm":
        dims = [shape[1] if node.attrs.get("batch_first") else shape[0]]
    else:
        dims = shape[1:-1] if len(shape) > 2 else []
    if any(d < 0 for d in dims):  # a dynamic size: unknown, count one
        return 1
    return int(np.prod(dims)) if dims else 1


def _matrix(name: str, node: Node, w: np.ndarray, bias, opts: MatrixOptions,
            visible_bias=None, directions=("forward",)) -> LayerMatrix:
    g_max = opts.g_max or PAPER_G_MAX[node.op]
    if not opts.g_min < g_max:
        raise CompileError(f"need g_min < g_max, got {opts.g_min}, {g_max}")
    w_max = _w_max(w, opts.w_percentile, name)
    clipped = int(np.count_nonzero(np.abs(w) > w_max))
    b_rows = bias_rows(bias, w_max, opts.input_scale)
    b_cols = bias_rows(visible_bias, w_max, opts.input_scale)
    n_in, n_out = w.shape
    aug = np.zeros((n_in + b_rows, n_out + b_cols))
    aug[:n_in, :n_out] = np.clip(w, -w_max, w_max)
    if b_rows:
        aug[n_in:, :n_out] = bias / (opts.input_scale * b_rows)
    if b_cols:
        aug[:n_in, n_out:] = (visible_bias / (opts.input_scale * b_cols))[:, None]
    gp, gm, _ = encode_differential(aug, opts.g_min, g_max, w_max)
    prec = {d: {"in_bits": opts.in_bits, "out_bits": opts.out_bits, "v_decr": opts.v_decr}
            for d in directions}
    return LayerMatrix(name, node.name, node.op, n_in, n_out, b_rows, b_cols, w_max,
                       opts.w_percentile, clipped, opts.g_min, g_max, opts.input_scale, prec,
                       _mvms(node), gp, gm)


def layer_matrices(node: Node, opts: MatrixOptions,
                   input_scales: dict[str, float] | None = None) -> list[LayerMatrix]:
    """The conductance matrices of one analog node (two for an LSTM, none for a repeated
    call of a module, ``attrs["shares"]``); ``input_scales`` overrides
    ``opts.input_scale`` per matrix name (calibration)."""
    p = node.params
    scales = input_scales or {}

    def o(name: str) -> MatrixOptions:
        return replace(opts, input_scale=scales[name]) if name in scales else opts

    if "shares" in node.attrs:  # the module's second call uses its first call's matrices
        return []
    if node.op in ("linear", "conv2d"):
        return [_matrix(node.name, node, p["weight"], p.get("bias"), o(node.name))]
    if node.op == "lstm":
        ih, hh = f"{node.name}.ih", f"{node.name}.hh"
        return [_matrix(ih, node, p["weight_ih"], p.get("bias"), o(ih)),
                _matrix(hh, node, p["weight_hh"], None, o(hh))]
    if node.op == "rbm":
        return [_matrix(node.name, node, p["weight"], p.get("bias"), o(node.name),
                        p.get("visible_bias"), ("forward", "backward"))]
    raise CompileError(f"node {node.name!r}: op {node.op!r} has no conductance matrix")
