"""Image format: round trip, the $readmemh layout, a one-line refusal for every kind of bad
image (also for random corruption, property-based), and atomic writes."""

import hashlib
import json
import os
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cimflow.config import preset
from cimflow.golden.array import G_FRAC_BITS
from cimflow.mapping import image as image_mod
from cimflow.mapping.compiler import compile_graph
from cimflow.mapping.errors import ImageError
from cimflow.mapping.graph import Graph, Node
from cimflow.mapping.image import write_image
from cimflow.mapping.image_read import read_image

CFG = preset("small")


def small_model(seed=3):
    rng = np.random.default_rng(seed)
    nodes = [
        Node("fc1", "linear", "analog", ["v0"], ["v1"], {},
             {"weight": rng.uniform(-1, 1, (12, 10)), "bias": rng.uniform(-2, 2, 10)}),
        Node("relu", "relu", "digital", ["v1"], ["v2"], {"call": "aten", "args": [{"ref": "v1"}]}),
        Node("fc2", "linear", "analog", ["v2"], ["v3"], {},
             {"weight": rng.uniform(-1, 1, (10, 3)), "bias": None}),
    ]
    return compile_graph(Graph(["v0"], ["v3"], nodes), CFG, n_cores=6)


@pytest.fixture(scope="module")
def compiled():
    return small_model()


@pytest.fixture()
def img(tmp_path, compiled):
    return write_image(compiled, tmp_path / "img")


def reseal(root):
    """Recompute every checksum, so that only the meaning of an edit is tested."""
    man = json.loads((root / "manifest.json").read_text())
    for name in list(man["files"]):
        if (root / name).exists():
            data = (root / name).read_bytes()
            man["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    text = json.dumps(man, indent=1).encode()
    (root / "manifest.json").write_bytes(text)
    (root / "manifest.sha256").write_text(hashlib.sha256(text).hexdigest() + "  manifest.json\n")


def edit_manifest(root, fn):
    man = json.loads((root / "manifest.json").read_text())
    fn(man)
    (root / "manifest.json").write_text(json.dumps(man))
    reseal(root)


def refused(root, msg):
    with pytest.raises(ImageError) as e:
        read_image(root)
    text = str(e.value)
    assert msg in text and "\n" not in text, text
    return text


def test_round_trip(img, compiled):
    back = read_image(img)
    assert back.config == compiled.config and back.graph.to_dict() == compiled.graph.to_dict()
    assert [m.to_dict() for m in back.layers] == [m.to_dict() for m in compiled.layers]
    assert set(back.targets) == set(compiled.targets)
    for c, t in compiled.targets.items():
        np.testing.assert_array_equal(back.targets[c], t)
    for m, n in zip(back.layers, compiled.layers, strict=True):
        np.testing.assert_array_equal(m.gp, n.gp)
    for k, v in compiled.code_scale.items():
        np.testing.assert_array_equal(back.code_scale[k], v)


def test_readmemh_lines_hold_codes_column_zero_last(img, compiled):
    c = min(compiled.targets)
    lines = (img / f"cores/core_{c:03d}.hex").read_text().splitlines()
    assert len(lines) == CFG.rows and all(len(line) == 4 * CFG.cols for line in lines)
    t = compiled.targets[c]
    for r in (0, 1, 7):
        words = [int(lines[r][4 * k:4 * k + 4], 16) for k in range(CFG.cols)]
        codes = np.rint(t[r] * 2**G_FRAC_BITS).astype(int)
        assert words == list(codes[::-1])


def test_write_verify_program_lists_used_cells_row_major(img, compiled):
    c = min(compiled.targets)
    prog = np.load(img / f"cores/core_{c:03d}.wv.npy")
    t = compiled.targets[c]
    assert prog.size == compiled.used_cells(c) == np.count_nonzero(t)
    keys = prog["row"].astype(int) * CFG.cols + prog["col"]
    assert np.all(np.diff(keys) > 0)
    np.testing.assert_array_equal(prog["target_us"], t[prog["row"], prog["col"]])
    assert np.all(prog["tol_us"] == 1.0)


def _core0(img):
    return sorted((img / "cores").glob("core_*.npy"))[0]


@pytest.mark.parametrize("case,msg", [
    ("truncate", "truncated"),
    ("flip", "checksum mismatch"),
    ("manifest-flip", "manifest.json: checksum mismatch"),
    ("missing", "missing file"),
    ("extra", "not listed in the manifest"),
    ("version", "format version 2 is not supported"),
    ("unknown", "unknown field 'colour'"),
    ("unknown-layer-field", "unknown field 'extra'"),
    ("shape", "contradicts the manifest"),
    ("range", "out of range for that cell"),
    ("unformed", "out of range for that cell"),
    ("segment", "cells but lists 14 rows and 3 columns"),
    ("coverage", "do not cover"),
    ("hex", "codes contradict"),
])
def test_bad_images_are_refused_in_one_line(img, case, msg):
    npy = _core0(img)
    if case == "truncate":
        npy.write_bytes(npy.read_bytes()[:-5])
    elif case == "flip":
        data = bytearray(npy.read_bytes())
        data[200] ^= 0x10
        npy.write_bytes(bytes(data))
    elif case == "manifest-flip":
        data = bytearray((img / "manifest.json").read_bytes())
        data[50] ^= 0x01
        (img / "manifest.json").write_bytes(bytes(data))
    elif case == "missing":
        npy.unlink()
    elif case == "extra":
        (img / "cores" / "notes.txt").write_text("hi")
    elif case == "version":
        edit_manifest(img, lambda m: m.update(version=2))
    elif case == "unknown":
        edit_manifest(img, lambda m: m.update(colour="red"))
    elif case == "unknown-layer-field":
        edit_manifest(img, lambda m: m["layers"][0].update(extra=1))
    elif case in ("shape", "range", "unformed"):
        t = np.load(npy)
        if case == "shape":
            t = t[:-1]
        elif case == "range":
            t[t > 0] = t[t > 0].max() * 2  # above g_max
        else:
            t[t == 0] = 5.0  # a cell no segment uses must stay unformed
        np.save(npy, t)
        reseal(img)
    elif case == "segment":
        edit_manifest(img, lambda m: m["segments"][0].update(phys_cols=[[0, 3]]))
    elif case == "coverage":
        edit_manifest(img, lambda m: m["segments"].pop())
    elif case == "hex":
        hx = sorted((img / "cores").glob("*.hex"))[0]
        hx.write_text(hx.read_text().replace("0", "1", 1))
        reseal(img)
    refused(img, msg)


HYP = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
FILES = st.sampled_from(["manifest.json", "manifest.sha256", "npy", "wv", "hex"])


def _path(img, which):
    if which.startswith("manifest"):
        return img / which
    ext = {"npy": ".npy", "wv": ".wv.npy", "hex": ".hex"}[which]
    return sorted(p for p in (img / "cores").iterdir() if p.name.endswith(ext)
                  and (ext != ".npy" or not p.name.endswith(".wv.npy")))[0]


@HYP
@given(which=FILES, pos=st.floats(0, 1, exclude_max=True), xor=st.integers(1, 255),
       truncate=st.booleans())
def test_any_corrupted_byte_is_refused(tmp_path_factory, compiled, which, pos, xor, truncate):
    img = write_image(compiled, tmp_path_factory.mktemp("h") / "img")
    p = _path(img, which)
    data = bytearray(p.read_bytes())
    i = int(pos * len(data))
    if truncate:
        data = data[:i]
    else:
        data[i] ^= xor
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError) as e:
        read_image(img)
    assert "\n" not in str(e.value)


@HYP
@given(pos=st.floats(0, 1, exclude_max=True), char=st.sampled_from('0123456789[]{}",.-ae '))
def test_resealed_manifest_edits_give_an_image_error_or_the_same_image(
        tmp_path_factory, compiled, pos, char):
    """With valid checksums, an edited manifest is either still a correct image or refused
    with an ImageError: never another exception."""
    img = write_image(compiled, tmp_path_factory.mktemp("m") / "img")
    text = (img / "manifest.json").read_text()
    i = int(pos * len(text))
    (img / "manifest.json").write_text(text[:i] + char + text[i + 1:])
    try:
        man = json.loads((img / "manifest.json").read_text())
    except json.JSONDecodeError:
        man = None
    if man is not None:
        reseal(img)
    try:
        back = read_image(img)
    except ImageError as e:
        assert "\n" not in str(e)
        return
    for c, t in back.targets.items():
        np.testing.assert_array_equal(t, compiled.targets[c])


def test_failed_write_leaves_the_old_image(tmp_path, compiled, monkeypatch):
    out = write_image(compiled, tmp_path / "img")
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 4:
            raise OSError("disk full")
        original(path, data)

    original = image_mod._write
    monkeypatch.setattr(image_mod, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        write_image(compiled, out)
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and read_image(out) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["img"]  # no temporary left behind


def test_failed_first_write_leaves_nothing(tmp_path, compiled, monkeypatch):
    def failing(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(image_mod, "_write", failing)
    with pytest.raises(OSError):
        write_image(compiled, tmp_path / "img")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_something_else(tmp_path, compiled):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    with pytest.raises(ImageError, match="is not a cimflow image"):
        write_image(compiled, tmp_path / "data")
    assert (tmp_path / "data" / "keep.txt").exists()


def same_targets(a, b):
    return sorted(a.targets) == sorted(b.targets) and all(
        np.array_equal(a.targets[c], b.targets[c]) for c in a.targets)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_replacing_an_image(tmp_path, compiled, monkeypatch, exchange):
    other = small_model(seed=4)
    assert not same_targets(compiled, other)  # else the test could not tell them apart
    if not exchange:
        monkeypatch.setattr(image_mod, "_exchange", lambda a, b: False)
    out = write_image(compiled, tmp_path / "img")
    assert same_targets(read_image(out), compiled)
    write_image(other, out)
    assert same_targets(read_image(out), other)
    assert [p.name for p in tmp_path.iterdir()] == ["img"]  # old image and temporaries gone


def test_replacing_never_leaves_the_target_name_empty(tmp_path, compiled, monkeypatch):
    """Where renameat2(RENAME_EXCHANGE) works, the old image is never renamed away."""
    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir()
    probe_b.mkdir()
    (probe_a / "x").touch()
    if not image_mod._exchange(probe_a, probe_b):
        pytest.skip("no atomic exchange on this system / file system")
    assert (probe_b / "x").exists() and not (probe_a / "x").exists()
    out = write_image(compiled, tmp_path / "img")
    renamed = []
    real = os.rename
    monkeypatch.setattr(image_mod.os, "rename", lambda a, b: (renamed.append(a), real(a, b)))
    write_image(small_model(seed=4), out)
    assert renamed == []  # a single exchange: no rename leaves the target name empty
    assert read_image(out) is not None


def test_a_failed_second_rename_puts_the_old_image_back(tmp_path, compiled, monkeypatch):
    out = write_image(compiled, tmp_path / "img")
    real = os.rename
    monkeypatch.setattr(image_mod, "_exchange", lambda a, b: False)

    def rename(a, b):
        if ".tmp-" in str(a):
            raise OSError("rename failed")
        real(a, b)

    monkeypatch.setattr(image_mod.os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        write_image(small_model(seed=4), out)
    assert same_targets(read_image(out), compiled)
    assert [p.name for p in tmp_path.iterdir()] == ["img"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_image_folder_mode_honours_umask(tmp_path, compiled, umask):
    old = os.umask(umask)
    try:
        out = write_image(compiled, tmp_path / "img")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert want == 0o777 & ~umask
    assert stat.S_IMODE(out.stat().st_mode) == want
    assert stat.S_IMODE((out / "cores").stat().st_mode) == want
    for f in out.rglob("*"):
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
