"""Rosetta: cross-lingual retrieval-augmented generation.

Documents stay in their own language; questions come in yours. The public surface is this module.
"""

from rag.agent import Rosetta, Status
from rag.config import (
    Config,
    DbConfig,
    EncoderKind,
    IngestConfig,
    ModelConfig,
    RerankerKind,
    RetrievalConfig,
    load_config,
)
from rag.database import DatabaseInfo
from rag.errors import (
    ConfigError,
    ConnectorError,
    EncoderError,
    GenerationError,
    RagError,
    SchemaMismatch,
    StoreError,
)
from rag.ingest import FileReport, IngestReport, IngestStatus
from rag.retrieve import rrf
from rag.types import (
    Chunk,
    Collection,
    CollectionStatus,
    Connector,
    Document,
    Encoder,
    Encoding,
    Filter,
    Hit,
    LegScore,
    Reranker,
    SearchMode,
    Section,
    SparseVector,
    Translator,
)

__all__ = [
    "Chunk",
    "Collection",
    "CollectionStatus",
    "Config",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "DatabaseInfo",
    "DbConfig",
    "Document",
    "Encoder",
    "EncoderError",
    "EncoderKind",
    "Encoding",
    "FileReport",
    "Filter",
    "GenerationError",
    "Hit",
    "IngestConfig",
    "IngestReport",
    "IngestStatus",
    "LegScore",
    "ModelConfig",
    "RagError",
    "Reranker",
    "RerankerKind",
    "RetrievalConfig",
    "Rosetta",
    "SchemaMismatch",
    "SearchMode",
    "Section",
    "SparseVector",
    "Status",
    "StoreError",
    "Translator",
    "load_config",
    "rrf",
]
