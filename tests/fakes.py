"""Deterministic stand-ins for models (not mocks): they satisfy the Protocols and are type-checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from rag.answer.dialogue import GenerationRequest, Reply
from rag.encoders.cache import Wrapping
from rag.encoders.hashing import HashingEncoder
from rag.errors import EncoderError
from rag.types import Encoder, Encoding, SparseVector


@dataclass(slots=True)
class HashEncoder(HashingEncoder):
    """The hashing encoder, small by default, named ``hash-fake``, and recording what it is asked.

    ``calls`` holds every batch it was asked to encode, so tests can see what the cache spared.
    """

    dim: int = 32
    calls: list[list[str]] = field(default_factory=list)
    label: str = "hash-fake"

    @property
    def name(self) -> str:
        """Recorded by the collection: ``label``."""
        return self.label

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Folded dense vectors and BM25-style weights."""
        self.calls.append(list(texts))
        return HashingEncoder.encode_passages(self, texts)

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Folded dense vectors and query terms."""
        self.calls.append(list(texts))
        return HashingEncoder.encode_queries(self, texts)


Script = Callable[[GenerationRequest], Reply]


@dataclass(slots=True)
class ScriptedGenerator:
    """Replies from a script, in order: each entry is a Reply or a function of the request.

    ``requests`` records every request, so tests can check the prompt, tools and passages it was given.
    Streaming yields the reply's text in three pieces, then the Reply.
    """

    script: list[Reply | Script]
    supports_tools: bool = True
    native_documents: bool = False
    is_llm: bool = True
    name: str = "scripted"
    requests: list[GenerationRequest] = field(default_factory=list)

    def generate(self, request: GenerationRequest) -> Reply:
        """The next scripted reply."""
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"the script ran out after {len(self.requests) - 1} replies")
        entry = self.script.pop(0)
        return entry if isinstance(entry, Reply) else entry(request)

    def stream(self, request: GenerationRequest) -> Iterator[str | Reply]:
        """The next reply's text in pieces, then the reply."""
        reply = self.generate(request)
        third = max(1, len(reply.text) // 3)
        for start in range(0, len(reply.text), third):
            yield reply.text[start:start + third]
        yield reply


def cite_first(request: GenerationRequest) -> Reply:
    """An echo model: quotes the first sentence of each passage it was given, cited (STYLE's EchoGenerator)."""
    lines = [f"{p.hit.chunk.text.split('.')[0].strip()}. [{p.number}]" for p in request.passages[:2]]
    return Reply(" ".join(lines) or "The passages do not say.")


@dataclass(slots=True)
class PoisonEncoder(HashEncoder):
    """The hash encoder, failing (EncoderError) on any batch holding ``marker``: a document a worker cannot encode."""

    marker: str = "POISON"

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """As HashEncoder; EncoderError naming the marker when a text holds it."""
        if any(self.marker in text for text in texts):
            raise EncoderError(f"the encoder refused a text holding {self.marker!r}")
        return HashEncoder.encode_passages(self, texts)


# The fake's latent terms: each word of this lexicon stands for a concept, whatever its language.
CONCEPTS = {"battery": 0, "akku": 0, "batería": 0, "filter": 1, "luftfilter": 1, "filtro": 1, "warranty": 2,
            "garantie": 2, "garantía": 2}


@dataclass(slots=True)
class LatentHashEncoder(HashEncoder):
    """The hash fake with latent terms: the concepts of CONCEPTS a text names, counted, at unit length.

    ``latent_calls`` holds every batch of latent terms it was asked for.
    """

    latent_calls: list[list[str]] = field(default_factory=list)

    @property
    def latent_dim(self) -> int:
        """One dimension per concept."""
        return 1 + max(CONCEPTS.values())

    def encode_latent(self, texts: Sequence[str]) -> list[SparseVector]:
        """Concept counts of each text, unit length (empty for a text naming none)."""
        self.latent_calls.append(list(texts))
        found = []
        for text in texts:
            counts: dict[int, float] = {}
            for word in text.lower().split():
                concept = CONCEPTS.get(word.strip(".,;:!?¿¡"))
                if concept is not None:
                    counts[concept] = counts.get(concept, 0.0) + 1.0
            norm = sum(v * v for v in counts.values()) ** 0.5
            found.append(SparseVector({i: v / norm for i, v in counts.items()}, self.latent_dim))
        return found


@dataclass(frozen=True, slots=True)
class DenseOnlyEncoder(Wrapping):
    """An encoder without lexical legs (as a plugin may be): ``inner``'s dense vectors and latent terms, with its
    lexical weights dropped."""

    inner: Encoder

    @property
    def lexical_idf(self) -> bool:
        """No lexical weights, so nothing to weigh."""
        return False

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """The inner encodings without their sparse vectors."""
        return [replace(e, sparse=None) for e in self.inner.encode_passages(texts)]

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """The inner encodings without their sparse vectors."""
        return [replace(e, sparse=None) for e in self.inner.encode_queries(texts)]
