"""Compiler from trained PyTorch models to per-core programming images.

Stages, one module each: :mod:`.frontend` (model file -> :mod:`.graph`), :mod:`.matrices`
(weights -> differential conductance matrices), :mod:`.placement` (matrices -> segments on
cores, with :mod:`.defects`), :mod:`.compiler` (the whole pipeline, :class:`CompiledModel`),
:mod:`.image` / :mod:`.image_read` (the image folder, docs/image_format.md), :mod:`.report`
and :mod:`.cli` (`cimflow compile`, `cimflow inspect`, `cimflow run`), :mod:`.runtime` (the
layer graph on golden cores; the RTL's in :mod:`cimflow.verif.tb_compiled`). :mod:`.zoo`
builds the paper's reference networks for tests and benchmarks, :mod:`.digits` the bundled
demo model, :mod:`.demo` runs the whole flow (``make demo``).
"""
