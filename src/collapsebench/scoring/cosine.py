"""Cosines of unit embeddings, the same to the bit on every CPU.

A BLAS product (numpy's `@`) picks its kernel, blocking and summation order by CPU type, thread count and
memory layout. With the same float32 embeddings, the face and crop cosines of a host and of the CPU scoring
container came out one unit apart in the sixth printed decimal on some machines, and a reviewer re-running
`score` elsewhere must get the published scores.csv back. So no cosine goes through BLAS: each one is the
float64 products of its two vectors (exact for float32 inputs) summed by numpy's pairwise sum along a
contiguous axis, whose order depends on the vector length alone.
"""

from __future__ import annotations

import numpy as np


def cosines(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(k, d) unit vectors against (m, d) ones -> (k, m) cosines; against one (d,) vector -> (k,)."""
    left = np.asarray(rows, dtype=np.float64)
    right = np.asarray(columns, dtype=np.float64)
    if right.ndim == 1:
        return np.ascontiguousarray(left * right).sum(axis=-1)
    return np.ascontiguousarray(left[:, None, :] * right[None, :, :]).sum(axis=-1)
