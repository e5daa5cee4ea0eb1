"""The layer graph: what the front end reads from a model and what the image records.

Why a graph of our own: TorchScript and ExportedProgram describe the same network in two
different IRs. Both are reduced to this one form, so matrices, placement, the image and a
later runtime see a single representation. Values are named strings (``v0``, ``v1``, ...);
a node reads ``inputs`` and writes ``outputs``. ``kind`` says where a node runs:

* ``analog``: a conductance matrix on the cores (``linear``, ``conv2d``, ``lstm``, ``rbm``);
  a module called twice gives two nodes, the second with ``attrs["shares"]`` naming the
  first, whose matrices it reuses;
* ``digital``: everything else (pooling, additions, flatten, activations, ...), done by the
  host; ``op`` is the ATen operator or module name and ``attrs["args"]`` its arguments, a
  value being written ``{"ref": name}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ImageError

__all__ = ["Node", "Graph", "ANALOG_OPS"]

ANALOG_OPS = ("linear", "conv2d", "lstm", "rbm")

_NODE_KEYS = {"name", "op", "kind", "inputs", "outputs", "attrs"}
_GRAPH_KEYS = {"inputs", "outputs", "nodes"}


@dataclass
class Node:
    name: str
    """Module path (e.g. ``layer1.0.conv1``) or a generated name for an operator."""
    op: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Weights of analog nodes (float64 arrays); kept in memory only, the image stores the
    conductance matrices instead."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "kind": self.kind,
                "inputs": list(self.inputs), "outputs": list(self.outputs),
                "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d: Any) -> Node:
        if not isinstance(d, dict):
            raise ImageError("manifest: a graph node is not an object")
        if set(d) != _NODE_KEYS:
            raise ImageError(f"manifest: graph node fields {sorted(d)} differ from "
                             f"{sorted(_NODE_KEYS)}")
        if d["kind"] not in ("analog", "digital") or (
                d["kind"] == "analog" and d["op"] not in ANALOG_OPS):
            raise ImageError(f"manifest: graph node {d['name']!r} has kind {d['kind']!r} "
                             f"and op {d['op']!r}")
        return cls(str(d["name"]), str(d["op"]), d["kind"], list(d["inputs"]),
                   list(d["outputs"]), dict(d["attrs"]))


@dataclass
class Graph:
    inputs: list[str]
    outputs: list[str]
    nodes: list[Node]

    @property
    def analog(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "analog"]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs,
                "nodes": [n.to_dict() for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: Any) -> Graph:
        if not isinstance(d, dict) or set(d) != _GRAPH_KEYS:
            raise ImageError(f"manifest: graph must have exactly the fields "
                             f"{sorted(_GRAPH_KEYS)}")
        g = cls(list(d["inputs"]), list(d["outputs"]), [Node.from_dict(n) for n in d["nodes"]])
        defined = set(g.inputs)
        for n in g.nodes:
            missing = [v for v in n.inputs if v not in defined]
            if missing:
                raise ImageError(f"manifest: graph node {n.name!r} reads undefined value "
                                 f"{missing[0]!r}")
            defined.update(n.outputs)
        return g
