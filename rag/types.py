"""Rosetta's vocabulary: the frozen values that cross module boundaries, and the Protocols (seams).

This module imports nothing from ``rag``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
import regex

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
Metadata: TypeAlias = Mapping[str, JsonValue]


# Chinese and Japanese by script, as the lexical leg reads them (rag/encoders/lexical.py): Han, kana and the
# kana marks, Bopomofo, CJK punctuation, and the full-width forms (Japanese sets their Latin letters and digits
# without spaces too); not Hangul (Korean spaces its words) nor whitespace (the ideographic space).
_CJK = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\p{InKatakana}\p{InCJK_Symbols_and_Punctuation}" \
       r"\p{InHalfwidth_and_Fullwidth_Forms}--\p{Hangul}--\s]"
_CJK_BREAK = regex.compile(rf"(?<={_CJK})[ \t]*\r?\n[ \t]*(?={_CJK})", regex.V1)  # one line break, not a blank line
_CJK_SPACE = regex.compile(rf"(?<={_CJK})\s+(?={_CJK})", regex.V1)


def one_line(text: str, *, loose: bool = False) -> str:
    """``text`` on one line, as a reader would join it: a line break between two Chinese or Japanese
    characters joins them (hard-wrapped CJK has no space there), every other whitespace run is one space.
    ``loose`` drops every whitespace run between two such characters, for comparing texts."""
    return " ".join((_CJK_SPACE if loose else _CJK_BREAK).sub("", text).split())


def check_text(text: str, what: str) -> str:
    """Return ``text``, or raise ValueError if it holds a lone surrogate (an undecodable byte that Python kept
    as ``\\udcXX``, e.g. from argv): such a string cannot be encoded, stored or hashed as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"the {what} holds {text[exc.start]!r} at character {exc.start}, an undecodable byte, "
                         "not text; decode the input as UTF-8 (or with errors='replace') first") from None
    return text


@dataclass(frozen=True, slots=True)
class Section:
    """A character range ``[start, end)`` of a document's text with its page and heading path."""

    start: int
    end: int
    page: int | None = None
    heading: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"Section needs 0 <= start <= end, got start={self.start} end={self.end}")
        if self.page is not None and self.page < 1:
            raise ValueError(f"Section page numbers start at 1, got {self.page}")


@dataclass(frozen=True, slots=True)
class Document:
    """A source document in its own language, as a connector loaded it (never translated).

    ``sections`` tile ``text`` exactly (contiguous, from 0 to ``len(text)``); an empty tuple means
    one section without page or heading.
    """

    uri: str
    text: str
    title: str = ""
    sections: tuple[Section, ...] = ()
    metadata: Metadata = field(default_factory=dict)
    content_type: str = "text/plain"
    language: str | None = None

    def __post_init__(self) -> None:
        if not self.uri:
            raise ValueError("Document.uri must be non-empty")
        expected = 0
        for section in self.sections:
            if section.start != expected:
                raise ValueError(
                    f"Document {self.uri}: sections must tile the text; section starts at "
                    f"{section.start}, expected {expected}"
                )
            expected = section.end
        if self.sections and expected != len(self.text):
            raise ValueError(
                f"Document {self.uri}: sections end at {expected} but the text has {len(self.text)} characters"
            )

    def tiling(self) -> tuple[Section, ...]:
        """Return the sections, or one section covering the whole text when none were given."""
        return self.sections or (Section(0, len(self.text)),)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document: ``text == document.text[start:end]`` exactly, so citations can quote it."""

    id: str
    document_uri: str
    ordinal: int
    text: str
    start: int
    end: int
    language: str
    page: int | None = None
    heading: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.end - self.start != len(self.text):
            raise ValueError(
                f"Chunk {self.id}: offsets [{self.start}, {self.end}) do not span its {len(self.text)} characters"
            )
        if not self.language:
            raise ValueError(f"Chunk {self.id}: language must be non-empty")


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Non-negative term weights ``{index: weight}`` in a space of ``dim`` dimensions."""

    weights: Mapping[int, float]
    dim: int

    def __post_init__(self) -> None:
        for index, weight in self.weights.items():
            if not 0 <= index < self.dim:
                raise ValueError(f"sparse index {index} outside [0, {self.dim})")
            if not math.isfinite(weight):
                raise ValueError(f"sparse weight for index {index} is not finite: {weight}")

    def top(self, n: int) -> tuple[SparseVector, float]:
        """Keep the ``n`` largest weights; return them and the share of total weight that was cut."""
        if len(self.weights) <= n:
            return self, 0.0
        ranked = sorted(self.weights.items(), key=lambda item: (-item[1], item[0]))
        total = sum(abs(w) for _, w in ranked)
        kept = dict(ranked[:n])
        cut = sum(abs(w) for _, w in ranked[n:])
        return SparseVector(kept, self.dim), (cut / total if total else 0.0)


@dataclass(frozen=True, slots=True, eq=False)
class Encoding:
    """An encoder's output for one text: a dense vector, lexical weights, ColBERT vectors on request, and
    latent terms (an encoder's ``encode_latent``, unit length) where ingest stores them."""

    dense: np.ndarray
    sparse: SparseVector | None = None
    colbert: np.ndarray | None = None
    latent: SparseVector | None = None

    def __post_init__(self) -> None:
        if self.dense.ndim != 1:
            raise ValueError(f"Encoding.dense must be 1-D, got shape {self.dense.shape}")
        if not np.all(np.isfinite(self.dense)):
            raise ValueError("Encoding.dense has non-finite values")


@dataclass(frozen=True, slots=True, eq=False)
class SentenceVector:
    """The dense vector of one sentence (``ordinal``) of a chunk, which is also scored by its best sentence."""

    chunk_id: str
    ordinal: int
    dense: np.ndarray


class Encoder(Protocol):
    """Turns texts into Encodings.

    >>> encoder.encode_passages(["Der Filter wird monatlich gewechselt."])[0].dense.shape
    (384,)
    """

    @property
    def name(self) -> str:
        """Identity recorded per collection, e.g. ``e5-small`` or ``bge-m3:BAAI/bge-m3``."""
        ...

    @property
    def dim(self) -> int:
        """Dense dimension."""
        ...

    @property
    def sparse_dim(self) -> int:
        """Dimension of the sparse (lexical) space."""
        ...

    @property
    def lexical_idf(self) -> bool:
        """True when sparse query weights must be multiplied by the corpus's IDF (BM25-style encoders)."""
        ...

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Encode documents' passages."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Encode search queries."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of model tokens ``text`` becomes (the chunker's budget unit)."""
        ...


@runtime_checkable
class LatentEncoder(Protocol):
    """An encoder that also gives latent terms: sparse features of what a text says that hold little of its
    language (e5-small's sparse autoencoder). Optional: search uses them where a collection stored them."""

    @property
    def latent_dim(self) -> int:
        """Dimensions of the latent terms; 0 when this instance has none."""
        ...

    def encode_latent(self, texts: Sequence[str]) -> list[SparseVector]:
        """Unit-length latent terms of each text (the same for questions and passages)."""
        ...


def latent_dim(encoder: object) -> int:
    """The latent-term dimensions of ``encoder``; 0 for an encoder without them."""
    return int(encoder.latent_dim) if isinstance(encoder, LatentEncoder) else 0


class Connector(Protocol):
    """Finds sources and loads each into Documents.

    >>> for uri in connector.sources():
    ...     documents = connector.load(uri)
    """

    def sources(self) -> Iterator[str]:
        """Yield the URIs this connector will load; raises ConnectorError if the root itself is unusable."""
        ...

    def load(self, uri: str) -> list[Document]:
        """Load one source; raises ConnectorError naming the source and the fix."""
        ...


class Storage(Enum):
    """How a collection's HNSW index holds the dense vectors (the table always keeps them in full): as they
    are, as 16-bit floats, or as sign bits whose Hamming candidates are rescored on the full vectors."""

    VECTOR = "vector"
    HALFVEC = "halfvec"
    BIT_RESCORE = "bit+rescore"


@dataclass(frozen=True, slots=True)
class Collection:
    """A named set of documents, bound to the encoder (and its dimensions) that built it and the storage
    its dense index was created with."""

    id: int
    name: str
    encoder: str
    dim: int
    sparse_dim: int
    storage: Storage = Storage.VECTOR


@dataclass(frozen=True, slots=True)
class CollectionStatus:
    """Counts for one collection; ``languages`` counts chunks and ``document_languages`` documents."""

    name: str
    encoder: str
    dim: int
    documents: int
    chunks: int
    languages: Mapping[str, int]
    document_languages: Mapping[str, int]
    storage: Storage = Storage.VECTOR


@dataclass(frozen=True, slots=True)
class LegScore:
    """Where one retrieval leg (``dense``, ``sparse``, ``sparse:de``, ``rerank``) ranked a hit: 1-based."""

    leg: str
    rank: int
    score: float

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LegScore.rank is 1-based, got {self.rank}")
        if not math.isfinite(self.score):
            raise ValueError(f"LegScore.score must be finite, got {self.score}")


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its document's title, its fused score, and each leg's rank and score."""

    chunk: Chunk
    title: str
    score: float
    legs: tuple[LegScore, ...] = ()
    collection: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.score):
            raise ValueError(f"Hit.score must be finite, got {self.score} for chunk {self.chunk.id}")

    @property
    def key(self) -> tuple[str, str]:
        """Identity across legs: collection and chunk id."""
        return (self.collection, self.chunk.id)

    def leg(self, name: str) -> LegScore | None:
        """This hit's entry for leg ``name``, if that leg found it."""
        return next((entry for entry in self.legs if entry.leg == name), None)


class Reranker(Protocol):
    """Reorders hits by relevance to the question.

    >>> reranker.rerank("Wie oft wird der Filter gewechselt?", hits, k=5)[0].score
    0.93
    """

    def rerank(self, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        """Return the best ``k`` hits, best first, each with a ``rerank`` LegScore added."""
        ...


class Translator(Protocol):
    """Translates a short query (an LLM behind it) for the translated legs of cross-lingual search; one
    question's target languages are translated from several threads at once."""

    def translate(self, text: str, language: str) -> str:
        """``text`` rendered in ``language`` (ISO 639-1)."""
        ...


class SearchMode(Enum):
    """Which legs a search runs: dense only, sparse only, or both fused by RRF."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions every hit must meet; the store turns them into SQL with bound parameters only.

    ``source`` is a glob over the document URI (``*.pdf``, ``https://example.com/*``); ``metadata`` is
    equality on document metadata, keys as dotted paths (``front_matter.product``); ``after`` and
    ``before`` bound the time a document was last stored.
    """

    languages: tuple[str, ...] = ()
    source: str | None = None
    metadata: Mapping[str, JsonScalar] = field(default_factory=dict)
    after: datetime | None = None
    before: datetime | None = None

    def __post_init__(self) -> None:
        if any(not language for language in self.languages):
            raise ValueError(f"Filter.languages must be non-empty codes, got {self.languages!r}")
        if any(not key or any(not part for part in key.split(".")) for key in self.metadata):
            raise ValueError(f"Filter.metadata keys must be non-empty dotted paths, got {list(self.metadata)!r}")
        if self.after and self.before and self.after > self.before:
            raise ValueError(f"Filter.after {self.after} is later than Filter.before {self.before}")

    def is_empty(self) -> bool:
        """True when the filter restricts nothing."""
        return not (self.languages or self.source or self.metadata or self.after or self.before)
