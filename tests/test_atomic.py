"""Atomic writes leave a normal file: contents, and the mode a plain write would give."""

import os
import stat

import pytest

from cimflow.atomic import write_atomic


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_mode_honours_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        got = write_atomic(tmp_path / "a.v", "module m; endmodule\n")
        plain = tmp_path / "plain.v"
        plain.write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(got.stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    assert got.read_text() == "module m; endmodule\n"


def test_bytes_replace_and_no_leftover(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    write_atomic(p, b"old")
    write_atomic(p, b"\x00new")
    assert p.read_bytes() == b"\x00new"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.bin"]
