"""Writing an image folder: manifest, per-core files, checksums; atomically.

The format is specified in docs/image_format.md. Why a folder of plain files rather than
one archive: the per-core ``.hex`` files are loaded as they are by ``$readmemh``, the
``.npy`` files by NumPy, and a person can read the manifest.

Atomicity: everything is written into a hidden temporary folder ``.NAME.tmp-*`` next to the
target, each file fsync'ed, then the folder is moved into place. The target name never
holds a partial image. Replacing an existing image:

* on Linux, where the file system supports it (ext4, XFS, Btrfs, tmpfs, ...), the two
  folders are swapped in one atomic ``renameat2(RENAME_EXCHANGE)`` and the old image,
  now under the temporary name, is removed: the target always names a complete image,
  the old one or the new one;
* elsewhere the old image is first renamed aside to ``.NAME.old-PID``, then the new one
  renamed into place. Between the two renames the target name does not exist: a kill in
  that moment leaves the old image, complete, at ``.NAME.old-PID`` beside the target (move
  it back by hand); a failed second rename moves it back.

A failure or a kill at any other moment leaves the old image or the new one under the
target name; at worst a hidden ``.NAME.tmp-*`` or ``.NAME.old-*`` folder is left beside it.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cimflow.atomic import current_umask
from cimflow.golden.array import G_FRAC_BITS

from .compiler import CompiledModel
from .errors import ImageError

__all__ = ["FORMAT", "VERSION", "HEX_DIGITS", "write_image", "hex_lines", "program_dtype",
           "ranges", "core_files", "sha256"]

FORMAT = "cimflow-image"
VERSION = 1
HEX_DIGITS = 4
"""Hex digits per cell in a ``$readmemh`` line: 16-bit codes of 2**-10 uS (the behavioural
macro's default ``g_bits``)."""

program_dtype = np.dtype([("row", "<u2"), ("col", "<u2"), ("target_us", "<f8"),
                          ("tol_us", "<f8")])
"""One write-verify step: program cell (row, col) to target_us +- tol_us."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def core_files(core: int) -> dict[str, str]:
    stem = f"cores/core_{core:03d}"
    return {"targets": f"{stem}.npy", "program": f"{stem}.wv.npy", "readmemh": f"{stem}.hex"}


def ranges(idx: np.ndarray) -> list[list[int]]:
    """Sorted-or-not index list as runs [start, stop) of consecutive values, in order."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [idx.size]))
    return [[int(idx[a]), int(idx[b - 1]) + 1] for a, b in zip(starts, stops, strict=True)]


def hex_lines(targets: np.ndarray) -> str:
    """``$readmemh`` text: one line per array row, column cols-1 first, column 0 last."""
    codes = np.rint(targets * (1 << G_FRAC_BITS)).astype(np.int64)
    if codes.min() < 0 or codes.max() >= 1 << (4 * HEX_DIGITS):
        raise ImageError(f"a conductance code does not fit {4 * HEX_DIGITS} bits")
    big = codes[:, ::-1].astype(">u2")
    return "".join(row.tobytes().hex() + "\n" for row in big)


def _program(cm: CompiledModel, core: int) -> np.ndarray:
    """The core's used cells in row-major order (the order the board programs them)."""
    segs = [s for s in cm.placement.segments if s.core == core]
    rows = [np.repeat(s.phys_rows, s.n_cols) for s in segs]
    cols = [np.tile(s.phys_cols, s.n_rows) for s in segs]
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    order = np.lexsort((c, r))
    out = np.empty(r.size, dtype=program_dtype)
    out["row"], out["col"] = r[order], c[order]
    out["target_us"] = cm.targets[core][r[order], c[order]]
    out["tol_us"] = cm.tolerance
    return out


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def manifest(cm: CompiledModel, files: dict[str, bytes]) -> dict:
    p = cm.placement
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": cm.config.to_dict(),
        "source": cm.source,
        "compiler": {"cores": p.n_cores, "excluded_cores": p.excluded,
                     "segment_rows": p.seg_rows, "segment_cols": p.seg_cols,
                     "tolerance_us": cm.tolerance, "notes": p.notes},
        "defects": cm.defects.to_dict(),
        "graph": cm.graph.to_dict(),
        "layers": [m.to_dict() for m in cm.layers],
        "segments": [{"layer": s.layer, "index": s.index, "copy": s.copy,
                      "pairs": list(s.pairs), "cols": list(s.cols), "core": s.core,
                      "row0": s.row0, "col0": s.col0, "phys_rows": ranges(s.phys_rows),
                      "phys_cols": ranges(s.phys_cols),
                      "code_scale": [float(v) for v in cm.code_scale[(s.layer, s.index,
                                                                         s.copy)]]}
                     for s in p.segments],
        "cores": [{"index": c, **core_files(c), "cells": cm.used_cells(c)}
                  for c in sorted(cm.targets)],
        "files": {name: {"bytes": len(data), "sha256": sha256(data)}
                  for name, data in sorted(files.items())},
    }


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _fsync(path: Path) -> None:
    """fsync a file or a folder by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_files(paths: list[Path]) -> None:
    """fsync every file, many at a time: one after another, the 150 files of a 48-core
    image took a second here (a journal commit each); concurrent ones share commits."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))  # list: re-raises the first failure


def _fsync_dir(path: Path) -> None:
    """fsync a folder (its entries); a separate name so tests can interrupt the write here."""
    _fsync(path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where the system or the file system cannot (the caller then renames twice)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def write_image(cm: CompiledModel, out: str | Path) -> Path:
    """Write ``cm`` as an image folder at ``out`` (replacing an existing image there)."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (out / "manifest.json").is_file()):
        raise ImageError(f"{out} exists and is not a cimflow image; refusing to replace it")
    files: dict[str, bytes] = {}
    for c in sorted(cm.targets):
        names = core_files(c)
        files[names["targets"]] = _npy_bytes(cm.targets[c])
        files[names["program"]] = _npy_bytes(_program(cm, c))
        files[names["readmemh"]] = hex_lines(cm.targets[c]).encode()
    text = json.dumps(manifest(cm, files), indent=1).encode() + b"\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        # mkdtemp makes the folder private (0700): give it the mode a plain mkdir would
        os.chmod(tmp, 0o777 & ~current_umask())
        (tmp / "cores").mkdir()
        for name, data in files.items():
            _write(tmp / name, data)
        _write(tmp / "manifest.json", text)
        _write(tmp / "manifest.sha256", f"{sha256(text)}  manifest.json\n".encode())
        _fsync_files([tmp / name for name in (*files, "manifest.json", "manifest.sha256")])
        _fsync_dir(tmp / "cores")
        _fsync_dir(tmp)
        old = None
        if out.exists() and _exchange(tmp, out):
            old = tmp  # the old image, now under the temporary name
        else:
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.rename(out, old)
            try:
                os.rename(tmp, out)
            except BaseException:
                if old is not None:
                    os.rename(old, out)
                raise
        _fsync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
