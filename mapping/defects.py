"""Per-die defect maps: which rows and columns of which core the compiler must not use.

File format (JSON), for one die::

    {"format": "cimflow-defects", "version": 1,
     "cores": {"3": {"rows": [17, 200], "cols": [5]}, "10": {"rows": [], "cols": [0, 1]}}}

Rows are BL/WL indices, columns SL indices, of the core's array. A defective row takes
its differential partner with it (rows 2k and 2k+1 form a pair), since a weight needs two
adjacent working rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cimflow.config import CoreConfig

from .errors import CompileError

__all__ = ["DefectMap", "load_defects"]


@dataclass(frozen=True)
class DefectMap:
    rows: dict[int, frozenset[int]] = field(default_factory=dict)
    cols: dict[int, frozenset[int]] = field(default_factory=dict)

    def good_rows(self, core: int, config: CoreConfig) -> np.ndarray:
        """Rows of the core's intact differential pairs, in order (2k, 2k+1, ...)."""
        bad = self.rows.get(core, frozenset())
        pairs = [k for k in range(config.rows // 2) if 2 * k not in bad and 2 * k + 1 not in bad]
        return np.array([r for k in pairs for r in (2 * k, 2 * k + 1)], dtype=np.int64)

    def good_cols(self, core: int, config: CoreConfig) -> np.ndarray:
        bad = self.cols.get(core, frozenset())
        return np.array([c for c in range(config.cols) if c not in bad], dtype=np.int64)

    def to_dict(self) -> dict:
        cores = sorted(set(self.rows) | set(self.cols))
        return {str(c): {"rows": sorted(self.rows.get(c, ())),
                         "cols": sorted(self.cols.get(c, ()))} for c in cores}


def load_defects(path: str | Path, config: CoreConfig, n_cores: int) -> DefectMap:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise CompileError(f"defect map {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompileError(f"defect map {p} is not valid JSON: {e}") from None
    return parse_defects(data, config, n_cores, str(p))


def parse_defects(data, config: CoreConfig, n_cores: int, where: str = "defect map"
                  ) -> DefectMap:
    if not isinstance(data, dict) or set(data) != {"format", "version", "cores"}:
        raise CompileError(f"{where}: need exactly the fields format, version, cores")
    if data["format"] != "cimflow-defects" or data["version"] != 1:
        raise CompileError(f"{where}: format {data['format']!r} version {data['version']!r} "
                           f"is not cimflow-defects version 1")
    if not isinstance(data["cores"], dict):
        raise CompileError(f"{where}: cores must be an object keyed by core index")
    rows, cols = {}, {}
    for key, entry in data["cores"].items():
        if not key.isdigit() or not 0 <= int(key) < n_cores:
            raise CompileError(f"{where}: core {key!r} is not in [0, {n_cores - 1}]")
        if not isinstance(entry, dict) or not set(entry) <= {"rows", "cols"}:
            raise CompileError(f"{where}: core {key} needs only the fields rows and cols")
        for name, limit, out in (("rows", config.rows, rows), ("cols", config.cols, cols)):
            vals = entry.get(name, [])
            if not isinstance(vals, list) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 <= v < limit
                    for v in vals):
                raise CompileError(f"{where}: core {key} {name} must be integers in "
                                   f"[0, {limit - 1}]")
            out[int(key)] = frozenset(vals)
    return DefectMap(rows, cols)
