"""Rosetta: cross-lingual retrieval-augmented generation.

Documents stay in their own language; questions come in yours. The public surface is this module.
"""

from rag.agent import Rosetta, Status
from rag.config import Config, DbConfig, EncoderKind, IngestConfig, ModelConfig, load_config
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
from rag.types import (
    Chunk,
    Collection,
    CollectionStatus,
    Connector,
    Document,
    Encoder,
    Encoding,
    Section,
    SparseVector,
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
    "GenerationError",
    "IngestConfig",
    "IngestReport",
    "IngestStatus",
    "ModelConfig",
    "RagError",
    "Rosetta",
    "SchemaMismatch",
    "Section",
    "SparseVector",
    "Status",
    "StoreError",
    "load_config",
]
