"""The boundary to psycopg and pgvector: their errors as StoreError, their vector types as ours, our rows as
COPY rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector as PgSparseVector
from pgvector import Vector
from psycopg import sql
from psycopg_pool import PoolTimeout

from rag.errors import SchemaMismatch, StoreError
from rag.types import Chunk, Collection, Encoding, SentenceVector, SparseVector


@contextmanager
def errors(action: str) -> Iterator[None]:
    """Translate psycopg errors into StoreError, naming what we were doing."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaMismatch(f"{action}: Rosetta's tables are missing; run `rosetta ingest` first ({exc})") from exc
    except PoolTimeout as exc:  # the pool's message names the server (rag.store.database.ServerPool)
        raise StoreError(f"{action} failed: {exc}; check that the database server is running and reachable, "
                         "then retry (the pool reconnects by itself), or raise db.timeout_s if it is only busy"
                         ) from exc
    except psycopg.errors.DiskFull as exc:
        full = str(exc).strip().split("\n", 1)[0]  # the next line is the server's HINT, which we replace
        raise StoreError(f"{action} failed: {full}; free disk space on the database server, then run it again "
                         "(what was stored before stays intact)") from exc
    except psycopg.OperationalError as exc:
        if exc.sqlstate is not None and not exc.sqlstate.startswith("57P"):  # 57P0x: the server shut down
            raise StoreError(f"{action} failed: {str(exc).strip()}") from exc
        lost = str(exc).strip().split("\n", 1)[0]  # libpq adds a tab-indented guess on further lines
        raise StoreError(f"{action} failed: {lost}; check that the database server is running, then retry "
                         "(the pool reconnects by itself)") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{action} failed: {str(exc).strip()}") from exc


def to_pg(sparse: SparseVector | None) -> PgSparseVector | None:
    if sparse is None:
        return None
    return PgSparseVector({int(i): float(w) for i, w in sparse.weights.items()}, sparse.dim)


def dense_from_pg(value: Any) -> np.ndarray:
    # pgvector's loaders return numpy arrays or Vector objects depending on the wire format.
    return np.asarray(value.to_numpy() if isinstance(value, Vector) else value, dtype=np.float32)


def from_pg(value: PgSparseVector | None) -> SparseVector | None:
    if value is None:
        return None
    return SparseVector(dict(zip(value.indices(), value.values())), value.dimensions())


def chunk_row(
    collection: Collection, document_id: int, chunk: Chunk, encoding: Encoding, max_terms: int
) -> tuple[Any, ...]:
    """A chunk and its encoding as a COPY row of ``chunks`` (sparse vector cut to ``max_terms``)."""
    if encoding.dense.shape != (collection.dim,):
        raise SchemaMismatch(
            f"chunk {chunk.id} has a {encoding.dense.shape[0]}-d vector; collection {collection.name!r} "
            f"stores {collection.dim}-d vectors"
        )
    sparse, cut = (encoding.sparse.top(max_terms) if encoding.sparse is not None else (None, 0.0))
    terms = sorted(sparse.weights) if sparse is not None else []
    return (collection.id, chunk.id, document_id, chunk.ordinal, chunk.text, chunk.language, chunk.page,
            list(chunk.heading), chunk.start, chunk.end, encoding.dense, to_pg(sparse), cut, terms,
            to_pg(encoding.latent))


def copy_sentences(conn: Any, statement: sql.Composed, collection: Collection, chunks: Sequence[Chunk],
                    sentences: Sequence[SentenceVector]) -> None:
    """COPY the sentence vectors of ``chunks`` (each tagged with its chunk's language) into ``sentences``."""
    languages = {chunk.id: chunk.language for chunk in chunks}
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["int4", "text", "int4", "text", "vector"])
        for sentence in sentences:
            if sentence.dense.shape != (collection.dim,) or sentence.chunk_id not in languages:
                raise ValueError(f"sentence {sentence.ordinal} of chunk {sentence.chunk_id} has no chunk in this "
                                 f"document or a {sentence.dense.shape[0]}-d vector (the collection stores "
                                 f"{collection.dim}-d)")
            copy.write_row((collection.id, sentence.chunk_id, sentence.ordinal, languages[sentence.chunk_id],
                            sentence.dense))
