"""The load benchmark's synthetic corpus: documents in five languages whose words follow a Zipf law over the
demo manuals' vocabulary (``Vocabulary``), and the plan of a base of exactly N chunks (``plan_base``).

Pure: no database. ``evals/bench_load.py`` describes the benchmark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import regex

from rag.chunk import chunk_document
from rag.encoders.hashing import HashingEncoder
from rag.types import Document

DEMO = Path(__file__).resolve().parent.parent / "demo" / "manuals"
LANGUAGES = ("en", "de", "es", "ja", "zh")
BASE_PREFIX = "bench-load://base/"
# Words per language: the demo's few hundred real words, then pseudo-words; CJK characters likewise.
SPACED_WORDS, UNSPACED_CHARS = 8000, 3000
# Zipf-Mandelbrot ranks: p(r) ~ 1 / (r + 2.7), roughly natural text's frequency curve.
ZIPF_SHIFT = 2.7
# Terms per document: 1 to ~12 chunks of 256 tokens, about 6 on average.
MIN_TERMS, MAX_TERMS = 150, 3000

_SPACED = regex.compile(r"\p{L}[\p{L}\p{M}]+")
_TAG = regex.compile(r"<[^>]*>")
_UNSPACED = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}ー]")


@dataclass(frozen=True, slots=True, eq=False)
class Vocabulary:
    """One language's words (or CJK characters), most frequent first, with Zipf sampling."""

    language: str
    words: tuple[str, ...]
    spaced: bool
    cdf: np.ndarray

    @classmethod
    def from_demo(cls, language: str, corpus: Path = DEMO) -> Vocabulary:
        """Words ranked by frequency in ``corpus/language``, extended with pseudo-words of their pieces."""
        files = sorted((corpus / language).iterdir())
        text = _TAG.sub(" ", "\n".join(path.read_text(encoding="utf-8") for path in files))
        spaced = language not in ("ja", "zh")
        found = Counter((_SPACED if spaced else _UNSPACED).findall(text))
        real = [word for word, _ in found.most_common()]
        words = _pseudo_words(real, SPACED_WORDS) if spaced else _more_han(real, UNSPACED_CHARS)
        weights = 1.0 / (np.arange(len(words)) + ZIPF_SHIFT)
        return cls(language, tuple(words), spaced, np.cumsum(weights / weights.sum()))

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` words drawn by frequency."""
        return [self.words[i] for i in np.searchsorted(self.cdf, rng.random(n), side="right").clip(max=len(self.words) - 1)]

    def sentence(self, rng: np.random.Generator, n: int) -> str:
        """A sentence of ``n`` words (capitalized, so the chunker sees a sentence start) or characters."""
        words = self.draw(rng, n)
        if not self.spaced:
            return "".join(words) + "。"
        return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]]) + "."

    def text(self, rng: np.random.Generator, n_terms: int) -> str:
        """Paragraphs of 3-6 sentences with about ``n_terms`` terms in all."""
        joiner = " " if self.spaced else ""
        low, high = (5, 18) if self.spaced else (10, 40)
        paragraphs, used = [], 0
        while used < n_terms:
            lengths = rng.integers(low, high, size=int(rng.integers(3, 7)))
            paragraphs.append(joiner.join(self.sentence(rng, int(n)) for n in lengths))
            used += int(lengths.sum())
        return "\n\n".join(paragraphs)

    def query(self, rng: np.random.Generator) -> str:
        """A short question: 3-7 words, or 6-15 characters."""
        if self.spaced:
            return " ".join(self.draw(rng, int(rng.integers(3, 8)))).capitalize() + "?"
        return "".join(self.draw(rng, int(rng.integers(6, 16)))) + "？"


def _pseudo_words(real: Sequence[str], size: int, seed: int = 0) -> list[str]:
    """``real`` then lower-case blends (a prefix of one word, a suffix of another) up to ``size`` words."""
    rng = np.random.default_rng(seed)
    long = [w.lower() for w in real if len(w) >= 4]
    words, seen = list(real), set(real)
    while len(words) < size:
        a, b = (long[int(i)] for i in rng.integers(len(long), size=2))
        word = a[: int(rng.integers(2, len(a)))] + b[int(rng.integers(1, len(b) - 1)):]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _more_han(real: Sequence[str], size: int, seed: int = 0) -> list[str]:
    """``real`` then CJK Unified Ideographs (U+4E00-U+9FA5) it lacks, up to ``size`` characters."""
    rng = np.random.default_rng(seed)
    extra = [chr(c) for c in rng.permutation(np.arange(0x4E00, 0x9FA6)) if chr(c) not in set(real)]
    return [*real, *extra[: max(0, size - len(real))]]


def vocabularies(corpus: Path = DEMO) -> tuple[Vocabulary, ...]:
    """One Vocabulary per benchmark language."""
    return tuple(Vocabulary.from_demo(language, corpus) for language in LANGUAGES)


def synthetic_document(uri: str, index: int, vocab: Sequence[Vocabulary], seed: int = 0,
                       limit: int | None = None) -> Document:
    """Document ``index``: deterministic in (seed, index), in language ``index mod 5``; cut at ``limit``."""
    rng = np.random.default_rng([seed, index])
    language = vocab[index % len(vocab)]
    text = language.text(rng, int(rng.integers(MIN_TERMS, MAX_TERMS)))
    return Document(uri, text[:limit], title=f"{language.language} manual {index}",
                    metadata={"bench": "load", "index": index})


@dataclass(frozen=True, slots=True)
class SyntheticCorpus:
    """A Connector over generated documents ``prefix + index``; ``limits`` cuts some documents short."""

    prefix: str
    indices: Sequence[int]
    vocab: Sequence[Vocabulary]
    seed: int = 0
    limits: Mapping[int, int] = field(default_factory=dict)

    def sources(self) -> Iterator[str]:
        """One URI per document."""
        return (f"{self.prefix}{index:07d}" for index in self.indices)

    def load(self, uri: str) -> list[Document]:
        """The document behind ``uri``."""
        index = int(uri.removeprefix(self.prefix))
        return [synthetic_document(uri, index, self.vocab, self.seed, self.limits.get(index))]

    def chunk_count(self, encoder: HashingEncoder, max_tokens: int) -> int:
        """How many chunks ingest makes of these documents (chunked here independently of the store)."""
        return sum(len(chunk_document(document, encoder.count_tokens, max_tokens))
                   for uri in self.sources() for document in self.load(uri))


@dataclass(frozen=True, slots=True)
class BasePlan:
    """The base collection: documents 0..documents-1, the last one cut at ``last_limit`` characters."""

    documents: int
    chunks: int
    last_limit: int | None

    def corpus(self, vocab: Sequence[Vocabulary], seed: int) -> SyntheticCorpus:
        """The base documents as a Connector."""
        limits = {self.documents - 1: self.last_limit} if self.last_limit is not None else {}
        return SyntheticCorpus(BASE_PREFIX, range(self.documents), vocab, seed, limits)


def plan_base(chunks: int, vocab: Sequence[Vocabulary], encoder: HashingEncoder, max_tokens: int,
              seed: int = 0) -> BasePlan:
    """How many documents make exactly ``chunks`` chunks, and where the last one must be cut."""
    total, index = 0, 0
    while True:
        document = synthetic_document(f"{BASE_PREFIX}{index:07d}", index, vocab, seed)
        made = chunk_document(document, encoder.count_tokens, max_tokens)
        if total + len(made) >= chunks:
            need = chunks - total
            limit = made[need - 1].end if need < len(made) else None
            cut = replace(document, text=document.text[:limit])
            # Chunking is greedy from the start, so a prefix ending at a chunk's end re-chunks the same.
            assert len(chunk_document(cut, encoder.count_tokens, max_tokens)) == need
            return BasePlan(index + 1, chunks, limit)
        total += len(made)
        index += 1
