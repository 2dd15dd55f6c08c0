"""Ingest end to end on the embedded Postgres: languages, idempotence, updates, pruning, bad input."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import rag.encoders.cache
from rag.config import Config
from rag.errors import SchemaMismatch
from rag.ingest import IngestReport, IngestStatus
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder


@pytest.fixture
def fake() -> HashEncoder:
    return HashEncoder()


@pytest.fixture
def rosetta(config: Config, fake: HashEncoder) -> Iterator[Rosetta]:
    with Rosetta.open(config, encoder=fake) as opened:
        yield opened


def _by_name(report: IngestReport) -> dict[str, tuple[IngestStatus, str | None]]:
    return {Path(f.uri).name: (f.status, f.language) for f in report.files}


def _rows(rosetta: Rosetta, query: str) -> list[tuple[object, ...]]:
    with rosetta.database.pool.connection() as conn:
        return conn.execute(query.format(s=rosetta.store.schema)).fetchall()


def test_demo_corpus_with_the_real_offline_encoder(config: Config, demo_copy: Path) -> None:
    notices: list[str] = []
    with Rosetta.open(config, notice=notices.append) as rosetta:
        report = rosetta.ingest([demo_copy])
        status = rosetta.status()
    assert _by_name(report) == {
        "wartungshandbuch.md": (IngestStatus.ADDED, "de"),
        "faq.html": (IngestStatus.ADDED, "en"),
        "garantia.md": (IngestStatus.ADDED, "es"),
        "release-notes.md": (IngestStatus.ADDED, "ja"),
        "quick-start.md": (IngestStatus.ADDED, "zh"),
    }
    (collection,) = status.collections
    assert collection.encoder == "e5-small" and collection.dim == 384
    assert set(collection.languages) == {"de", "en", "es", "ja", "zh"}
    assert collection.documents == 5 and collection.chunks == report.chunks > 5


def test_chunks_quote_the_original_text_with_heading_and_offsets(rosetta: Rosetta, demo_copy: Path) -> None:
    rosetta.ingest([demo_copy / "de"])
    from connectors import connector_for

    (document,) = connector_for(str(demo_copy / "de" / "wartungshandbuch.md")).load(
        (demo_copy / "de" / "wartungshandbuch.md").resolve().as_uri())
    rows = _rows(rosetta, "SELECT text, start_char, end_char, heading FROM {s}.chunks ORDER BY ordinal")
    for text, start, end, _heading in rows:
        assert isinstance(start, int) and isinstance(end, int)
        assert document.text[start:end] == text
    assert any(h == ["Heliox HX-20 Wartungshandbuch", "Regelmäßige Wartung", "Luftfilter"] for *_, h in rows)


def test_rerun_is_idempotent_and_encodes_nothing(rosetta: Rosetta, fake: HashEncoder, demo_copy: Path) -> None:
    first = rosetta.ingest([demo_copy])
    before = _rows(rosetta, "SELECT collection_id, id, text, dense::text, sparse::text FROM {s}.chunks ORDER BY id")
    calls = len(fake.calls)
    second = rosetta.ingest([demo_copy])
    assert {f.status for f in second.files} == {IngestStatus.UNCHANGED}
    assert second.chunks == 0 and len(fake.calls) == calls
    assert _rows(rosetta, "SELECT collection_id, id, text, dense::text, sparse::text FROM {s}.chunks ORDER BY id") == before
    assert len(before) == first.chunks


def test_a_new_term_splitting_re_encodes_every_chunk_at_the_next_ingest(rosetta: Rosetta, fake: HashEncoder,
                                                                       demo_copy: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Stored lexical weights made with an older rag.words.terms would never match a question's new terms.
    first = rosetta.ingest([demo_copy])
    calls = len(fake.calls)
    monkeypatch.setattr(rag.encoders.cache, "TERMS_VERSION", "terms-test")
    again = rosetta.ingest([demo_copy])
    assert {f.status for f in again.files} == {IngestStatus.UPDATED} and again.chunks == first.chunks
    assert len(fake.calls) > calls  # encoded again, not served from the encoding cache of the old splitting


def test_changed_file_is_replaced_and_nothing_duplicated(rosetta: Rosetta, demo_copy: Path) -> None:
    rosetta.ingest([demo_copy])
    target = demo_copy / "es" / "garantia.md"
    target.write_text(target.read_text().replace("diez años", "doce años"))
    report = rosetta.ingest([demo_copy])
    assert _by_name(report)["garantia.md"] == (IngestStatus.UPDATED, "es")
    assert sum(f.status is IngestStatus.UNCHANGED for f in report.files) == 4
    texts = [t for (t,) in _rows(rosetta, "SELECT text FROM {s}.chunks WHERE language = 'es'")]
    assert any("doce años" in t for t in texts) and not any("diez años" in t for t in texts)  # type: ignore[operator]
    assert _rows(rosetta, "SELECT count(*) = count(DISTINCT (document_id, ordinal)) FROM {s}.chunks") == [(True,)]
    assert _rows(rosetta, "SELECT count(*) FROM {s}.documents") == [(5,)]


def test_a_chunk_too_short_to_tell_takes_its_documents_language(rosetta: Rosetta, tmp_path: Path) -> None:
    page = tmp_path / "sdk.md"
    page.write_text("# SDK の一覧\n\nOpenTelemetry は多くのプログラミング言語向けに SDK を提供しています。各 SDK は同じ"
                    "仕様に従い、トレース、メトリクス、ログを扱います。\n\n## 言語\n\n- [Go](/docs/go/)\n"
                    "- [Java](/docs/java/)\n- [Swift](/docs/swift/)\n\n## 中文\n\n为了保持空气清洁，过滤器必须每个月更换一次。\n")
    (report,) = rosetta.ingest([page]).files
    assert report.language == "ja"
    rows = _rows(rosetta, "SELECT text, language FROM {s}.chunks ORDER BY ordinal")
    by_text = {str(text).split("\n")[-1]: language for text, language in rows}
    # The link list has only Latin letters: a language of its own it is not. The Chinese line is Chinese.
    assert by_text["- [Swift](/docs/swift/)"] == "ja"
    assert by_text["为了保持空气清洁，过滤器必须每个月更换一次。"] == "zh"


def test_prune_removes_only_vanished_sources_under_the_given_paths(rosetta: Rosetta, demo_copy: Path,
                                                                 tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("Eine Notiz außerhalb des Handbuchs über den Luftfilter.")
    rosetta.ingest([demo_copy, other])
    (demo_copy / "ja" / "release-notes.md").unlink()
    kept = rosetta.ingest([demo_copy])
    assert rosetta.status().collections[0].documents == 6
    assert all(f.status is IngestStatus.UNCHANGED for f in kept.files)
    pruned = rosetta.ingest([demo_copy], prune=True)
    assert [Path(f.uri).name for f in pruned.files if f.status is IngestStatus.PRUNED] == ["release-notes.md"]
    assert rosetta.status().collections[0].documents == 5
    assert "ja" not in rosetta.status().collections[0].languages


def test_bad_files_are_reported_and_good_ones_still_ingested(rosetta: Rosetta, demo_copy: Path) -> None:
    bad = demo_copy / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "nul.txt").write_bytes(b"abc\x00\x00\x00def" * 20)
    (bad / "latin1.txt").write_bytes("Größe und Gewicht".encode("latin-1"))
    (bad / "image.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (bad / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    report = rosetta.ingest([demo_copy])
    failed = {Path(f.uri).name: f.error for f in report.files if f.status is IngestStatus.FAILED}
    assert set(failed) == {"empty.txt", "nul.txt", "latin1.txt", "image.pdf", "broken.docx"}
    assert all(error and str(bad / name) in error or name in (error or "") for name, error in failed.items())
    assert sum(f.status is IngestStatus.ADDED for f in report.files) == 5
    assert report.failed == 5


def test_missing_path_is_reported_and_blocks_pruning(rosetta: Rosetta, demo_copy: Path, tmp_path: Path) -> None:
    rosetta.ingest([demo_copy])
    shutil.rmtree(demo_copy / "zh")  # gone for real: pruning would delete it, were it allowed to run
    missing = tmp_path / "nope"
    report = rosetta.ingest([missing, demo_copy], prune=True)
    (failure,) = [f for f in report.files if f.status is IngestStatus.FAILED]
    assert failure.uri == str(missing) and "no such file or directory" in (failure.error or "")
    assert not any(f.status is IngestStatus.PRUNED for f in report.files)
    assert rosetta.status().collections[0].documents == 5
    assert [f.status for f in rosetta.ingest([demo_copy], prune=True).files].count(IngestStatus.PRUNED) == 1


def test_collection_built_by_another_encoder_is_refused(config: Config, demo_copy: Path) -> None:
    with Rosetta.open(config, encoder=HashEncoder(dim=8)) as rosetta:
        rosetta.ingest([demo_copy / "de"])
    with Rosetta.open(config, encoder=HashEncoder(dim=16, label="other")) as rosetta, \
            pytest.raises(SchemaMismatch, match="was built with encoder hash-fake"):
        rosetta.ingest([demo_copy / "de"])
