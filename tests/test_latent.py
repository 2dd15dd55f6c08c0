"""Latent terms (e5-small's sparse autoencoder): what they hold, their cache, ingest storing them, and search
ordering a language's chunks by them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from evals.datasets import DocumentsConnector
from rag.config import Config, IngestConfig, RetrievalConfig
from rag.encoders.cache import CachedEncoder
from rag.encoders.e5 import LATENT_TERMS, E5SmallEncoder
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from rag.store import PgStore
from rag.types import Document, SearchMode, SparseVector, latent_dim
from tests.fakes import HashEncoder, LatentHashEncoder


def _cosine(a: SparseVector, b: SparseVector) -> float:
    return sum(w * b.weights.get(i, 0.0) for i, w in a.weights.items())


@pytest.fixture(scope="module")
def e5() -> E5SmallEncoder:
    return E5SmallEncoder.load(threads=1)


def test_e5_latent_terms_follow_meaning_where_its_dense_vectors_follow_language(e5: E5SmallEncoder) -> None:
    texts = ["空气滤清器必须每两年更换一次。", "The air filter must be replaced every two years.", "电池保修期为十年。"]
    zh_filter, en_filter, zh_battery = e5.encode_latent(texts)
    for latent in (zh_filter, en_filter, zh_battery):
        assert latent.dim == latent_dim(e5) == 16384
        assert 0 < len(latent.weights) <= LATENT_TERMS
        assert sum(w * w for w in latent.weights.values()) == pytest.approx(1.0, abs=1e-5)
    # The Chinese filter sentence: its dense vector is nearer the Chinese battery sentence (same language),
    # its latent terms nearer the English filter sentence (same meaning).
    dense = [e.dense for e in e5.encode_passages(texts)]
    assert float(dense[0] @ dense[2]) > float(dense[0] @ dense[1])
    assert _cosine(zh_filter, en_filter) > _cosine(zh_filter, zh_battery) + 0.05


def test_latent_terms_are_cached_by_text(store: PgStore) -> None:
    inner = LatentHashEncoder()
    first = CachedEncoder(inner, store).encode_latent(["Der Akku hält lange.", "The filter."])
    again = CachedEncoder(inner, store).encode_latent(["The filter.", "Der Akku hält lange.", "Garantie!"])
    assert inner.latent_calls == [["Der Akku hält lange.", "The filter."], ["Garantie!"]]
    assert again[:2] == first[::-1]


def _german() -> list[Document]:
    return [Document("mem://de/akku", "Der Akku und die Garantie für den Akku.", "akku"),
            Document("mem://de/filter", "Wer battery sagt, meint hier den Filter, den Filter und noch einmal den "
                     "Filter.", "filter")]


def test_ingest_stores_latent_terms_and_a_changed_setting_reingests(config: Config) -> None:
    encoder = LatentHashEncoder()
    with Rosetta.open(config, encoder=encoder) as rosetta:
        rosetta.ingest([DocumentsConnector.of(_german())])
        assert rosetta.status().collections[0].languages == {"de": 2}
        assert _latents(rosetta) == {"mem://de/akku": "{1:0.8944272,3:0.4472136}/3",
                                     "mem://de/filter": "{1:0.31622776,2:0.9486833}/3"}
    off = replace(config, ingest=IngestConfig(latent_terms=False))
    with Rosetta.open(off, encoder=encoder) as rosetta:
        report = rosetta.ingest([DocumentsConnector.of(_german())])
        assert {f.status for f in report.files} == {IngestStatus.UPDATED}
        assert _latents(rosetta) == {"mem://de/akku": None, "mem://de/filter": None}
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:  # an encoder without latent terms
        rosetta.ingest([DocumentsConnector.of(_german())])
        assert _latents(rosetta) == {"mem://de/akku": None, "mem://de/filter": None}


def _latents(rosetta: Rosetta) -> dict[str, str | None]:
    with rosetta.database.pool.connection() as conn:
        rows = conn.execute(f"SELECT d.uri, c.latent::text FROM {rosetta.store.schema}.chunks c "
                            f"JOIN {rosetta.store.schema}.documents d ON d.id = c.document_id").fetchall()
    return {str(uri): None if latent is None else str(latent) for uri, latent in rows}


@pytest.mark.parametrize(("weight", "first"), [(0.0, "mem://de/filter"), (2.0, "mem://de/akku")])
def test_latent_terms_order_the_chunks_of_a_language(config: Config, weight: float, first: str) -> None:
    # "battery" shares a word with the filter page only; its latent terms name the battery page's concept.
    # The split scores (single_score = false), whose latent weights these are.
    config = replace(config, retrieval=RetrievalConfig(latent_weight=weight, latent_choice_weight=0.0,
                                                       single_score=False))
    encoder = LatentHashEncoder()
    with Rosetta.open(config, encoder=encoder) as rosetta:
        rosetta.ingest([DocumentsConnector.of(_german())])
        hits = rosetta.search("battery", k=2, mode=SearchMode.DENSE)
    assert hits[0].chunk.document_uri == first
    assert (["battery"] in encoder.latent_calls) is (weight > 0)  # no latent terms asked for when unused


def test_latent_weight_must_not_be_negative() -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="latent -0.1"):
        RetrievalConfig(latent_weight=-0.1)
    with pytest.raises(ConfigError, match="latent choice -0.5"):
        RetrievalConfig(latent_choice_weight=-0.5)
    assert np.isclose(RetrievalConfig().latent_weight, 0.15) and np.isclose(RetrievalConfig().latent_choice_weight, 0.2)


@pytest.mark.parametrize(("weight", "first"), [(0.0, "en"), (1.0, "es")])
def test_latent_terms_of_other_languages_count_when_languages_are_chosen(config: Config, weight: float,
                                                                        first: str) -> None:
    # One page per language, so only the interleaving of languages can change. The English page shares the
    # question's words but not its concept; the Spanish one names the concept (warranty) in its own words.
    documents = [Document("mem://en/fan", "How long is the fan quiet? It is quiet for the night.", "fan"),
                 Document("mem://es/garantia", "La garantía dura diez años desde la compra del equipo.", "garantia")]
    config = replace(config, retrieval=RetrievalConfig(latent_weight=0.0, latent_choice_weight=weight,
                                                       single_score=False))  # the split scores' weights
    with Rosetta.open(config, encoder=LatentHashEncoder()) as rosetta:
        rosetta.ingest([DocumentsConnector.of(documents)])
        assert rosetta.status().collections[0].languages == {"en": 1, "es": 1}
        hits = rosetta.search("How long is the warranty?", k=2, mode=SearchMode.DENSE)
    assert [hit.chunk.language for hit in hits] == sorted(["en", "es"], key=lambda code: code != first)


@pytest.mark.parametrize(("single", "order", "first"), [(False, True, "mem://de/filter"), (True, True, "mem://de/akku"),
                                                       (True, False, "mem://de/filter")])
def test_the_single_score_counts_latent_terms_in_the_questions_own_language(config: Config, single: bool, order: bool,
                                                                          first: str) -> None:
    # A German question and German pages: the split scores leave the question's own language to the dense
    # cosine (the filter page shares the word "battery"); the single score counts the latent terms there too,
    # unless it only chooses between languages (single_order = false).
    retrieval = RetrievalConfig(latent_weight=2.0, latent_choice_weight=2.0, single_score=single, single_order=order,
                                single_neutral_chunk=0.0, single_neutral_sentence=0.0, single_plain_chunk=1.0,
                                single_plain_sentence=0.0, single_latent=2.0, single_order_share=1.0)
    with Rosetta.open(replace(config, retrieval=retrieval), encoder=LatentHashEncoder()) as rosetta:
        rosetta.ingest([DocumentsConnector.of(_german())])
        question = "Wer battery sagt, meint was genau?"
        assert rosetta.retriever().detect(question) == "de"
        hits = rosetta.search(question, k=2, mode=SearchMode.DENSE)
    assert hits[0].chunk.document_uri == first


@pytest.mark.parametrize(("own", "first"), [(0.0, "en"), (-1.0, "es")])
def test_the_single_scores_own_language_weight_moves_the_questions_language(config: Config, own: float,
                                                                           first: str) -> None:
    # Without latent terms in the score the English page (the question's words) leads; a weight on the
    # question's own language below the others' puts the Spanish page first.
    documents = [Document("mem://en/fan", "How long is the fan quiet? It is quiet for the night.", "fan"),
                 Document("mem://es/garantia", "La garantía dura diez años desde la compra del equipo.", "garantia")]
    retrieval = RetrievalConfig(single_score=True, single_latent=0.0, single_own_language=own)
    with Rosetta.open(replace(config, retrieval=retrieval), encoder=LatentHashEncoder()) as rosetta:
        rosetta.ingest([DocumentsConnector.of(documents)])
        hits = rosetta.search("How long is the warranty?", k=2, mode=SearchMode.DENSE)
    assert [hit.chunk.language for hit in hits] == sorted(["en", "es"], key=lambda code: code != first)


def test_single_score_weights_must_be_finite() -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="retrieval.single_\\* weights must be finite numbers.*single_latent': nan"):
        RetrievalConfig(single_latent=float("nan"))
    with pytest.raises(ConfigError, match="retrieval.single_order_share must be in \\[0, 1\\], got -0.5"):
        RetrievalConfig(single_order_share=-0.5)
