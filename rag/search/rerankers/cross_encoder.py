"""Cross-encoder reranking through sentence-transformers (default BAAI/bge-reranker-v2-m3).

The question and each passage are read together by one model, which is slower than comparing vectors but
sees their interaction. Scores are what ``CrossEncoder.predict`` returns: sentence-transformers applies the
activation saved in the model's config, else ``nn.Sigmoid()`` for a one-label model (bge-reranker-v2-m3 is
one), so scores are relevances in (0, 1). torch and sentence-transformers are imported inside
:meth:`CrossEncoderReranker.load`, never at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rag.encoders.bge_m3 import require_packages
from rag.errors import EncoderError
from rag.search.rerankers.ranking import check_k, ranked
from rag.types import Hit

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"
_PACKAGES = ("torch", "sentence_transformers", "huggingface_hub")


@dataclass(frozen=True, slots=True)
class CrossEncoderReranker:
    """Scores (question, passage) pairs with a cross-encoder and keeps the best ``k``."""

    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL

    model: Any = field(repr=False)  # sentence_transformers.CrossEncoder
    source: str  # the hub id as given, or the model directory's absolute path
    batch_size: int = 16

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        batch_size: int = 16,
        max_length: int = 512,
    ) -> CrossEncoderReranker:
        """Load a cross-encoder from a local directory or a hub id (from the cache, else downloaded)."""
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"need batch_size >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        require_packages("cross-encoder reranker", _PACKAGES)
        source, local = _locate(model)
        return cls(_load_cross_encoder(source, local, device, max_length), source, batch_size)

    def rerank(self, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        """Return the best ``k`` hits by cross-encoder score, best first, with a ``rerank`` leg added."""
        check_k(k)
        if not hits:
            return []
        return ranked(zip(hits, self.score(question, [hit.chunk.text for hit in hits])), k)

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        """Return the model's relevance of each text to ``question`` (sigmoid-activated for one label)."""
        pairs = [(question, text) for text in texts]
        try:
            scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        except RuntimeError as exc:  # torch's errors, out-of-memory included
            raise EncoderError(
                f"cross-encoder {self.source} failed on {len(pairs)} pairs: {exc}; "
                "lower batch_size or max_length, or run it on another device"
            ) from exc
        return [float(score) for score in scores]




def _locate(model: str) -> tuple[str, bool]:
    """Return what to load (a directory's absolute path, or the hub id) and whether it is local."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if path.exists() or path.is_absolute() or model.startswith((".", "~")):
        raise EncoderError(
            f"cross-encoder model directory {path} does not exist or is not a directory; "
            f"pass a directory holding a cross-encoder checkpoint or a hub id like {DEFAULT_MODEL}"
        )
    return model, False


def _load_cross_encoder(source: str, local: bool, device: str | None, max_length: int) -> Any:
    from huggingface_hub.errors import EntryNotFoundError, HTTPError  # type: ignore[attr-defined]
    from sentence_transformers import CrossEncoder

    # The hub's errors are OSErrors (offline and not cached, unknown repo) or ValueErrors (a malformed
    # id); HTTPError is its HTTP client's base error and EntryNotFoundError a missing file, not an OSError.
    try:
        return CrossEncoder(source, device=device, max_length=max_length)
    except (OSError, ValueError, HTTPError, EntryNotFoundError) as exc:
        raise EncoderError(f"could not load cross-encoder {source}: {_first_line(exc)}; {_fix(local)}") from exc


def _fix(local: bool) -> str:
    if local:
        return "check that the directory holds a complete cross-encoder checkpoint (config.json, weights, tokenizer)"
    return "download it on a machine with internet or pass a local path"


def _first_line(exc: BaseException) -> str:
    # The hub's messages run to several lines; the first one says what went wrong.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
