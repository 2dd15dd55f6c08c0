"""ColBERT reranking with BGE-M3's multi-vector head: late interaction over per-token vectors.

It needs no second model when the collection is encoded with BGE-M3 already:
:meth:`ColbertReranker.from_encoder` shares the loaded weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from rag.errors import EncoderError
from rag.search.rerankers.ranking import check_k, ranked
from rag.types import Encoding, Hit

if TYPE_CHECKING:
    from rag.encoders.bge_m3 import BgeM3Encoder

DEFAULT_MODEL = "BAAI/bge-m3"


def colbert_score(query: np.ndarray, passage: np.ndarray) -> float:
    """Return BGE-M3's late-interaction score: for each query token the best dot product with any passage
    token, summed and divided by the number of query tokens (FlagEmbedding's ``M3Embedder.colbert_score``)."""
    if query.ndim != 2 or passage.ndim != 2 or query.shape[1] != passage.shape[1]:
        raise ValueError(
            f"colbert_score needs 2-D token matrices of the same width, got {query.shape} and {passage.shape}"
        )
    if not (query.shape[0] and passage.shape[0]):
        raise ValueError(f"colbert_score needs at least one token on each side, got {query.shape} and {passage.shape}")
    return float(np.max(query @ passage.T, axis=1).sum() / query.shape[0])


@dataclass(frozen=True, slots=True)
class ColbertReranker:
    """Reranks hits by ColBERT score between the question's and each passage's BGE-M3 token vectors."""

    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL

    encoder: BgeM3Encoder  # loaded with colbert=True

    def __post_init__(self) -> None:
        if not self.encoder.colbert:
            raise ValueError(
                "ColbertReranker needs a BgeM3Encoder that returns ColBERT vectors; "
                "use ColbertReranker.from_encoder(encoder) or BgeM3Encoder.load(..., colbert=True)"
            )

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 16) -> ColbertReranker:
        """Load BGE-M3 (a local directory or a hub id) with its ColBERT head."""
        from rag.encoders.bge_m3 import BgeM3Encoder

        return cls(BgeM3Encoder.load(model, device=device, batch_size=batch_size, colbert=True))

    @classmethod
    def from_encoder(cls, encoder: BgeM3Encoder) -> ColbertReranker:
        """Rerank with an already loaded BGE-M3 encoder, sharing its weights (ColBERT output switched on)."""
        return cls(replace(encoder, colbert=True))

    def rerank(self, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        """Return the best ``k`` hits by ColBERT score, best first, with a ``rerank`` leg added."""
        check_k(k)
        if not hits:
            return []
        (query,) = self.encoder.encode_queries([question])
        passages = self.encoder.encode_passages([hit.chunk.text for hit in hits])
        scores = [colbert_score(_vectors(query), _vectors(passage)) for passage in passages]
        return ranked(zip(hits, scores), k)


def _vectors(encoding: Encoding) -> np.ndarray:
    if encoding.colbert is None:
        raise EncoderError(
            "the BGE-M3 encoder returned no ColBERT vectors; check that the checkpoint has colbert_linear.pt"
        )
    return encoding.colbert
