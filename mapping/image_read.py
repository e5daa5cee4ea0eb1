"""The validating image reader: an image folder -> :class:`CompiledModel`, or one error.

Why so strict: an image programs real cells. Anything that does not agree with the
manifest (a truncated or flipped file, a wrong checksum or version, an unknown field, a
missing or extra file, a shape or a conductance the manifest contradicts) is refused with
an :class:`ImageError` whose one line names the file and the problem. Checks run cheapest
first: the manifest's own checksum, every file's size and SHA-256, then the meaning.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from cimflow.config import ConfigError, CoreConfig

from .compiler import CompiledModel
from .defects import parse_defects
from .errors import CompileError, ImageError
from .graph import Graph
from .image import FORMAT, VERSION, core_files, hex_lines, program_dtype, sha256
from .matrices import _FIELDS, LayerMatrix
from .placement import Placement, Segment

__all__ = ["read_image"]

_TOP = {"format", "version", "config", "source", "compiler", "defects", "graph", "layers",
        "segments", "cores", "files"}
_COMPILER = {"cores", "excluded_cores", "segment_rows", "segment_cols", "tolerance_us",
             "notes"}
_SEGMENT = {"layer", "index", "copy", "pairs", "cols", "core", "row0", "col0", "phys_rows",
            "phys_cols", "code_scale"}
_CORE = {"index", "targets", "program", "readmemh", "cells"}
_G_EPS = 1e-9


def _fields(where: str, d: Any, keys: set[str]) -> dict:
    if not isinstance(d, dict):
        raise ImageError(f"manifest: {where} is not an object")
    unknown, missing = sorted(set(d) - keys), sorted(keys - set(d))
    if unknown:
        raise ImageError(f"manifest: unknown field {unknown[0]!r} in {where}")
    if missing:
        raise ImageError(f"manifest: missing field {missing[0]!r} in {where}")
    return d


def _int(where: str, v: Any, lo: int = 0, hi: int = 1 << 31) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ImageError(f"manifest: {where} = {v!r} is not an integer in [{lo}, {hi}]")
    return v


def _expand(where: str, runs: Any, limit: int) -> np.ndarray:
    if not isinstance(runs, list):
        raise ImageError(f"manifest: {where} is not a list of ranges")
    parts = []
    for r in runs:
        if not (isinstance(r, list) and len(r) == 2):
            raise ImageError(f"manifest: {where} has a range that is not [start, stop]")
        a, b = _int(where, r[0], 0, limit), _int(where, r[1], 0, limit)
        if b <= a:
            raise ImageError(f"manifest: {where} has an empty range [{a}, {b}]")
        parts.append(np.arange(a, b))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def read_image(path: str | Path) -> CompiledModel:
    """Read and validate the image folder at ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise ImageError(f"{root} is not an image folder")
    raw = _read(root, "manifest.json")
    stamp = _read(root, "manifest.sha256")
    if stamp != f"{sha256(raw)}  manifest.json\n".encode():
        raise ImageError("manifest.json: checksum mismatch with manifest.sha256")
    try:
        man = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImageError(f"manifest.json is not valid JSON: {e}") from None
    _fields("the manifest", man, _TOP)
    if man["format"] != FORMAT:
        raise ImageError(f"manifest: format {man['format']!r} is not {FORMAT!r}")
    if man["version"] != VERSION:
        raise ImageError(f"manifest: format version {man['version']!r} is not supported "
                         f"(this reader reads version {VERSION})")
    try:
        config = CoreConfig.from_dict(man["config"])
    except (ConfigError, TypeError) as e:
        raise ImageError(f"manifest: config: {e}") from None
    data = _check_files(root, man["files"])
    comp = _fields("compiler", man["compiler"], _COMPILER)
    n_cores = _int("compiler.cores", comp["cores"], 1, 4096)
    try:
        defects = parse_defects({"format": "cimflow-defects", "version": 1,
                                 "cores": man["defects"]}, config, n_cores, "manifest: defects")
    except CompileError as e:
        raise ImageError(str(e)) from None
    graph = Graph.from_dict(man["graph"])
    layers = _layers(man["layers"], graph)
    segs, scales = _segments(man["segments"], layers, config, n_cores)
    tol = comp["tolerance_us"]
    if not isinstance(tol, (int, float)) or not tol > 0:
        raise ImageError(f"manifest: compiler.tolerance_us = {tol!r} must be > 0")
    targets = _cores(man["cores"], data, segs, layers, config, float(tol))
    placement = Placement(segs, n_cores, list(comp["excluded_cores"]),
                          _int("segment_rows", comp["segment_rows"], 2, config.rows),
                          _int("segment_cols", comp["segment_cols"], 1, config.cols),
                          list(comp["notes"]))
    cm = CompiledModel(config, graph, list(layers.values()), placement, targets, scales,
                       float(tol), dict(man["source"]), defects)
    for m in cm.layers:
        m.gp, m.gm = cm.conductances(m.name)
    return cm


def _read(root: Path, name: str) -> bytes:
    p = root / name
    if not p.is_file():
        raise ImageError(f"{name}: missing file")
    return p.read_bytes()


def _check_files(root: Path, files: Any) -> dict[str, bytes]:
    if not isinstance(files, dict):
        raise ImageError("manifest: files is not an object")
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    extra = sorted(present - set(files) - {"manifest.json", "manifest.sha256"})
    if extra:
        raise ImageError(f"{extra[0]}: file not listed in the manifest")
    out = {}
    for name, entry in files.items():
        _fields(f"files[{name!r}]", entry, {"bytes", "sha256"})
        if name not in present:
            raise ImageError(f"{name}: missing file")
        data = (root / name).read_bytes()
        if len(data) != entry["bytes"]:
            raise ImageError(f"{name}: {len(data)} bytes, the manifest says {entry['bytes']} "
                             f"({'truncated' if len(data) < entry['bytes'] else 'too long'})")
        if sha256(data) != entry["sha256"]:
            raise ImageError(f"{name}: checksum mismatch")
        out[name] = data
    return out


def _layers(items: Any, graph: Graph) -> dict[str, LayerMatrix]:
    if not isinstance(items, list):
        raise ImageError("manifest: layers is not a list")
    analog = {n.name: n.op for n in graph.analog}
    out = {}
    for i, d in enumerate(items):
        _fields(f"layers[{i}]", d, set(_FIELDS))
        try:
            m = LayerMatrix(**d)
        except TypeError as e:
            raise ImageError(f"manifest: layers[{i}]: {e}") from None
        if analog.get(m.node) != m.op:
            raise ImageError(f"manifest: layer {m.name!r} names no analog {m.op} node "
                             f"{m.node!r} of the graph")
        for k in ("n_in", "n_out"):
            _int(f"layer {m.name!r} {k}", getattr(m, k), 1)
        for k in ("bias_rows", "bias_cols", "mvms", "clipped"):
            _int(f"layer {m.name!r} {k}", getattr(m, k), 0)
        if not (0 < m.g_min < m.g_max and m.w_max > 0 and m.input_scale > 0):
            raise ImageError(f"manifest: layer {m.name!r} has g_min {m.g_min}, g_max "
                             f"{m.g_max}, w_max {m.w_max}, input_scale {m.input_scale}")
        if m.name in out:
            raise ImageError(f"manifest: layer {m.name!r} appears twice")
        out[m.name] = m
    return out


def _segments(items: Any, layers: dict[str, LayerMatrix], config: CoreConfig, n_cores: int):
    if not isinstance(items, list):
        raise ImageError("manifest: segments is not a list")
    segs, scales = [], {}
    for i, d in enumerate(items):
        w = f"segments[{i}]"
        _fields(w, d, _SEGMENT)
        m = layers.get(d["layer"])
        if m is None:
            raise ImageError(f"manifest: {w} names unknown layer {d['layer']!r}")
        p, c = d["pairs"], d["cols"]
        if not (isinstance(p, list) and len(p) == 3 and isinstance(c, list) and len(c) == 2):
            raise ImageError(f"manifest: {w} pairs must be [start, stop, step], cols "
                             f"[start, stop]")
        pairs = (_int(f"{w}.pairs", p[0], 0, m.pairs), _int(f"{w}.pairs", p[1], 1, m.pairs),
                 _int(f"{w}.pairs", p[2], 1, m.pairs))
        cols = (_int(f"{w}.cols", c[0], 0, m.cols), _int(f"{w}.cols", c[1], 1, m.cols))
        s = Segment(m.name, _int(f"{w}.index", d["index"]), pairs, cols,
                    _int(f"{w}.copy", d["copy"]), _int(f"{w}.core", d["core"], 0, n_cores - 1),
                    _int(f"{w}.row0", d["row0"]), _int(f"{w}.col0", d["col0"]))
        s.phys_rows = _expand(f"{w}.phys_rows", d["phys_rows"], config.rows)
        s.phys_cols = _expand(f"{w}.phys_cols", d["phys_cols"], config.cols)
        if s.n_rows == 0 or s.n_cols <= 0:
            raise ImageError(f"manifest: {w} is empty")
        if s.phys_rows.size != s.n_rows or s.phys_cols.size != s.n_cols:
            raise ImageError(f"manifest: {w} holds {s.n_rows} x {s.n_cols} cells but lists "
                             f"{s.phys_rows.size} rows and {s.phys_cols.size} columns")
        if np.any(s.phys_rows[0::2] % 2) or np.any(s.phys_rows[1::2] != s.phys_rows[0::2] + 1):
            raise ImageError(f"manifest: {w} rows are not differential pairs (2k, 2k+1)")
        sc = d["code_scale"]
        if not (isinstance(sc, list) and len(sc) == s.n_cols
                and all(isinstance(v, (int, float)) and np.isfinite(v) for v in sc)):
            raise ImageError(f"manifest: {w}.code_scale must be {s.n_cols} finite numbers")
        key = (s.layer, s.index, s.copy)
        if key in scales:
            raise ImageError(f"manifest: {w} repeats segment {key}")
        scales[key] = np.array(sc, dtype=np.float64)
        segs.append(s)
    for m in layers.values():  # every copy of every matrix covered exactly once
        for copy in sorted({s.copy for s in segs if s.layer == m.name} | {0}):
            cover = np.zeros((m.pairs, m.cols), np.int64)
            for s in segs:
                if s.layer == m.name and s.copy == copy:
                    cover[s.pair_index, s.cols[0]:s.cols[1]] += 1
            if not np.all(cover == 1):
                raise ImageError(f"manifest: the segments of layer {m.name!r} copy {copy} do "
                                 f"not cover its {m.rows} x {m.cols} matrix exactly once")
    return segs, scales


def _load_npy(name: str, data: bytes, dtype, shape=None) -> np.ndarray:
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ImageError(f"{name}: not a valid .npy file ({e})") from None
    if a.dtype != dtype or (shape is not None and a.shape != shape) or (
            shape is None and a.ndim != 1):
        raise ImageError(f"{name}: {a.dtype} array of shape {a.shape} contradicts the "
                         f"manifest ({np.dtype(dtype)}, {shape or '1-D'})")
    return a


def _cores(items: Any, data: dict[str, bytes], segs: list[Segment],
           layers: dict[str, LayerMatrix], config: CoreConfig, tol: float):
    if not isinstance(items, list):
        raise ImageError("manifest: cores is not a list")
    shape = (config.rows, config.cols)
    targets = {}
    for i, d in enumerate(items):
        _fields(f"cores[{i}]", d, _CORE)
        c = _int(f"cores[{i}].index", d["index"], 0, 4095)
        names = core_files(c)
        for k, v in names.items():
            if d[k] != v:
                raise ImageError(f"manifest: cores[{i}].{k} is {d[k]!r}, expected {v!r}")
            if v not in data:
                raise ImageError(f"manifest: {v} is not listed under files")
        t = _load_npy(names["targets"], data[names["targets"]], np.float64, shape)
        if not np.all(np.isfinite(t)):
            raise ImageError(f"{names['targets']}: non-finite conductance")
        used = np.zeros(shape, bool)
        lo, hi = np.full(shape, np.inf), np.zeros(shape)
        for s in (s for s in segs if s.core == c):
            cell = np.ix_(s.phys_rows, s.phys_cols)
            if used[cell].any():
                raise ImageError(f"manifest: segments overlap on core {c}")
            used[cell] = True
            lo[cell], hi[cell] = layers[s.layer].g_min, layers[s.layer].g_max
        bad = np.argwhere(used & ((t < lo - _G_EPS) | (t > hi + _G_EPS)) | (~used & (t != 0)))
        if bad.size:
            r, col = bad[0]
            raise ImageError(f"{names['targets']}: conductance {t[r, col]!r} uS at ({r}, {col}) "
                             f"is out of range for that cell")
        if int(used.sum()) != d["cells"]:
            raise ImageError(f"manifest: cores[{i}].cells = {d['cells']!r}, the segments use "
                             f"{int(used.sum())}")
        prog = _load_npy(names["program"], data[names["program"]], program_dtype)
        r, col = np.nonzero(used)  # row-major: the program's order
        if (prog.size != r.size or np.any(prog["row"] != r) or np.any(prog["col"] != col)
                or np.any(prog["target_us"] != t[r, col]) or np.any(prog["tol_us"] != tol)):
            raise ImageError(f"{names['program']}: cells, targets or tolerances contradict "
                             f"the targets and the manifest")
        if data[names["readmemh"]] != hex_lines(t).encode():
            raise ImageError(f"{names['readmemh']}: codes contradict {names['targets']}")
        t.flags.writeable = False
        targets[c] = t
    unused = sorted(set(data) - {v for c in targets for v in core_files(c).values()})
    if unused:
        raise ImageError(f"{unused[0]}: listed in the manifest but belongs to no core")
    missing = sorted({s.core for s in segs} - set(targets))
    if missing:
        raise ImageError(f"manifest: core {missing[0]} holds segments but has no files")
    return targets
