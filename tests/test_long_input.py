"""Long input: a 100,000-character question, a question whose sparse vector has more than 1,000 non-zeros
(pgvector's limit for an HNSW-indexed sparsevec), a 10,000-chunk document. Correct results or a clear
error, never a crash; on the real Postgres, with the offline encoder where the length matters to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.config import Config
from rag.encoders.e5 import MAX_TOKENS, E5SmallEncoder
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from rag.types import SearchMode
from tests.fakes import HashEncoder

WORDS = [f"wort{i}" for i in range(5000)]
QUESTION = "Wie oft muss der Luftfilter gewechselt werden? "


@pytest.fixture
def manuals(config: Config, demo_copy: Path) -> Iterator[Rosetta]:
    with Rosetta.open(config) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        yield rosetta


def test_a_question_of_100000_characters_is_answered_from_its_start(manuals: Rosetta, demo_copy: Path) -> None:
    # A question with a whole manual pasted after it, again and again.
    pasted = (demo_copy / "de" / "wartungshandbuch.md").read_text()
    question = (QUESTION + pasted * (100_000 // len(pasted) + 1))[:100_000]
    hits = manuals.search(question, rerank=False, k=20)
    assert any("Luftfilter" in h.chunk.text and h.chunk.language == "de" for h in hits[:5])
    answer = manuals.ask(question)
    assert answer.language == "de" and answer.citations


def test_e5_reads_a_question_up_to_its_512_positions() -> None:
    encoder = E5SmallEncoder.load()
    question = QUESTION + " ".join(WORDS)
    window = encoder._window(question)
    assert encoder.model.token_count(window, True) <= MAX_TOKENS < encoder.model.token_count(window + "wort7 ", True)
    assert question.startswith(window) and len(window) < len(question)
    (long,), (cut,) = encoder.encode_queries([question]), encoder.encode_queries([window])
    assert np.array_equal(long.dense, cut.dense)
    assert long.sparse is not None and cut.sparse is not None and len(long.sparse.weights) > len(cut.sparse.weights)
    assert encoder._window(QUESTION) == QUESTION


def test_a_question_with_more_than_1000_sparse_terms(manuals: Rosetta) -> None:
    question = "Luftfilter " + " ".join(WORDS[:3000])
    sparse = manuals.encoder().encode_queries([question])[0].sparse
    assert sparse is not None and len(sparse.weights) > 1000
    (top, *_) = manuals.search(question, mode=SearchMode.SPARSE, rerank=False)
    assert "Luftfilter" in top.chunk.text
    assert any("Luftfilter" in h.chunk.text for h in manuals.search(question, rerank=False))


def test_a_document_of_10000_chunks(config: Config, tmp_path: Path) -> None:
    # Paragraphs of 12 tokens under a 16-token budget: each its own chunk.
    paragraphs = [f"Absatz {i}: der Luftfilter {WORDS[i % len(WORDS)]} wird jeden Monat sorgfältig geprüft."
                  for i in range(10_000)]
    (tmp_path / "gross.md").write_text("\n\n".join(paragraphs))
    small = replace(config, ingest=replace(config.ingest, max_tokens=16))
    with Rosetta.open(small, encoder=HashEncoder()) as rosetta:
        (stored,) = rosetta.ingest([tmp_path / "gross.md"]).files
        assert (stored.status, stored.chunks) == (IngestStatus.ADDED, 10_000)
        (collection,) = rosetta.status().collections
        assert (collection.chunks, collection.languages) == (10_000, {"de": 10_000})
        (top, *_) = rosetta.search("Absatz 7777 wort2777", rerank=False, mode=SearchMode.SPARSE)
        assert top.chunk.text.startswith("Absatz 7777:")
        assert {f.status for f in rosetta.ingest([tmp_path / "gross.md"]).files} == {IngestStatus.UNCHANGED}
