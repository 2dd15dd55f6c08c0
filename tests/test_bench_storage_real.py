"""The real-vector storage check: its arithmetic on vectors with a shared direction, as real encoders make."""

from __future__ import annotations

import numpy as np
import pytest

from evals.bench_storage_real import recall_tables


def _anisotropic(n: int, dim: int = 64, seed: int = 1) -> np.ndarray:
    """Unit vectors around one common direction (mean pairwise cosine ~0.8), like e5's."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=dim)
    vectors = 3.0 * shared / np.linalg.norm(shared) * np.abs(rng.normal(1.0, 0.1, size=(n, 1)))
    vectors = vectors + rng.normal(size=(n, dim)) * np.linspace(0.05, 1.0, dim) + 1.5 * rng.normal(size=dim)
    return vectors.astype(np.float32)


def test_centred_bits_beat_raw_bits_on_vectors_with_a_shared_direction() -> None:
    report = recall_tables(_anisotropic(1200), 100, factors=(2, 8))
    assert report["mean_pairwise_cosine"] > 0.5
    assert report["halfvec"] >= 0.99
    for factor in (2, 8):
        assert 0 < report["bits"][factor] < report["centred_bits"][factor] <= 1
    assert report["bits"][2] < report["bits"][8]  # more candidates find more


def test_too_small_a_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="need at least 160"):
        recall_tables(_anisotropic(150), 100, factors=(2, 16))
