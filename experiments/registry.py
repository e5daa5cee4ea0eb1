"""The experiment record and the decorator that registers one.

An experiment is a function ``run(out: Path, quick: bool, seed: int) -> dict`` that writes
PNG plots into ``out`` and returns its figures; the CLI writes them to ``out/results.json``
atomically. ``quick`` must finish in under two minutes on 2 cores (tests run it). A training
experiment may also take ``epochs: int | None = None``, which ``cimflow experiment --epochs N``
sets to cut a full run short (or lengthen it) where a machine cannot afford the default. This
module imports no experiment, so runner modules can import it without a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Experiment", "experiment", "REGISTERED"]


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    run: Callable[[Path, bool, int], dict]


REGISTERED: dict[str, Experiment] = {}
"""Experiments registered so far (filled as runner modules are imported)."""


def experiment(name: str, summary: str):
    """Decorator registering ``run(out, quick, seed) -> dict`` under ``name``."""

    def register(fn: Callable[[Path, bool, int], dict]):
        if name in REGISTERED and REGISTERED[name].run is not fn:
            raise ValueError(f"experiment {name!r} registered twice")
        REGISTERED[name] = Experiment(name, summary, fn)
        return fn

    return register
