"""Reproducible experiments run by `cimflow experiment NAME --out DIR`, with their plots.

They use the golden model (cimflow.golden) but are not part of it: golden/ holds models
only. Runner modules register with :func:`registry.experiment`; ``registry()`` imports the
modules listed in ``MODULES`` on first use, so importing this package is cheap.
"""

from __future__ import annotations

import importlib

from .registry import REGISTERED, Experiment, experiment

__all__ = ["Experiment", "experiment", "registry", "MODULES"]

MODULES: tuple[str, ...] = (
    "cimflow.experiments.programming",
    "cimflow.experiments.mvm",
    "cimflow.experiments.rpu",
    "cimflow.experiments.training",
    "cimflow.experiments.chip_in_the_loop",
    "cimflow.experiments.mnist_on_chip",
)
"""Runner modules imported to populate the registry."""


def registry() -> dict[str, Experiment]:
    """Every experiment by name (sorted)."""
    for mod in MODULES:
        importlib.import_module(mod)
    return dict(sorted(REGISTERED.items()))
