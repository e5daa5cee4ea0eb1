"""`compile_model`: model file -> :class:`CompiledModel`, the in-memory image.

A :class:`CompiledModel` is what the image files hold and what the reader returns, so a
runtime consumes either directly: the layer graph, one :class:`LayerMatrix` per matrix,
the segments with their cores, array rows and columns, and per core the target
conductances (uS, 0 = unformed cell). A segment's ``code_scale`` turns its output codes
into the layer's units: ``y_j = sum over row segments of code_scale_j * v_j`` with
``v = +-(|code| + 1/2)`` (the converter truncates, so the bin centre; a zero code of sign 0
reads 0: :func:`cimflow.golden.mvm.code_value`); it is the golden model's
:func:`cimflow.golden.mvm.code_step`, times ``s_in / x_top`` (``x_top`` = the largest input
code, ``s_in`` its real value). ``compile_graph(..., calibration=X)`` sets every matrix's
``s_in`` and ADC range from the float model's activations on a batch X.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cimflow.config import CoreConfig
from cimflow.golden.array import G_FRAC_BITS, Crossbar, Mapping
from cimflow.golden.mvm import MvmSettings, code_step
from cimflow.golden.write_verify import WriteVerifyParams

from .defects import DefectMap
from .errors import CompileError
from .frontend import load_model
from .graph import Graph
from .matrices import LayerMatrix, MatrixOptions, layer_matrices
from .placement import Placement, Segment, place

__all__ = ["CompiledModel", "compile_model", "compile_graph", "segment_targets", "x_top"]

DEFAULT_CORES = 48
"""The NeuRRAM chip's core count."""


@dataclass
class CompiledModel:
    config: CoreConfig
    graph: Graph
    layers: list[LayerMatrix]
    placement: Placement
    targets: dict[int, np.ndarray]
    """Core index -> target conductances (rows x cols, uS); only cores that hold segments."""
    code_scale: dict[tuple[str, int, int], np.ndarray]
    """(layer, segment index, copy) -> per-column output scale, see the module docstring."""
    tolerance: float = WriteVerifyParams().tol
    """Write-verify acceptance half-width (uS) of every programmed cell."""
    source: dict = field(default_factory=dict)
    defects: DefectMap = field(default_factory=DefectMap)
    timings: dict[str, float] = field(default_factory=dict)

    def layer(self, name: str) -> LayerMatrix:
        for m in self.layers:
            if m.name == name:
                return m
        raise KeyError(name)

    def segments_of(self, name: str, copy: int = 0) -> list[Segment]:
        return [s for s in self.placement.segments if s.layer == name and s.copy == copy]

    def conductances(self, name: str, copy: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """G+ and G- of one matrix gathered back from the cores' targets."""
        m = self.layer(name)
        gp, gm = np.full((m.pairs, m.cols), np.nan), np.full((m.pairs, m.cols), np.nan)
        for s in self.segments_of(name, copy):
            t = self.targets[s.core]
            c = slice(*s.cols)
            gp[s.pair_index, c] = t[np.ix_(s.phys_rows[0::2], s.phys_cols)]
            gm[s.pair_index, c] = t[np.ix_(s.phys_rows[1::2], s.phys_cols)]
        return gp, gm

    def used_cells(self, core: int) -> int:
        return sum(s.cells for s in self.placement.segments if s.core == core)


def x_top(in_bits: int) -> int:
    """Largest input code: 1 for a binary input, else 2^(in_bits - 1) - 1."""
    return 1 if in_bits == 1 else (1 << (in_bits - 1)) - 1


def segment_targets(m: LayerMatrix, s: Segment) -> np.ndarray:
    """A segment's block of targets, rows interleaved G+ / G- as on the array."""
    idx = s.pair_index
    block = np.empty((2 * idx.size, s.n_cols))
    block[0::2] = m.gp[idx, s.cols[0]:s.cols[1]]
    block[1::2] = m.gm[idx, s.cols[0]:s.cols[1]]
    return block


def _code_scale(config: CoreConfig, m: LayerMatrix, block: np.ndarray) -> np.ndarray:
    """Golden recovery of one code step on every column of a segment, in layer units."""
    p = m.precision["forward"]
    xbar = segment_crossbar(config, m, block)
    st = MvmSettings.from_config(config, in_bits=p["in_bits"], out_bits=p["out_bits"],
                                 v_decr=p["v_decr"])
    return code_step(xbar, st) * m.input_scale / x_top(p["in_bits"])


def segment_crossbar(config: CoreConfig, m: LayerMatrix, block: np.ndarray,
                     n_in: int | None = None) -> Crossbar:
    """A golden core holding one segment's block of targets from row and column 0 (its
    mapping n_in = the block's pairs, or ``n_in`` to drive more, unformed, rows)."""
    xbar = Crossbar(config, m.g_min, m.g_max)
    t = np.zeros((config.rows, config.cols))
    t[:block.shape[0], :block.shape[1]] = block
    pairs = block.shape[0] // 2 if n_in is None else n_in
    xbar.load(t, Mapping(pairs, config.cols if n_in else block.shape[1], m.w_max,
                         m.g_min, m.g_max))
    return xbar


def compile_graph(graph: Graph, config: CoreConfig, n_cores: int = DEFAULT_CORES,
                  defects: DefectMap | None = None, options: MatrixOptions | None = None,
                  progress: Callable[[str], None] | None = None,
                  calibration: np.ndarray | None = None) -> CompiledModel:
    """Matrices, placement and targets of ``graph``. ``calibration``: a batch of model
    inputs; each matrix then gets the input scale max|x| of its inputs on that batch
    (else ``options.input_scale``) and the ADC decrement voltage that puts the largest
    partial sum of any of its row segments at 95 % of the converter's full scale (else
    ``options.v_decr``)."""
    opts = options or MatrixOptions()
    say = progress or (lambda _: None)
    if opts.in_bits > config.input_bits or opts.out_bits > config.output_bits:
        raise CompileError(f"precision {opts.in_bits}-bit in / {opts.out_bits}-bit out exceeds "
                           f"the core's {config.input_bits} / {config.output_bits} bits")
    if opts.out_bits < 2:
        raise CompileError("out_bits must be >= 2 (a binary neuron output has no magnitude)")
    if opts.in_bits < 1:
        raise CompileError(f"in_bits = {opts.in_bits} must be >= 1")
    t0 = time.perf_counter()
    inputs: dict[str, np.ndarray] = {}
    if calibration is not None:
        inputs = calibration_inputs(graph, calibration)
        say(f"calibration: {len(calibration)} inputs through the float model "
            f"({time.perf_counter() - t0:.2f} s)")
    scales = {k: float(np.max(np.abs(v))) for k, v in inputs.items() if v.size}
    layers = [m for n in graph.analog
              for m in layer_matrices(n, opts, {k: v for k, v in scales.items() if v > 0})]
    if not layers:
        raise CompileError("the model has no Linear, Conv2d, LSTM or RBM layer to map")
    t1 = time.perf_counter()
    say(f"matrices: {len(layers)} from {len(graph.analog)} analog layers ({t1 - t0:.2f} s)")
    placement = place(layers, config, n_cores, defects)
    t2 = time.perf_counter()
    by_name = {m.name: m for m in layers}
    if inputs:
        for m in layers:
            if m.name in inputs:
                _calibrate_v_decr(config, m, placement, inputs[m.name])
    targets: dict[int, np.ndarray] = {}
    scales = {}
    for s in placement.segments:
        m = by_name[s.layer]
        block = segment_targets(m, s)
        t = targets.setdefault(s.core, np.zeros((config.rows, config.cols)))
        t[np.ix_(s.phys_rows, s.phys_cols)] = block
        scales[(s.layer, s.index, s.copy)] = _code_scale(config, m, block)[:s.n_cols]
    t3 = time.perf_counter()
    say(f"placement: {len(placement.segments)} segments on {len(targets)} of {n_cores} cores "
        f"({t3 - t1:.2f} s)")
    return CompiledModel(config, graph, layers, placement, targets, scales,
                         defects=defects or DefectMap(),
                         timings={"matrices_s": t1 - t0, "placement_s": t2 - t1,
                                  "targets_s": t3 - t2})


def calibration_inputs(graph: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every matrix's inputs (rows) when the float model runs on the batch ``x``."""
    from types import SimpleNamespace

    import torch

    from .runtime import FloatBackend, Interpreter, RunError, check_batch

    rec: dict[str, list[np.ndarray]] = {}
    try:
        # the same checks (and messages) as `cimflow run`'s input batch; check_batch reads
        # only the compiled model's graph, so the graph stands in for it here
        x = check_batch(SimpleNamespace(graph=graph), x)
        with torch.no_grad():
            Interpreter(graph, FloatBackend(graph, rec)).run(
                torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    except RunError as e:
        raise CompileError(f"calibration: {e}") from None
    except (ValueError, RuntimeError) as e:
        # a model that records no input shape (TorchScript) fails inside the float run
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CompileError(f"calibration: inputs of shape {tuple(x.shape)} do not fit the "
                           f"model ({msg})") from None
    return {k: np.concatenate(v) for k, v in rec.items()}


def _calibrate_v_decr(config: CoreConfig, m: LayerMatrix, placement: Placement,
                      x: np.ndarray) -> None:
    """Set ``v_decr`` so that the largest |partial sum| of any row segment on the inputs
    ``x`` is 95 % of the ADC's full scale +-2 C_s V_decr. A segment's integrated charge is
    C_s V_read x_int . dG / Den per column (voltage-mode sensing, golden/mvm.py)."""
    from .runtime import quantise

    p = m.precision["forward"]
    xq = np.zeros((x.shape[0], m.pairs))
    xq[:, :m.n_in] = quantise(x, m.input_scale, p["in_bits"])
    xq[:, m.n_in:] = x_top(p["in_bits"])
    step = 1.0 / (1 << G_FRAC_BITS)
    gp, gm = np.rint(m.gp / step) * step, np.rint(m.gm / step) * step
    peak = 0.0
    for s in placement.segments:
        if s.layer != m.name or s.copy:
            continue
        r, c = s.pair_index, slice(*s.cols)
        den = (gp[r, c] + gm[r, c]).sum(axis=0)
        q = np.abs(xq[:, r] @ (gp[r, c] - gm[r, c])) / np.maximum(den, 1e-12)
        peak = max(peak, float(q.max(initial=0.0)))
    st = MvmSettings()
    grid = st.v_read / (1 << 15)
    v = max(st.v_read * peak / 2 / 0.95, 200 * grid)
    for d in m.precision.values():
        d["v_decr"] = float(np.ceil(v / grid) * grid)


def compile_model(path: str | Path, config: CoreConfig, n_cores: int = DEFAULT_CORES,
                  defects: DefectMap | None = None, options: MatrixOptions | None = None,
                  progress: Callable[[str], None] | None = None,
                  calibration: np.ndarray | None = None) -> CompiledModel:
    """Read a TorchScript / ExportedProgram file and compile it for ``n_cores`` cores."""
    say = progress or (lambda _: None)
    t0 = time.perf_counter()
    graph, fmt = load_model(path)
    t1 = time.perf_counter()
    say(f"front end: {fmt}, {len(graph.nodes)} nodes, {len(graph.analog)} analog "
        f"({t1 - t0:.2f} s)")
    cm = compile_graph(graph, config, n_cores, defects, options, progress, calibration)
    data = Path(path).read_bytes()
    cm.source = {"file": Path(path).name, "format": fmt,
                 "sha256": hashlib.sha256(data).hexdigest()}
    cm.timings = {"frontend_s": t1 - t0, **cm.timings}
    return cm
