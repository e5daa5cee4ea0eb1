"""Registry of reproducible experiments run by `cimflow experiment NAME --out DIR`.

An experiment is a function ``run(out: Path, quick: bool, seed: int) -> dict`` that writes
PNG plots into ``out`` and returns its figures; the CLI writes them to ``out/results.json``
atomically. ``quick`` must finish in under a minute (CI runs it). Modules that define
experiments are listed in ``EXPERIMENT_MODULES`` and imported only when needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Experiment", "experiment", "registry"]

EXPERIMENT_MODULES: list[str] = [
    "cimflow.golden.experiments_programming",
    "cimflow.golden.experiments",
    "cimflow.experiments_training",
]
"""Modules imported to populate the registry (each registers with @experiment)."""


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    run: Callable[[Path, bool, int], dict]


_REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, summary: str):
    """Decorator registering ``run(out, quick, seed) -> dict`` under ``name``."""

    def register(fn: Callable[[Path, bool, int], dict]):
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"experiment {name!r} registered twice")
        _REGISTRY[name] = Experiment(name, summary, fn)
        return fn

    return register


def registry() -> dict[str, Experiment]:
    for mod in EXPERIMENT_MODULES:
        importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))
