"""RosettaRetriever: the same hits as Rosetta.search, as LlamaIndex nodes, through a real query engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from rag.config import Config
from rag.llamaindex_retriever import RosettaRetriever
from rag.rosetta import Rosetta
from rag.types import Filter, SearchMode
from tests.fakes import HashEncoder

QUESTION = "Fehlercode E22 Isolationsfehler"


@pytest.fixture
def rosetta(config: Config, demo_copy: Path) -> Iterator[Rosetta]:
    with Rosetta.open(config, encoder=HashEncoder()) as opened:
        opened.ingest([demo_copy])
        yield opened


def _ids_and_scores(nodes: list[NodeWithScore]) -> list[tuple[str, float | None]]:
    return [(n.node.node_id, n.score) for n in nodes]


@pytest.mark.parametrize("mode", [None, SearchMode.DENSE, SearchMode.SPARSE])
def test_nodes_are_the_hits_of_search_in_order_with_their_scores(rosetta: Rosetta, mode: SearchMode | None) -> None:
    hits = rosetta.search(QUESTION, k=4, mode=mode)
    nodes = RosettaRetriever(rosetta, k=4, mode=mode).retrieve(QUESTION)
    assert _ids_and_scores(nodes) == [(h.chunk.id, h.score) for h in hits]
    assert [n.node.get_content() for n in nodes] == [h.chunk.text for h in hits]


def test_metadata_says_where_each_node_came_from(rosetta: Rosetta) -> None:
    (hit,) = rosetta.search(QUESTION, k=1)
    (node,) = RosettaRetriever(rosetta, k=1).retrieve(QUESTION)
    assert isinstance(node.node, TextNode)
    assert node.node.metadata == {
        "uri": hit.chunk.document_uri, "title": "Heliox HX-20 Heimspeicher – Wartungshandbuch", "page": None,
        "heading": ["Heliox HX-20 Wartungshandbuch", "Fehlercodes"], "language": "de",
        "start": hit.chunk.start, "end": hit.chunk.end, "collection": "test",
        "legs": [{"leg": leg.leg, "rank": leg.rank, "score": leg.score} for leg in hit.legs],
    }
    assert json.loads(json.dumps(node.node.metadata)) == node.node.metadata
    assert node.node.ref_doc_id == hit.chunk.document_uri
    assert (node.node.start_char_idx, node.node.end_char_idx) == (hit.chunk.start, hit.chunk.end)
    shown = node.node.get_metadata_str(MetadataMode.LLM)
    assert "Fehlercodes" in shown and "legs" not in shown and "start" not in shown


def test_filters_and_collection_reach_the_search(rosetta: Rosetta) -> None:
    nodes = RosettaRetriever(rosetta, collection="test", k=10, where=Filter(languages=("ja",))).retrieve(QUESTION)
    assert nodes and {n.node.metadata["language"] for n in nodes} == {"ja"}


def test_async_retrieve_delegates_to_the_sync_search(rosetta: Rosetta) -> None:
    retriever = RosettaRetriever(rosetta, k=3)
    assert _ids_and_scores(asyncio.run(retriever.aretrieve(QUESTION))) == _ids_and_scores(retriever.retrieve(QUESTION))


def test_a_llamaindex_query_engine_answers_from_our_hits(rosetta: Rosetta) -> None:
    engine = RetrieverQueryEngine.from_args(RosettaRetriever(rosetta, k=3), llm=MockLLM())
    response = engine.query(QUESTION)
    assert isinstance(response, Response) and response.response
    expected = [(h.chunk.id, h.score) for h in rosetta.search(QUESTION, k=3)]
    assert _ids_and_scores(response.source_nodes) == expected


def test_a_bad_k_says_what_is_expected(rosetta: Rosetta) -> None:
    with pytest.raises(ValueError, match=r"^k must be >= 1 \(or None for the configured retrieval.k\), got 0$"):
        RosettaRetriever(rosetta, k=0)
