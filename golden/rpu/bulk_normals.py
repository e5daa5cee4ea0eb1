"""The rank-1 kernel's bulk normals: :mod:`cimflow.golden.bulk_normals`, shared with the
fused MVM's aggregate sampler (one implementation; this name kept for existing imports)."""

from ..bulk_normals import AVAILABLE, fill_pairs, pair

__all__ = ["AVAILABLE", "fill_pairs", "pair"]
