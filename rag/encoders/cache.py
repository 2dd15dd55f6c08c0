"""An encoder wrapper that reuses encodings stored by (model, text hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from rag.types import Encoder, Encoding, LatentEncoder, SparseVector, latent_dim
from rag.words import TERMS_VERSION

_T = TypeVar("_T")


class EncodingCache(Protocol):
    """Where encodings are kept (the store implements it)."""

    def cached_encodings(self, model: str, hashes: Sequence[str]) -> dict[str, Encoding]:
        """Encodings already stored for these hashes."""
        ...

    def cache_encodings(self, model: str, encodings: Mapping[str, Encoding]) -> None:
        """Store encodings by hash."""
        ...

    def cached_latents(self, model: str, hashes: Sequence[str]) -> dict[str, SparseVector]:
        """Latent terms already stored for these hashes."""
        ...

    def cache_latents(self, model: str, latents: Mapping[str, SparseVector]) -> None:
        """Store latent terms by hash."""
        ...


def encodings_version(encoder: Encoder) -> str:
    """What an encoder's encodings depend on beyond its name: for one whose lexical weights are term
    frequencies (rag.words.terms), ``+`` and the term splitting's version, else nothing. The encoding cache
    and the ingest key both carry it, so a new splitting re-encodes stored chunks at the next ingest."""
    return f"+{TERMS_VERSION}" if encoder.lexical_idf else ""


def text_hash(kind: str, text: str) -> str:
    """Cache key of ``text`` encoded as ``kind`` (passage or query)."""
    return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()


class Wrapping:
    """What an encoder that wraps ``inner`` passes through unchanged: its name, dimensions, IDF use and token
    count. Mixed into a (slotted) dataclass with an ``inner`` field, which then adds the encode methods."""

    __slots__ = ()
    inner: Encoder

    @property
    def name(self) -> str:
        """The wrapped encoder's name."""
        return self.inner.name

    @property
    def dim(self) -> int:
        """The wrapped encoder's dense dimension."""
        return self.inner.dim

    @property
    def sparse_dim(self) -> int:
        """The wrapped encoder's sparse dimension."""
        return self.inner.sparse_dim

    @property
    def lexical_idf(self) -> bool:
        """Whether the wrapped encoder's sparse queries need IDF."""
        return self.inner.lexical_idf

    def count_tokens(self, text: str) -> int:
        """The wrapped encoder's token count."""
        return self.inner.count_tokens(text)

    @property
    def latent_dim(self) -> int:
        """The wrapped encoder's latent-term dimensions (0: it has none)."""
        return latent_dim(self.inner)

    def encode_latent(self, texts: Sequence[str]) -> list[SparseVector]:
        """The wrapped encoder's latent terms."""
        return cast(LatentEncoder, self.inner).encode_latent(texts)


@dataclass(frozen=True, slots=True)
class CachedEncoder(Wrapping):
    """Encodes only texts the cache has not seen; the rest come from the cache (dense and sparse only)."""

    inner: Encoder
    cache: EncodingCache

    @property
    def cache_name(self) -> str:
        """The name cache entries are kept under: an encoder whose outputs differ from others of the same
        name (BGE-M3 in int8) declares its own ``cache_name``."""
        return str(getattr(self.inner, "cache_name", self.inner.name))

    @property
    def encodings_name(self) -> str:
        """The name encodings (dense and sparse) are kept under: the cache name and the
        :func:`encodings_version` (latent terms do not depend on it)."""
        return self.cache_name + encodings_version(self.inner)

    def _encode(self, kind: str, texts: Sequence[str]) -> list[Encoding]:
        encode = self.inner.encode_queries if kind == "query" else self.inner.encode_passages
        return _read_through(kind, texts, self.encodings_name, self.cache.cached_encodings,
                             self.cache.cache_encodings, encode)

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Passage encodings, from the cache where possible."""
        return self._encode("passage", texts)

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Query encodings, from the cache where possible."""
        return self._encode("query", texts)

    def encode_latent(self, texts: Sequence[str]) -> list[SparseVector]:
        """Latent terms, from the cache where possible."""
        return _read_through("latent", texts, self.cache_name, self.cache.cached_latents, self.cache.cache_latents,
                             cast(LatentEncoder, self.inner).encode_latent)


def _read_through(kind: str, texts: Sequence[str], model: str,
                  get: Callable[[str, Sequence[str]], dict[str, _T]], put: Callable[[str, Mapping[str, _T]], None],
                  compute: Callable[[list[str]], Sequence[_T]]) -> list[_T]:
    """``texts``' values under ``kind`` from the cache (``get``), computing and storing (``put``) only the
    texts it lacks, each once."""
    keys = [text_hash(kind, text) for text in texts]
    found = get(model, sorted(set(keys)))
    missing = {key: text for key, text in zip(keys, texts) if key not in found}
    if missing:
        fresh = dict(zip(missing, compute(list(missing.values())), strict=True))
        put(model, fresh)
        found.update(fresh)
    return [found[key] for key in keys]
