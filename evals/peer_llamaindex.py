"""The peer system: LlamaIndex's PGVectorStore (hybrid_search=True) on Rosetta's own Postgres and encoder.

It indexes exactly the chunks Rosetta stored for a collection (same ids, texts and offsets) in its own
table, embeds them through Rosetta's cached encoder (so no text is encoded twice), and uses the
'simple' text search configuration, the multilingual one. Its hybrid mode returns the dense top k
followed by the text-search top k (deduplicated, not fused), and we score that list as returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.vector_stores.postgres import PGVectorStore
from psycopg import sql
from pydantic import PrivateAttr

from evals.datasets import Passage
from rag.rosetta import Rosetta
from rag.types import Encoder

TEXT_SEARCH_CONFIG = "simple"
TOP_K = 10
SPARSE_TOP_K = 10

_CHUNKS = """
    SELECT c.id, c.text, c.start_char, c.end_char, d.uri
    FROM {schema}.chunks c
    JOIN {schema}.documents d ON d.id = c.document_id
    JOIN {schema}.collections k ON k.id = c.collection_id
    WHERE k.name = %(name)s
    ORDER BY d.uri, c.ordinal
"""
_NODE_IDS = "SELECT node_id FROM {table}"
_TABLE_EXISTS = "SELECT to_regclass(%(table)s) IS NOT NULL"


class RosettaEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model that calls a Rosetta encoder (dense vectors only)."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Encoder) -> None:
        super().__init__(model_name=encoder.name, embed_batch_size=64)
        self._encoder = encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._encoder.encode_queries([query])[0].dense]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in e.dense] for e in self._encoder.encode_passages(texts)]


def sqlalchemy_url(url: str) -> str:
    """Our libpq URL (``postgresql://...?host=/socket/dir``) for SQLAlchemy's psycopg 3 dialect."""
    return re.sub(r"^postgres(?:ql)?://", "postgresql+psycopg://", url)


def table_name(collection: str) -> str:
    """The peer's table for a collection (LlamaIndex prefixes ``data_``)."""
    return re.sub(r"\W", "_", collection).lower()


@dataclass(frozen=True, slots=True)
class LlamaIndexPeer:
    """One collection's chunks in a PGVectorStore, searched with a query embedding and the query text."""

    store: PGVectorStore
    embedding: RosettaEmbedding

    @classmethod
    def build(cls, rosetta: Rosetta, collection: str) -> LlamaIndexPeer:
        """Index ``collection``'s chunks in schema ``<rosetta schema>_llamaindex`` unless already there."""
        encoder = rosetta.encoder(collection)
        url = sqlalchemy_url(rosetta.database.url)
        store = PGVectorStore(connection_string=url, async_connection_string=url,
                              schema_name=f"{rosetta.config.db.schema}_llamaindex",
                              table_name=table_name(collection), embed_dim=encoder.dim, hybrid_search=True,
                              text_search_config=TEXT_SEARCH_CONFIG, initialization_fail_on_error=True)
        peer = cls(store, RosettaEmbedding(encoder))
        peer._sync(rosetta, collection)
        return peer

    def _sync(self, rosetta: Rosetta, collection: str) -> None:
        with rosetta.database.pool.connection() as conn:
            rows = conn.execute(sql.SQL(_CHUNKS).format(schema=sql.Identifier(rosetta.config.db.schema)),
                                {"name": collection}).fetchall()
            table = sql.Identifier(self.store.schema_name, f"data_{self.store.table_name}")
            exists = conn.execute(_TABLE_EXISTS, {"table": table.as_string(conn)}).fetchone()
            stored = {r[0] for r in conn.execute(sql.SQL(_NODE_IDS).format(table=table))} if exists and exists[0] \
                else set()
        if stored == {str(row[0]) for row in rows}:
            return
        self.store.clear()
        self.store.add(self._nodes(rows))

    def _nodes(self, rows: Sequence[tuple[Any, ...]]) -> list[BaseNode]:
        vectors = self.embedding.get_text_embedding_batch([str(row[1]) for row in rows])
        return [TextNode(id_=str(chunk_id), text=text, embedding=vector,
                         metadata={"document_uri": uri, "start": int(start), "end": int(end)})
                for (chunk_id, text, start, end, uri), vector in zip(rows, vectors)]

    def search(self, text: str, mode: VectorStoreQueryMode) -> list[Passage]:
        """Passages for ``text`` in the order PGVectorStore returns them (``DEFAULT`` is its dense mode)."""
        query = VectorStoreQuery(query_embedding=self.embedding.get_query_embedding(text), query_str=text,
                                 similarity_top_k=TOP_K, sparse_top_k=SPARSE_TOP_K, mode=mode)
        nodes = self.store.query(query).nodes or []
        return [Passage(str(n.metadata["document_uri"]), int(n.metadata["start"]), int(n.metadata["end"]))
                for n in nodes]

    def close(self) -> None:
        """Dispose of the store's connection pool."""
        engine = self.store.client
        if engine is not None:
            engine.dispose()
