"""Deterministic stand-ins for models (not mocks): they satisfy the Protocols and are type-checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.encoders.lexical import LexicalEncoder, term_index, terms
from rag.types import Encoding


@dataclass(slots=True)
class HashEncoder:
    """Dense vectors from hashed terms (texts sharing terms are similar) and lexical sparse weights.

    ``calls`` records every batch it was asked to encode, so tests can see what the cache spared.
    """

    dim: int = 32
    lexical: LexicalEncoder = field(default_factory=LexicalEncoder)
    calls: list[list[str]] = field(default_factory=list)
    name: str = "hash-fake"

    @property
    def sparse_dim(self) -> int:
        """The lexical space."""
        return self.lexical.dim

    @property
    def lexical_idf(self) -> bool:
        """Lexical weights, like e5-small's."""
        return True

    def _dense(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for term in terms(text):
            vector[term_index(term) % self.dim] += 1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Hashed dense vectors and BM25-style weights."""
        self.calls.append(list(texts))
        return [Encoding(self._dense(t), s) for t, s in zip(texts, self.lexical.passages(texts))]

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Hashed dense vectors and query terms."""
        self.calls.append(list(texts))
        return [Encoding(self._dense(t), s) for t, s in zip(texts, self.lexical.queries(texts))]

    def count_tokens(self, text: str) -> int:
        """One token per term, plus two specials."""
        return len(terms(text)) + 2
