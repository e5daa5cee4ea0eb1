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


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig, plt


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_save_figure_writes_a_whole_png_with_the_plain_mode(tmp_path, umask):
    from cimflow.atomic import save_figure

    fig, plt = _figure()
    old = os.umask(umask)
    try:
        p = save_figure(fig, tmp_path / "plot.png", dpi=50)
        fig.savefig(tmp_path / "direct.png", dpi=50)
    finally:
        os.umask(old)
        plt.close(fig)
    assert p.read_bytes() == (tmp_path / "direct.png").read_bytes()
    assert p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_a_failing_save_figure_keeps_the_old_file(tmp_path):
    from cimflow.atomic import save_figure

    p = tmp_path / "plot.png"
    p.write_bytes(b"old plot")
    fig, plt = _figure()
    try:
        with pytest.raises(ValueError):
            save_figure(fig, p, dpi=50, format="no-such-format")
    finally:
        plt.close(fig)
    assert p.read_bytes() == b"old plot"
    assert [x.name for x in tmp_path.iterdir()] == ["plot.png"]


def test_experiments_and_benchmarks_write_figures_only_through_save_figure():
    """A plain savefig to a path leaves a truncated PNG when the run dies mid-write."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = [f"{f.relative_to(root)}:{i}"
                 for d in ("experiments", "benchmarks", "mapping")
                 for f in sorted((root / d).rglob("*.py"))
                 for i, line in enumerate(f.read_text().splitlines(), 1)
                 if ".savefig(" in line]
    assert offenders == []
