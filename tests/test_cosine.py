"""Cosines do not depend on how many vectors are scored together or where they sit in memory.

A BLAS product gives a pair a different last bit depending on the shape of the product it is part of and on
the CPU's kernel; the scores a host and a container print must not (scoring/cosine.py).
"""

from __future__ import annotations

import numpy as np

from collapsebench.scoring.cosine import cosines


def unit(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_a_pair_gets_the_same_bits_alone_in_a_matrix_and_from_an_unaligned_view() -> None:
    rng = np.random.default_rng(0)
    rows, columns = unit(rng, 7, 768), unit(rng, 13, 768)
    matrix = cosines(rows, columns)
    assert matrix.shape == (7, 13) and matrix.dtype == np.float64
    alone = np.array([[cosines(rows[i:i + 1], columns[j:j + 1])[0, 0] for j in range(13)] for i in range(7)])
    assert matrix.tobytes() == alone.tobytes()
    assert cosines(rows, columns[4]).tobytes() == matrix[:, 4].tobytes()  # one vector: a (k,) result
    # The same vectors as a strided view 60 bytes into each row (as face embeddings sit beside their boxes).
    packed = np.zeros((13, 15 + 768), np.float32)
    packed[:, 15:] = columns
    assert cosines(rows, packed[:, 15:]).tobytes() == matrix.tobytes()
    # Exact products, so the float64 sum is within rounding of the exact dot product.
    exact = rows.astype(np.float64) @ columns.astype(np.float64).T
    assert np.abs(matrix - exact).max() < 1e-12
    assert np.allclose(np.diag(cosines(rows, rows)), 1.0, atol=1e-6)
