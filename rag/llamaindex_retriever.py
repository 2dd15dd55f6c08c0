"""Rosetta as a LlamaIndex retriever: ``from rag.llamaindex_retriever import RosettaRetriever``.

    >>> retriever = RosettaRetriever(rosetta, collection="manuals", k=5)
    >>> engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    >>> engine.query("How often must the air filter be replaced?").source_nodes[0].node.metadata["heading"][-1]
    'Luftfilter'

This module is the LlamaIndex integration, so it imports ``llama_index.core`` at the top; ``rag``
itself never imports it. Each Hit becomes a ``NodeWithScore`` through ``node_with_score``, the one
conversion both the sync and the async path use.
"""

from __future__ import annotations

try:
    from llama_index.core.callbacks.base import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
except ModuleNotFoundError as exc:  # the core install has no LlamaIndex: name the extra that brings it
    raise ModuleNotFoundError(f"rag.llamaindex_retriever needs the llamaindex extra ({exc.name} is not installed): "
                              "pip install 'rosetta-rag[llamaindex]'", name=exc.name) from exc

from rag.rosetta import Rosetta
from rag.types import Filter, Hit, JsonValue, SearchMode

# Where a chunk lies and how each leg ranked it: useful to a program, noise to an LLM or an embedder.
HIDDEN_METADATA = ("start", "end", "collection", "legs")


def hit_metadata(hit: Hit) -> dict[str, JsonValue]:
    """The JSON-serialisable metadata of a hit: source, page, heading path, language, offsets and legs."""
    chunk = hit.chunk
    legs: list[JsonValue] = [{"leg": leg.leg, "rank": leg.rank, "score": leg.score} for leg in hit.legs]
    return {
        "uri": chunk.document_uri, "title": hit.title, "page": chunk.page, "heading": list(chunk.heading),
        "language": chunk.language, "start": chunk.start, "end": chunk.end, "collection": hit.collection,
        "legs": legs,
    }


def node_with_score(hit: Hit) -> NodeWithScore:
    """A hit as LlamaIndex sees it: a TextNode keyed by the chunk id (source: the document URI), and the score."""
    chunk = hit.chunk
    node = TextNode(
        id_=chunk.id, text=chunk.text, metadata=hit_metadata(hit),
        start_char_idx=chunk.start, end_char_idx=chunk.end,
        excluded_llm_metadata_keys=list(HIDDEN_METADATA), excluded_embed_metadata_keys=list(HIDDEN_METADATA),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=chunk.document_uri)},
    )
    return NodeWithScore(node=node, score=hit.score)


class RosettaRetriever(BaseRetriever):
    """A LlamaIndex retriever over ``Rosetta.search``: hybrid cross-lingual retrieval in any query language.

    Every argument but ``rosetta`` is passed to each search as is; None means the configured value.
    """

    def __init__(
        self,
        rosetta: Rosetta,
        *,
        collection: str | None = None,
        k: int | None = None,
        where: Filter | None = None,
        mode: SearchMode | None = None,
        rerank: bool = True,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if k is not None and k < 1:
            raise ValueError(f"k must be >= 1 (or None for the configured retrieval.k), got {k}")
        super().__init__(callback_manager=callback_manager)
        self.rosetta = rosetta
        self.collection = collection
        self.k = k
        self.where = where
        self.mode = mode
        self.rerank = rerank

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Search the collection and convert each hit, best first."""
        hits = self.rosetta.search(query_bundle.query_str, collection=self.collection, k=self.k, where=self.where,
                                   mode=self.mode, rerank=self.rerank)
        return [node_with_score(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The sync search, run in place: Rosetta is sync (psycopg pool, CPU encoders), so this blocks the
        event loop for one search; wrap ``retrieve`` in ``asyncio.to_thread`` to run searches concurrently."""
        return self._retrieve(query_bundle)
