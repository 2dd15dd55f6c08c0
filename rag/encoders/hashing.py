"""A model-free Encoder for benchmarks and tests: lexical weights, and the same weights folded into a dense
vector. Texts that share terms are near in both spaces; nothing is learned, so it says nothing about quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.encoders.lexical import LexicalEncoder, terms
from rag.types import Encoding, SparseVector


@dataclass(slots=True)
class HashingEncoder:
    """Lexical BM25-style weights, and those weights folded (term id mod ``dim``) into a unit dense vector.

    Deterministic and about 1,000x faster than e5-small on a CPU, so a 100k-chunk collection can be built
    in minutes (``evals/bench_load.py``) and tests need no model.
    """

    dim: int = 384
    lexical: LexicalEncoder = field(default_factory=LexicalEncoder)

    @property
    def name(self) -> str:
        """Recorded by the collection."""
        return f"hashing-{self.dim}"

    @property
    def sparse_dim(self) -> int:
        """The lexical space."""
        return self.lexical.dim

    @property
    def lexical_idf(self) -> bool:
        """True, like e5-small: queries are weighted by the collection's IDF."""
        return True

    def fold(self, sparse: SparseVector) -> np.ndarray:
        """``sparse``'s weights summed into ``dim`` buckets and normalized (a text without terms: unit e0)."""
        vector = np.zeros(self.dim, dtype=np.float32)
        indices = np.fromiter(sparse.weights.keys(), dtype=np.int64, count=len(sparse.weights))
        weights = np.fromiter(sparse.weights.values(), dtype=np.float32, count=len(sparse.weights))
        np.add.at(vector, indices % self.dim, weights)
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Folded dense vectors and BM25-style weights."""
        return [Encoding(self.fold(s), s) for s in self.lexical.passages(texts)]

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Folded dense vectors and query terms."""
        return [Encoding(self.fold(s), s) for s in self.lexical.queries(texts)]

    def count_tokens(self, text: str) -> int:
        """One token per lexical term, plus two specials."""
        return len(terms(text)) + 2
