"""A multilingual lexical (BM25-style) sparse encoder that needs no model.

Terms come from rag.words: words are runs of letters, marks and digits (so Devanagari vowel signs
stay inside words); scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar) become
overlapping character bigrams, the usual choice for CJK retrieval when no segmenter is at hand. Terms
are hashed into a fixed sparse space. Passages get BM25's saturated term frequency; queries get weight 1
per distinct term, so their inner product is BM25 without the IDF factor, which the retriever applies
from corpus counts.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.types import Encoding, SparseVector
from rag.words import surviving_words, terms

# terms stays importable from here: plugins do (README, "Plugins").
__all__ = ["LEXICAL_DIM", "LexicalEncoder", "LocalLexical", "shared_terms", "stopword_indices", "term_index", "terms"]

# 2**24 slots keep hash collisions rare for corpora of a few million distinct terms.
LEXICAL_DIM = 2**24
_K1 = 1.2
_B = 0.75
# Average passage length in terms; a fixed prior so a passage's weights do not depend on the corpus.
_AVG_TERMS = 120.0


@functools.lru_cache(maxsize=64)
def stopword_indices(language: str | None, dim: int = LEXICAL_DIM) -> frozenset[int]:
    """Hashed term ids of ``language``'s stopwords (stopwords-iso), empty when unknown.

    Dropped from lexical queries: IDF cannot tell that "the" is common when a collection holds
    little English, and then an English question's function words match English fragments inside
    Chinese or Thai passages.
    """
    if language is None:
        return frozenset()
    import stopwordsiso

    if not stopwordsiso.has_lang(language):
        return frozenset()
    return frozenset(term_index(t) % dim for word in stopwordsiso.stopwords(language) for t in terms(word))


def shared_terms(text: str, dim: int = LEXICAL_DIM) -> frozenset[int]:
    """Term ids of the words of ``text`` that survive translation (:func:`surviving_words`)."""
    return frozenset(term_index(term) % dim for term in surviving_words(text))


def term_index(term: str) -> int:
    """Stable hash of a term into ``[0, LEXICAL_DIM)``."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "big") % LEXICAL_DIM


def _bm25_tf(count: int, length: int) -> float:
    return count * (_K1 + 1) / (count + _K1 * (1 - _B + _B * length / _AVG_TERMS))


@dataclass(frozen=True, slots=True)
class LexicalEncoder:
    """Hashed BM25-style term weights for passages and queries."""

    dim: int = LEXICAL_DIM

    def passage(self, text: str) -> SparseVector:
        """Saturated term frequencies of ``text`` (colliding terms add up)."""
        found = terms(text)
        weights: dict[int, float] = {}
        for term, count in Counter(found).items():
            index = term_index(term) % self.dim
            weights[index] = weights.get(index, 0.0) + _bm25_tf(count, len(found))
        return SparseVector(weights, self.dim)

    def query(self, text: str) -> SparseVector:
        """Weight 1 for each distinct term of ``text``."""
        return SparseVector({term_index(t) % self.dim: 1.0 for t in set(terms(text))}, self.dim)

    def passages(self, texts: Sequence[str]) -> list[SparseVector]:
        """``passage`` for each text."""
        return [self.passage(text) for text in texts]

    def queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """``query`` for each text."""
        return [self.query(text) for text in texts]


class LocalLexical:
    """The sparse leg of an encoder whose dense vectors come from elsewhere (e5-small, an embeddings server):
    term-frequency weights from ``lexical`` (IDF applied at query time), paired with the dense rows. Mixed into a
    (slotted) dataclass with a ``lexical`` field."""

    __slots__ = ()
    lexical: LexicalEncoder

    @property
    def sparse_dim(self) -> int:
        """The lexical encoder's hashed space."""
        return self.lexical.dim

    @property
    def lexical_idf(self) -> bool:
        """True: the lexical weights are term frequencies, IDF comes from the corpus at query time."""
        return True

    def _passages(self, dense: np.ndarray, texts: Sequence[str]) -> list[Encoding]:
        return [Encoding(vector, sparse) for vector, sparse in zip(dense, self.lexical.passages(texts))]

    def _queries(self, dense: np.ndarray, texts: Sequence[str]) -> list[Encoding]:
        return [Encoding(vector, sparse) for vector, sparse in zip(dense, self.lexical.queries(texts))]
