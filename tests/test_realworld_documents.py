"""Real-world documents: a help page with its chrome, a PDF with an outline, setext Markdown, legacy encodings,
header tables; parsed, then ingested into the real Postgres."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn

from connectors.docx import parse_docx
from connectors.html import parse_html
from connectors.markdown import parse_markdown
from connectors.pdf import parse_pdf
from connectors.text import parse_text
from rag.config import Config
from rag.errors import ConnectorError
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from rag.types import Section
from tests.fakes import HashEncoder
from tests.fixtures_docs import JAPANESE_FONT, docx_bytes, pdf_bytes

HELP_PAGE = """<!DOCTYPE html>
<html lang="de-DE"><head><meta charset="utf-8"><title>Luftfilter wechseln | Hilfe-Center</title></head>
<body>
<div id="cookie-consent" class="cookie-banner"><p>Wir verwenden Cookies, um die Nutzung unserer Website zu
analysieren. Mit „Alle akzeptieren" stimmen Sie der Verwendung zu.</p><button>Alle akzeptieren</button>
<button>Einstellungen</button></div>
<header class="site-header"><a href="/">Hilfe-Center</a><nav><a href="/produkte">Produkte</a>
<a href="/kontakt">Kontakt</a></nav></header>
<div class="layout">
<aside class="sidebar"><h3>Themen</h3><ul><li><a href="/start">Erste Schritte</a></li>
<li><a href="/einbau">Einbau und Anschluss</a></li><li><a href="/stoerungen">Störungen beheben</a></li></ul></aside>
<main><article>
<h1>Luftfilter wechseln</h1>
<p>Der Luftfilter des Speichers muss alle sechs Monate gewechselt werden, damit die Lüftung die Zellen
ausreichend kühlt und das Gerät nicht wegen Übertemperatur abschaltet.</p>
<h2>Vorbereitung</h2>
<p>Schalten Sie den Speicher am Hauptschalter aus und warten Sie fünf Minuten, bevor Sie die Abdeckung öffnen.</p>
<ul><li>Schraubendreher Torx T20</li><li>Ersatzfilter FX-200 oder FX-300</li></ul>
<h2>Technische Daten</h2>
<table><thead><tr><th>Filter</th><th>Klasse</th><th>Wechselintervall</th></tr></thead>
<tbody><tr><td>FX-200</td><td>G4</td><td>6 Monate</td></tr>
<tr><td>FX-300</td><td>F7</td><td>12 Monate</td></tr></tbody></table>
<h3>Hinweise zur Entsorgung</h3>
<p>Gebrauchte Filter gehören in den Restmüll; das Kunststoffgehäuse kann recycelt werden.</p>
</article>
<section class="related"><h2>Ähnliche Artikel</h2><ul><li><a href="/reinigen">Gehäuse reinigen</a></li>
<li><a href="/fehlercodes">Liste der Fehlercodes</a></li></ul></section>
</main></div>
<footer><p>© 2026 Beispiel Energie GmbH · Impressum · Datenschutz</p></footer>
</body></html>
"""

HELP_TEXT = (
    "Luftfilter wechseln\n"
    "Der Luftfilter des Speichers muss alle sechs Monate gewechselt werden, damit die Lüftung die Zellen "
    "ausreichend kühlt und das Gerät nicht wegen Übertemperatur abschaltet.\n"
    "Vorbereitung\n"
    "Schalten Sie den Speicher am Hauptschalter aus und warten Sie fünf Minuten, bevor Sie die Abdeckung öffnen.\n"
    "Schraubendreher Torx T20\n"
    "Ersatzfilter FX-200 oder FX-300\n"
    "Technische Daten\n"
    "Filter | Klasse | Wechselintervall\n"
    "Filter: FX-200 | Klasse: G4 | Wechselintervall: 6 Monate\n"
    "Filter: FX-300 | Klasse: F7 | Wechselintervall: 12 Monate\n"
    "Hinweise zur Entsorgung\n"
    "Gebrauchte Filter gehören in den Restmüll; das Kunststoffgehäuse kann recycelt werden."
)

# One maintenance notice per legacy encoding, in the language whose tools write that encoding.
LEGACY = {
    "shift_jis": ("ja", "エアフィルターは六か月ごとに交換してください。赤いランプが点滅している場合はフィルターが詰まっています。"),
    "euc_jp": ("ja", "エアフィルターは六か月ごとに交換してください。赤いランプが点滅している場合はフィルターが詰まっています。"),
    "gbk": ("zh", "空气过滤器必须每六个月更换一次。红色指示灯闪烁表示过滤器堵塞，请立即更换。"),
    "gb18030": ("zh", "空气过滤器必须每六个月更换一次。红色指示灯闪烁表示过滤器堵塞，请立即更换。"),
    "big5": ("zh", "空氣過濾器必須每六個月更換一次。紅色指示燈閃爍表示過濾器堵塞，請立即更換。"),
    "euc_kr": ("ko", "공기 필터는 6개월마다 교체해야 합니다. 빨간색 표시등이 깜박이면 필터가 막힌 것입니다."),
    "cp1251": ("ru", ("Воздушный фильтр нужно менять каждые шесть месяцев. Мигающий красный индикатор означает, "
                     "что фильтр засорён.")),
}
# The codec charset-normalizer names for each: a superset where one exists (cp932 for Shift_JIS, cp949 for EUC-KR).
DETECTED = {"shift_jis": "cp932", "euc_jp": "euc_jis_2004", "gbk": "gb18030", "gb18030": "gb18030",
            "big5": "big5", "euc_kr": "cp949", "cp1251": "cp1251"}


def test_help_page_keeps_the_article_and_drops_menus_sidebar_banner_and_related() -> None:
    document = parse_html(HELP_PAGE.encode(), "https://hilfe.example/de/luftfilter")
    assert document.text == HELP_TEXT
    at = document.text.index
    assert document.sections == (
        Section(0, at("Vorbereitung"), None, ("Luftfilter wechseln",)),
        Section(at("Vorbereitung"), at("Technische Daten"), None, ("Luftfilter wechseln", "Vorbereitung")),
        Section(at("Technische Daten"), at("Hinweise"), None, ("Luftfilter wechseln", "Technische Daten")),
        Section(at("Hinweise"), len(document.text), None,
                ("Luftfilter wechseln", "Technische Daten", "Hinweise zur Entsorgung")),
    )
    assert (document.title, document.metadata) == ("Luftfilter wechseln | Hilfe-Center", {
        "encoding": "utf-8", "encoding_source": "declared", "html_extraction": "main content", "html_lang": "de-DE",
    })


def test_headings_trafilatura_drops_stay_when_their_text_stays() -> None:
    page = ("<html><body><nav>Start · Hilfe</nav><h1>Häufige Fragen</h1><h2>Wie laut ist der Speicher?</h2>"
            "<p>Bei voller Ladeleistung erzeugen die Lüfter etwa 35 dB in einem Meter Abstand.</p>"
            "<h2>Funktioniert er bei Stromausfall?</h2><p>Nur mit dem optionalen Umschalter HX-BK1, der in "
            "weniger als zwanzig Millisekunden umschaltet.</p><h2>Verwandte Themen</h2></body></html>")
    document = parse_html(page.encode(), "file:///d/faq.html")
    assert [section.heading for section in document.sections] == [
        ("Häufige Fragen",), ("Häufige Fragen", "Wie laut ist der Speicher?"), ("Häufige Fragen", "Funktioniert er bei Stromausfall?"),
    ]
    assert (document.text.startswith("Häufige Fragen\nWie laut"), document.metadata["html_extraction"]) == (
        True, "main content")


def test_a_page_without_main_content_falls_back_to_the_whole_page() -> None:
    page = "<html><body><nav>Menü</nav><aside><p>Randnotiz zum Filterwechsel im Winter.</p></aside></body></html>"
    document = parse_html(page.encode(), "file:///d/rand.html")
    assert (document.text, document.metadata["html_extraction"]) == (
        "Randnotiz zum Filterwechsel im Winter.", "whole page")


def outlined_pdf() -> bytes:
    """A German and Japanese manual whose sections live only in its outline (bookmarks)."""
    return pdf_bytes(
        [
            ("Helvetica", ["Vorwort", "Dieses Handbuch beschreibt den Heimspeicher."]),
            ("Helvetica", ["Kapitel 4 Wartung", "Allgemeines zur Wartung.", "Filter",
                           "Der Luftfilter wird alle sechs Monate gewechselt."]),
            ("Helvetica", ["Die Dichtung des Filterdeckels ebenfalls pruefen."]),
            (JAPANESE_FONT, ["第5章 保守", "概要です。", "フィルター交換", "フィルターは六か月ごとに交換してください。"]),
        ],
        title="Handbuch",
        outline=[(0, "Vorwort", 0), (0, "Kapitel 4 Wartung", 1), (1, "Filter", 1), (0, "第5章 保守", 3),
                 (1, "フィルター交換", 3)],
    )


@pytest.mark.parametrize("target", ["dest", "goto action"])
def test_pdf_outline_gives_each_page_its_section_path(target: str) -> None:
    data = outlined_pdf()
    if target == "goto action":  # LaTeX hyperref writes outline targets as GoTo actions
        data, count = re.subn(rb"/Dest (\[ \d+ 0 R /Fit \])", rb"/A << /S /GoTo /D \1 >>", data)
        assert count == 5
    document = parse_pdf(data, "file:///d/handbuch.pdf")
    at = document.text.index
    assert document.sections == (
        Section(0, at("Kapitel 4"), 1, ("Vorwort",)),
        Section(at("Kapitel 4"), at("Filter\n"), 2, ("Kapitel 4 Wartung",)),
        Section(at("Filter\n"), at("Die Dichtung"), 2, ("Kapitel 4 Wartung", "Filter")),
        Section(at("Die Dichtung"), at("第5章"), 3, ("Kapitel 4 Wartung", "Filter")),
        Section(at("第5章"), at("フィルター交換"), 4, ("第5章 保守",)),
        Section(at("フィルター交換"), len(document.text), 4, ("第5章 保守", "フィルター交換")),
    )
    assert document.metadata == {"pages": 4, "outline_entries": 5}


SETEXT = """Wartungshandbuch
================

Einleitung zum Gerät.

Luftfilter {#filter}
----------

Alle sechs Monate wechseln.

```text
Kein Titel
==========
# auch keiner
```

<div class="hinweis">
  <h3 id="achtung">Achtung &amp; Vorsicht</h3>
  <p>Vorher ausschalten.</p>
</div>

## Entsorgung ##
Restmüll.
"""


def test_markdown_setext_and_html_block_headings() -> None:
    document = parse_markdown(SETEXT.encode(), "file:///d/handbuch.md")
    at = document.text.index
    assert document.text == SETEXT
    assert document.sections == (
        Section(0, at("Luftfilter"), None, ("Wartungshandbuch",)),
        Section(at("Luftfilter"), at("<h3"), None, ("Wartungshandbuch", "Luftfilter")),
        Section(at("<h3"), at("## Entsorgung"), None, ("Wartungshandbuch", "Luftfilter", "Achtung & Vorsicht")),
        Section(at("## Entsorgung"), len(SETEXT), None, ("Wartungshandbuch", "Entsorgung")),
    )
    assert (document.title, document.metadata) == ("Wartungshandbuch", {
        "encoding": "utf-8", "encoding_source": "utf-8", "anchors": [["filter", at("Luftfilter")]],
    })


@pytest.mark.parametrize("encoding", sorted(LEGACY))
@pytest.mark.parametrize("kind", ["txt", "md", "html"])
def test_legacy_encodings_are_detected_and_recorded(encoding: str, kind: str) -> None:
    _, text = LEGACY[encoding]
    wrapped = {"txt": text, "md": f"# {text[:6]}\n\n{text}\n", "html": f"<html><body><p>{text}</p></body></html>"}
    parse = {"txt": parse_text, "md": parse_markdown, "html": parse_html}[kind]
    document = parse(wrapped[kind].encode(encoding), f"file:///d/notice.{kind}")
    assert text in document.text
    assert (document.metadata["encoding"], document.metadata["encoding_source"]) == (DETECTED[encoding], "detected")


FIX = "convert it with `iconv -f <encoding> -t utf-8`, or declare its charset"
DAMAGED = "Überprüfung der Lüftung: Größe, Maße, Gewicht ändern. ".encode() * 2 + b"\xff"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("Größe: 48 kg".encode("latin-1"), ("not valid utf-8 at byte 2, and 2 non-ASCII bytes are too few to detect "
                                           f"its encoding; {FIX}")),
        (bytes(range(0x80, 0x100)) * 4, f"not valid utf-8 at byte 0, and no encoding reads it cleanly; {FIX}"),
        ("Το φίλτρο αέρα αλλάζει κάθε έξι μήνες.".encode("cp1253"),
         f"not valid utf-8 at byte 0, and it reads equally well as cp1253 or iso8859_5; {FIX}"),
        ("Фильтр менять раз в полгода.".encode("koi8_r"),
         ("not valid utf-8 at byte 0, and it reads as cp932 only with half-width katakana, the way single-byte text "
         f"misread as Shift_JIS looks; {FIX}")),
        (DAMAGED, (f"not valid utf-8 at byte {len(DAMAGED) - 1}, though most of it is UTF-8 (a damaged file?); "
                  f"repair it, or {FIX}")),
    ],
)
def test_undetectable_encodings_are_rejected_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_text(data, "file:///d/x.txt")
    assert str(caught.value) == f"file:///d/x.txt: {reason}"


def test_a_declared_charset_wins_over_detection() -> None:
    text = LEGACY["cp1251"][1]
    with pytest.raises(ConnectorError, match=r"not valid utf-8 at byte 0; convert it"):
        parse_text(text.encode("cp1251"), "file:///d/x.txt", charset="utf-8")


def test_docx_header_table_rows_keep_their_headers() -> None:
    rows = [["Modell", "Kapazität", "Gewicht"], ["HS-5", "5 kWh", "48 kg"], ["HS-10", "10 kWh", "", ]]
    document = parse_docx(docx_bytes([("Heading 1", "Technische Daten")], table=rows), "file:///d/daten.docx")
    assert document.text == (
        "Technische Daten\nModell | Kapazität | Gewicht\nModell: HS-5 | Kapazität: 5 kWh | Gewicht: 48 kg\n"
        "Modell: HS-10 | Kapazität: 10 kWh"
    )


def test_docx_table_without_header_row_stays_row_per_line() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table._tbl.tblPr.find(qn("w:tblLook")).set(qn("w:firstRow"), "0")
    for row, values in zip(table.rows, [["Gewicht", "48 kg"], ["Höhe", "1,2 m"]]):
        for cell, value in zip(row.cells, values):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    assert parse_docx(buffer.getvalue(), "file:///d/kv.docx").text == "Gewicht | 48 kg\nHöhe | 1,2 m"


def test_the_corpus_ingests_with_languages_encodings_pages_and_headings(config: Config, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hilfe.html").write_text(HELP_PAGE, "utf-8")
    (corpus / "handbuch.pdf").write_bytes(outlined_pdf())
    (corpus / "setext.md").write_text(SETEXT, "utf-8")
    for encoding, (_, text) in LEGACY.items():
        (corpus / f"notice-{encoding}.txt").write_bytes(text.encode(encoding))
    # Only the corpus's languages: lingua then builds in a fraction of the time all defaults take.
    config = replace(config, ingest=replace(config.ingest, languages=("de", "ja", "zh", "ko", "ru")))
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        report = rosetta.ingest([corpus])
        with rosetta.database.pool.connection() as conn:
            documents: dict[str, str | None] = dict(conn.execute(
                f"SELECT uri, metadata->>'encoding' FROM {rosetta.store.schema}.documents").fetchall())
            filters = conn.execute(
                f"SELECT DISTINCT c.page, c.heading FROM {rosetta.store.schema}.chunks c "
                f"JOIN {rosetta.store.schema}.documents d ON d.id = c.document_id "
                "WHERE d.uri LIKE '%handbuch.pdf' AND c.text LIKE '%Luftfilter wird%'").fetchall()
            boilerplate = conn.execute(
                f"SELECT count(*) FROM {rosetta.store.schema}.chunks WHERE text ~ 'Cookies|Erste Schritte|Impressum'"
            ).fetchone()
    languages = {Path(f.uri).name: (f.status, f.language) for f in report.files}
    assert languages == {
        "hilfe.html": (IngestStatus.ADDED, "de"),
        "handbuch.pdf": (IngestStatus.ADDED, "de"),
        "setext.md": (IngestStatus.ADDED, "de"),
        **{f"notice-{e}.txt": (IngestStatus.ADDED, language) for e, (language, _) in LEGACY.items()},
    }
    assert {Path(uri).name: encoding for uri, encoding in documents.items() if "notice" in uri} == {
        f"notice-{e}.txt": DETECTED[e] for e in LEGACY
    }
    assert filters == [(2, ["Kapitel 4 Wartung", "Filter"])]
    assert boilerplate == (0,)
