"""Rosetta's exceptions: one tree, mapped from third-party errors at the boundary that owns them.

    RagError
     ├── ConfigError        bad configuration value or file
     ├── StoreError         the database failed or refused
     │    └── SchemaMismatch  wrong encoder/dimension for a collection, pgvector too old
     ├── EncoderError       a model could not be loaded or run
     ├── ConnectorError     a source could not be read (the message names the source and the fix)
     └── GenerationError    an LLM call failed
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error Rosetta raises on purpose."""


class ConfigError(RagError):
    """A configuration value or file is invalid."""


class StoreError(RagError):
    """The database failed or refused an operation."""


class SchemaMismatch(StoreError):
    """The database or a collection does not match what the caller expects."""


class EncoderError(RagError):
    """An encoder could not be loaded or failed to encode."""


class ConnectorError(RagError):
    """A source could not be read; the message names the source and what to do."""


class GenerationError(RagError):
    """A generator (LLM) call failed."""
