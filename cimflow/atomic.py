"""Atomic file writes: a reader never sees a half-written file.

The temporary file is created private (mode 0600), so its mode is set to what a plain
``open(path, "w")`` would give (0666 less the umask) before the rename: on a shared build
server other users can read the generated Verilog as usual.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["current_umask", "save_figure", "write_atomic"]


def current_umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """``fig.savefig(path, **kwargs)`` through :func:`write_atomic`: the figure is rendered
    into memory first (its format from the file name, as savefig does), so a failed or
    killed plot never leaves a truncated image."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    kwargs.setdefault("format", path.suffix.lstrip(".") or None)
    fig.savefig(buf, **kwargs)
    return write_atomic(path, buf.getvalue())
