"""The facade: builds the parts from Config and runs ingest, search, ask (answers) and status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Gen
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self, cast, overload

from rag.answer.conversation import AnswerParts, Session, answer_steps, require_question
from rag.answer.dialogue import Generator
from rag.answer.loop import drain, streamed
from rag.answer.types import Answer
from rag.build import GeneratorTranslator, build_generator, build_reranker, generator_kind
from rag.builtins import bge_m3_options
from rag.chunk import chunk_document, split_prose
from rag.config import Config, EncoderKind, GeneratorKind, check_collection_name, load_config
from rag.encoders import encoder_for_name, load_auto
from rag.encoders.cache import CachedEncoder
from rag.errors import ConfigError, StoreError
from rag.ingest import (
    IngestProgress,
    IngestReport,
    Pipeline,
    SourceRunner,
    Target,
    ingest_target,
    plugin_target,
    run_ingest,
)
from rag.lang import LanguageDetector, language_name, normalize_language
from rag.plugins import PluginContext, PluginKind, build_part
from rag.plugins import names as plugin_names
from rag.search.retriever import Retriever
from rag.store import PgStore, keeper
from rag.store.database import Database, DatabaseInfo
from rag.store.pg import built_by
from rag.types import (
    Chunk,
    Collection,
    CollectionStatus,
    Connector,
    Document,
    Encoder,
    Filter,
    Hit,
    Reranker,
    SearchMode,
    Storage,
    Translator,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Status:
    """Every collection's counts and the database they live in."""

    collections: tuple[CollectionStatus, ...]
    database: DatabaseInfo


class IngestExecutor(Protocol):
    """Runs an ingest's sources elsewhere, e.g. on Ray (rag.ray_ingest.RayExecutor)."""

    def runner(self, config: Config, collection: Collection, encoder: Encoder | None) -> SourceRunner:
        """The runner for one ingest into ``collection``: its workers open ``config`` (whose db.url is this
        database) with ``encoder`` (the one given to ``Rosetta.open``, or None for the configured one)."""
        ...


class Rosetta:
    """Cross-lingual RAG over a Postgres + pgvector store.

    >>> with Rosetta.open() as rosetta:
    ...     report = rosetta.ingest(["manuals/"], collection="manuals")
    ...     print(rosetta.status().collections)
    """

    def __init__(self, config: Config, database: Database, store: PgStore, notice: Callable[[str], None],
                 encoder: Encoder | None = None, reranker: Reranker | None = None,
                 translator: Translator | None = None, generator: Generator | None = None) -> None:
        self.config = config
        self.database = database
        self.store = store
        self._notice = notice
        self._custom_encoder = encoder
        self._custom_reranker = reranker
        self._translator = translator
        self._custom_generator = generator
        self._generators: dict[tuple[str, GeneratorKind | str | None], Generator] = {}
        self._retrievers: dict[str, Retriever] = {}
        self._encoders: dict[str, Encoder] = {}
        self._detector: LanguageDetector | None = None

    @classmethod
    def open(cls, config: Config | None = None, notice: Callable[[str], None] | None = None,
             encoder: Encoder | None = None, reranker: Reranker | None = None,
             translator: Translator | None = None, generator: Generator | None = None) -> Rosetta:
        """Connect (starting the embedded Postgres when no URL is configured) and migrate the schema.

        ``encoder``, ``reranker`` and ``generator`` replace the configured ones with any object satisfying
        their Protocol; ``translator`` turns on the translated legs of cross-lingual search (without it,
        ``retrieval.translate_with_llm`` uses the configured language model).
        """
        config = _with_fallback_language(config or load_config())
        db = config.db
        database = Database.open(db.url, db.data_dir, db.pool_min, db.pool_max, db.timeout_s)
        if database.embedded and db.keep_alive_s:
            keeper.spawn(db.data_dir, db.keep_alive_s)  # the server outlives this process (rag/store/keeper.py)
        store = PgStore(database.pool, db.schema)
        try:
            store.migrate()
        except BaseException:
            database.close()
            raise
        return cls(config, database, store, notice or (lambda message: None), encoder, reranker, translator,
                   generator)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self.database.close()

    def encoder(self, collection: str | None = None) -> Encoder:
        """The (cached) encoder for ``collection``: the configured one, or for ``auto`` the one it was built with."""
        name = check_collection_name(collection or self.config.collection)
        if name not in self._encoders:
            started = time.perf_counter()
            self._encoders[name] = CachedEncoder(self._load_encoder(name), self.store)
            log.info("encoder %s for collection %s loaded in %.2f s", self._encoders[name].name, name,
                     time.perf_counter() - started)
        return self._encoders[name]

    def _load_encoder(self, collection: str) -> Encoder:
        if self._custom_encoder is not None:
            return self._custom_encoder
        models, context = self.config.models, PluginContext(self.config, self._notice)
        if models.encoder is not EncoderKind.AUTO:
            name = models.encoder.value if isinstance(models.encoder, EncoderKind) else models.encoder
            return cast(Encoder, build_part(PluginKind.ENCODER, name, context))
        options = bge_m3_options(context)
        existing = self.store.collection(collection)
        if existing is not None:
            self._notice(f"encoder: {existing.encoder} (recorded by collection {collection!r})")
            if existing.encoder in plugin_names(PluginKind.ENCODER):  # a plugin's, named as the plugin is
                return cast(Encoder, build_part(PluginKind.ENCODER, existing.encoder, context))
            return encoder_for_name(existing.encoder, models.device, models.batch_size, options)
        return load_auto(models.bge_m3_model, models.device, models.batch_size, self._notice, options)

    def detector(self) -> LanguageDetector:
        """The language detector (loaded once)."""
        if self._detector is None:
            languages = self.config.ingest.languages
            self._detector = LanguageDetector.load(languages) if languages else LanguageDetector.load()
        return self._detector

    def ingest(
        self,
        paths: Sequence[str | Path | Connector],
        *,
        collection: str | None = None,
        glob: str | None = None,
        prune: bool = False,
        progress: IngestProgress | None = None,
        connector: str | None = None,
        storage: Storage | None = None,
        executor: IngestExecutor | None = None,
    ) -> IngestReport:
        """Ingest files, directories, URLs and Connector objects (e.g. a LlamaIndex reader wrapped by
        ``connectors.llamaindex_connector``) into ``collection``; bad sources are reported, not raised.

        ``connector`` names a connector plugin that reads the given paths instead of the built-in routing
        (files, or web for http(s) URLs). ``prune`` only touches documents under the given paths and URLs,
        never a Connector object's or a plugin's.
        ``storage`` (None: ``ingest.storage``) is how a new collection's dense index holds the vectors; an
        existing collection created with another one is refused (SchemaMismatch).
        ``executor`` runs the loading, chunking, encoding and writing elsewhere (``RayExecutor("auto")``).
        """
        name = check_collection_name(collection or self.config.collection)
        encoder = self.encoder(name)
        stored = self.store.ensure_collection(name, encoder.name, encoder.dim, encoder.sparse_dim,
                                              storage or self.config.ingest.storage)
        targets = self._targets(paths, glob, connector)
        runner = None
        if executor is not None:
            config = replace(self.config, db=replace(self.config.db, url=self.database.url))
            runner = executor.runner(config, stored, self._custom_encoder)
        return run_ingest(self.pipeline(stored, progress), targets, prune=prune, runner=runner)

    def _targets(self, paths: Sequence[str | Path | Connector], glob: str | None, connector: str | None
                 ) -> list[Target]:
        if connector is None:
            return [ingest_target(path, glob, self.config.ingest.max_bytes) for path in paths]
        factory = cast(Callable[[str], Connector],
                       build_part(PluginKind.CONNECTOR, connector, PluginContext(self.config, self._notice)))
        return [plugin_target(path, factory) if isinstance(path, (str, Path)) else ingest_target(path, glob, 0)
                for path in paths]

    def pipeline(self, stored: Collection, progress: IngestProgress | None = None) -> Pipeline:
        """The ingest pipeline into ``stored`` (which must exist), wired from the config: the collection's
        encoder, the language detector, the chunker. ``ingest()`` uses it; a bulk load may too."""
        encoder = self.encoder(stored.name)
        settings, r = self.config.ingest, self.config.retrieval
        detect = self.detector().detect

        def chunk(document: Document) -> list[Chunk]:
            # A chunk's language is detected with its document's as the prior (short fragments take it).
            return chunk_document(document, encoder.count_tokens, settings.max_tokens,
                                  partial(detect, prior=document.language))

        return Pipeline(self.store, stored, encoder, chunk, detect, settings.sparse_max_terms,
                        settings.max_tokens, progress, split_prose if settings.sentence_vectors else None,
                        settings.heading_context, r.exact_scan_below if r.language_neutral else None,
                        settings.latent_terms)

    def retriever(self, collection: str | None = None) -> Retriever:
        """The (cached) retriever for an existing collection, with its encoder, reranker and translator;
        SchemaMismatch when the collection was built by another encoder, whatever the dimensions."""
        name = check_collection_name(collection or self.config.collection)
        if name not in self._retrievers:
            stored = self.store.open_collection(name)
            encoder = self.encoder(name)
            built_by(stored, encoder.name, encoder.dim, encoder.sparse_dim)
            self._retrievers[name] = Retriever(self.store, encoder, stored, self.detector().detect,
                                               self.config.retrieval, self._reranker(), self._search_translator(name))
        return self._retrievers[name]

    def _search_translator(self, collection: str) -> Translator | None:
        """The translator given to open(), else the configured LLM with ``retrieval.translate_with_llm``."""
        if self._translator is not None or not self.config.retrieval.translate_with_llm:
            return self._translator
        translator = self.translator(collection)
        if translator is None:
            raise ConfigError("retrieval.translate_with_llm translates questions with a language model, but the "
                              f"generator is {self.generator(collection).name}; configure one (generation.generator "
                              "= openai or cohere, with its API key) or set retrieval.translate_with_llm = false")
        return translator

    def _reranker(self) -> Reranker | None:
        if self._custom_reranker is not None:
            return self._custom_reranker
        return build_reranker(PluginContext(self.config, self._notice))

    def search(
        self,
        query: str,
        *,
        collection: str | None = None,
        k: int | None = None,
        where: Filter | None = None,
        mode: SearchMode | None = None,
        rerank: bool = True,
        translate: bool = True,
    ) -> list[Hit]:
        """The best hits for ``query`` in any language: dense + sparse legs fused by RRF, then reranked.

        Raises ValueError for an empty query or ``k`` below 1."""
        if not query.strip():
            raise ValueError("the query is empty; type what to search for, in any language")
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        retrieval = self.config.retrieval
        return self.retriever(collection).search(query, retrieval.k if k is None else k, where,
                                                 mode or retrieval.mode, rerank, translate)

    def generator(self, collection: str | None = None, kind: GeneratorKind | None = None) -> Generator:
        """The (cached) generator: the one given to open(), else ``kind`` or the configured one (``auto``
        announces its choice); the extractive generator scores sentences with the collection's encoder."""
        if self._custom_generator is not None and kind is None:
            return self._custom_generator
        name = check_collection_name(collection or self.config.collection)
        key = (name, kind)
        if key not in self._generators:
            g = self.config.generation
            chosen = kind if kind is not None and kind is not GeneratorKind.AUTO else generator_kind(g, self._notice)
            self._generators[key] = build_generator(chosen, PluginContext(self.config, self._notice,
                                                                          self.encoder(name)))
        return self._generators[key]

    def translator(self, collection: str | None = None) -> Translator | None:
        """A translator backed by the generator when it is a language model, else None."""
        generator = self.generator(collection)
        return GeneratorTranslator(generator, self.config.generation.max_tokens) if generator.is_llm else None

    @overload
    def ask(self, question: str, *, collection: str | None = None, language: str | None = None,
            k: int | None = None, where: Filter | None = None, stream: Literal[False] = False,
            history: Sequence[Answer] = (), generator: GeneratorKind | None = None) -> Answer: ...

    @overload
    def ask(self, question: str, *, collection: str | None = None, language: str | None = None,
            k: int | None = None, where: Filter | None = None, stream: Literal[True],
            history: Sequence[Answer] = (), generator: GeneratorKind | None = None) -> Iterator[str | Answer]: ...

    def ask(self, question: str, *, collection: str | None = None, language: str | None = None,
            k: int | None = None, where: Filter | None = None, stream: bool = False,
            history: Sequence[Answer] = (), generator: GeneratorKind | None = None
            ) -> Answer | Iterator[str | Answer]:
        """Answer ``question`` in ``language`` (default: the question's) with checked citations.

        ``history`` holds earlier answers of a conversation (a follow-up is rewritten into a standalone
        question); ``stream=True`` yields text deltas, then the Answer.

        >>> answer = rosetta.ask("How often must the air filter be replaced?", collection="demo")
        >>> answer.text, answer.citations[0].uri, answer.citations[0].quote
        """
        steps = self.answer_steps(question, collection=collection, language=language, k=k, where=where,
                                  history=history, stream=stream, generator=generator)
        return streamed(steps) if stream else drain(steps)

    def answer_steps(self, question: str, *, collection: str | None = None, language: str | None = None,
                     k: int | None = None, where: Filter | None = None, history: Sequence[Answer] = (),
                     stream: bool = False, generator: GeneratorKind | None = None) -> Gen[str, None, Answer]:
        """The answer loop for one question, wired to the collection's parts: yields text deltas (when
        ``stream``) and returns the Answer. ``ask()`` and every Session turn run it."""
        require_question(question)  # before the generator is chosen (and announced)
        name = check_collection_name(collection or self.config.collection)
        retriever = self.retriever(name)  # fails early, naming the fix, when the collection does not exist
        chosen = self.generator(name, generator)
        per_search = k or self.config.generation.k

        def search(query: str, filter_: Filter | None, other: str | None) -> list[Hit]:
            return self.search(query, collection=other or name, k=per_search, where=filter_)

        parts = AnswerParts(chosen, search, self.encoder(name), self.detector().detect, self.config.generation,
                            per_search, retriever.centering())
        return answer_steps(parts, question, language, where, history, stream)

    def session(self, *, collection: str | None = None, language: str | None = None,
                where: Filter | None = None, k: int | None = None) -> Session[Rosetta]:
        """A conversation: follow-ups are rewritten with the history before retrieval."""
        return Session(self, collection, language, where, k)

    def context(self, hit: Hit, radius: int = 1) -> list[Chunk]:
        """A hit's chunk with ``radius`` neighbours either side in its document, in reading order."""
        stored = self.store.collection(hit.collection or self.config.collection)
        if stored is None:
            raise StoreError(f"collection {hit.collection!r} no longer exists")
        return self.store.neighbours(stored, hit.chunk, radius)

    def status(self) -> Status:
        """Counts per collection and language, and the database's versions and size."""
        collections = tuple(self.store.status(c) for c in self.store.collections())
        return Status(collections, self.database.info())


def _with_fallback_language(config: Config) -> Config:
    """``config`` with generation.fallback_language normalized ("DE" -> "de"); ConfigError for an unknown one."""
    try:
        code = normalize_language(config.generation.fallback_language)
        language_name(code)  # a code lingua does not know ("xx") is an error here, not at the first answer
    except ValueError as exc:
        raise ConfigError(f"generation.fallback_language: {exc}") from None
    return replace(config, generation=replace(config.generation, fallback_language=code))
