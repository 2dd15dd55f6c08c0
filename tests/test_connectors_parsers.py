"""The pure parsers: bytes in, a Document whose sections tile its text out; bad bytes -> ConnectorError."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.docx import parse_docx
from connectors.html import parse_html
from connectors.markdown import parse_markdown
from connectors.pdf import parse_pdf
from connectors.text import parse_text
from rag.errors import ConnectorError
from rag.types import Document, Section
from tests.fixtures_docs import (
    JAPANESE_FONT,
    PNG_BYTES,
    bloated_docx_bytes,
    docx_bytes,
    pdf_bytes,
    scanned_pdf_bytes,
)

MARKDOWN = """\
---
title: Betriebshandbuch
date: 2024-03-01
tags: [wartung, 保守]
weight: 10
---
Einleitung ohne Überschrift.

# Wartung {#wartung}

Regelmäßige Prüfung.

## Luftfilter {#luftfilter}

Der Filter wird monatlich gewechselt.

```bash
# kein Titel
```

## トレーサー {#tracer-provider}

トレーサーを設定します。

~~~
## auch kein Titel
~~~

### Tiefe ###

Text.

# Anhang
Ende.
"""

HTML = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>設定ガイド</title>
<style>body { color: red }</style><script>var x = "# nicht";</script></head>
<body><header><nav><a href="/">Home</a></nav>Seitenkopf</header>
<main><article>
<h1>インストール</h1>
<p>まず <b>パッケージ</b> を入れます。</p>
<h2>Docker</h2><div>Ein <em>Container</em><p>Absatz</p> Rest</div>
<pre>docker run \\
  rosetta</pre>
<h3>Compose</h3><ul><li>eins</li><li>zwei<br>drei</li></ul>
<h2>設定</h2><table><tr><th>Name</th><th>Wert</th></tr><tr><td>port</td><td>8080</td></tr></table>
<noscript>JS aus</noscript>
</article></main>
<footer>© 2024</footer></body></html>
"""


def _text(document: Document, section: Section) -> str:
    return document.text[section.start : section.end]


def test_markdown_front_matter_headings_and_anchors() -> None:
    document = parse_markdown(MARKDOWN.encode(), "file:///docs/handbuch.md")

    body = MARKDOWN[MARKDOWN.index("Einleitung") :]
    assert document.text == body
    at = body.index
    assert document.sections == (
        Section(0, at("# Wartung"), None, ()),
        Section(at("# Wartung"), at("## Luftfilter"), None, ("Wartung",)),
        Section(at("## Luftfilter"), at("## トレーサー"), None, ("Wartung", "Luftfilter")),
        Section(at("## トレーサー"), at("### Tiefe"), None, ("Wartung", "トレーサー")),
        Section(at("### Tiefe"), at("# Anhang"), None, ("Wartung", "トレーサー", "Tiefe")),
        Section(at("# Anhang"), len(body), None, ("Anhang",)),
    )
    assert document.title == "Betriebshandbuch"
    assert document.content_type == "text/markdown"
    assert document.metadata == {
        "encoding": "utf-8",
        "encoding_source": "utf-8",
        "front_matter": {
            "title": "Betriebshandbuch",
            "date": "2024-03-01",
            "tags": ["wartung", "保守"],
            "weight": 10,
        },
        "anchors": [
            ["wartung", at("# Wartung")],
            ["luftfilter", at("## Luftfilter")],
            ["tracer-provider", at("## トレーサー")],
        ],
    }
    luftfilter = document.sections[2]
    assert "# kein Titel" in _text(document, luftfilter)
    assert _text(document, document.sections[3]).endswith("~~~\n## auch kein Titel\n~~~\n\n")


@pytest.mark.parametrize(
    ("source", "title"),
    [
        ("Text\n# Erste Überschrift\n## Zweite\n", "Erste Überschrift"),
        ("## Nur H2\nText\n", "notizen"),
        ("---\ntitle: 42\n---\n# 見出し\n", "見出し"),
    ],
)
def test_markdown_title_falls_back_to_first_h1_then_stem(source: str, title: str) -> None:
    assert parse_markdown(source.encode(), "file:///d/notizen.md").title == title


def test_markdown_without_front_matter_keeps_everything_and_handles_crlf() -> None:
    source = "Intro\r\n# Kopf {#kopf .klasse} #\r\nText\r\n"
    document = parse_markdown(source.encode(), "file:///d/a.md")
    assert document.text == source
    assert document.sections == (Section(0, 7, None, ()), Section(7, len(source), None, ("Kopf",)))
    assert document.metadata == {"encoding": "utf-8", "encoding_source": "utf-8", "anchors": [["kopf", 7]]}


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("---\ntitle: [unclosed\n---\nText\n", "invalid YAML front matter ("),
        ("---\n- a\n- b\n---\nText\n", "front matter must be a YAML mapping (key: value lines), got list"),
        ("---\ntitle: Leer\n---\n  \n\n", "no text (only whitespace); add content or remove it"),
    ],
)
def test_markdown_bad_front_matter_or_empty_body(source: str, reason: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_markdown(source.encode(), "file:///d/x.md")
    assert str(caught.value).startswith(f"file:///d/x.md: {reason}")


def test_markdown_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_markdown(b"---\ntitle: ok\n\tbad: x\n---\nText\n", "file:///d/x.md")
    assert str(caught.value) == (
        "file:///d/x.md: invalid YAML front matter (found character '\\t' that cannot start any token at line 3); "
        "fix it or remove the --- block"
    )


def test_html_visible_text_headings_lang_and_title() -> None:
    document = parse_html(HTML.encode(), "https://example.org/guide/install.html")

    assert document.text == (
        "インストール\nまず パッケージ を入れます。\nDocker\nEin Container\nAbsatz\nRest\n"
        "docker run \\\n  rosetta\nCompose\neins\nzwei\ndrei\n設定\nName | Wert\nName: port | Wert: 8080"
    )
    at = document.text.index
    assert document.sections == (
        Section(0, at("Docker"), None, ("インストール",)),
        Section(at("Docker"), at("Compose"), None, ("インストール", "Docker")),
        Section(at("Compose"), at("設定"), None, ("インストール", "Docker", "Compose")),
        Section(at("設定"), len(document.text), None, ("インストール", "設定")),
    )
    assert document.title == "設定ガイド"
    assert document.metadata == {
        "encoding": "utf-8", "encoding_source": "declared", "html_extraction": "main content", "html_lang": "ja"
    }
    assert document.content_type == "text/html"


def test_html_keeps_header_inside_article_and_falls_back_to_h1_title() -> None:
    page = "<html><body><article><header><h1>Titel</h1></header><p>Text</p></article></body></html>"
    document = parse_html(page.encode(), "file:///d/a.html")
    assert (document.text, document.title, document.metadata) == (
        "Titel\nText", "Titel", {"encoding": "utf-8", "encoding_source": "utf-8", "html_extraction": "main content"}
    )


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ('<meta charset="shift_jis"><p>日本語</p>'.encode("shift_jis"), None, "日本語"),
        (
            '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"><p>Größe</p>'.encode(
                "latin-1"
            ),
            None,
            "Größe",
        ),
        ("<p>Größe</p>".encode("cp1252"), "cp1252", "Größe"),
        ("\ufeff<p>Größe</p>".encode("utf-16-le"), None, "Größe"),
    ],
)
def test_html_decodes_by_bom_declared_or_meta_charset(data: bytes, charset: str | None, text: str) -> None:
    assert parse_html(data, "file:///d/a.html", charset).text == text


def test_html_without_declaration_must_be_utf8() -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_html("<p>Größe</p>".encode("latin-1"), "file:///d/a.html")
    assert str(caught.value) == (
        "file:///d/a.html: not valid utf-8 at byte 5, and 2 non-ASCII bytes are too few to detect its encoding; "
        "convert it with `iconv -f <encoding> -t utf-8`, or declare its charset"
    )


def test_html_with_only_chrome_has_no_text() -> None:
    with pytest.raises(ConnectorError, match=r"no text \(only whitespace\)"):
        parse_html(b"<html><body><nav>Menu</nav><script>x()</script></body></html>", "file:///d/a.html")


def test_text_strips_bom_and_uses_the_stem_as_title() -> None:
    document = parse_text("\ufeffZeile eins\n二行目\n".encode(), "file:///d/Notiz%20eins.txt")
    assert document == Document(
        uri="file:///d/Notiz%20eins.txt", text="Zeile eins\n二行目\n", title="Notiz eins",
        metadata={"encoding": "utf-8", "encoding_source": "bom"},
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes); add content or remove it"),
        (b" \n\t\n", "no text (only whitespace); add content or remove it"),
        (
            b"abc\x00def",
            (
                "binary content (NUL byte at offset 3), looks like unrecognised content; "
                "this is not a text file, so check its extension"
            ),
        ),
        (
            PNG_BYTES,
            (
                "binary content (NUL byte at offset 8), looks like a PNG image; "
                "this is not a text file, so check its extension"
            ),
        ),
        (
            "Größe".encode("latin-1"),
            ("not valid utf-8 at byte 2, and 2 non-ASCII bytes are too few to detect its encoding; "
            "convert it with `iconv -f <encoding> -t utf-8`, or declare its charset"),
        ),
    ],
)
def test_text_rejects_empty_binary_and_non_utf8(data: bytes, reason: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_text(data, "file:///d/a.txt")
    assert str(caught.value) == f"file:///d/a.txt: {reason}"


def test_text_with_unknown_declared_charset() -> None:
    with pytest.raises(ConnectorError, match=r"unknown text encoding 'klingon'"):
        parse_text(b"Qapla'", "https://example.org/a.txt", "klingon")


def test_pdf_pages_german_and_japanese() -> None:
    data = pdf_bytes(
        [("Helvetica", ["Größe über Äpfel", "Straße"]), (JAPANESE_FONT, ["東京の天気", "晴れです"])],
        title="Wartungsplan",
    )
    document = parse_pdf(data, "file:///d/plan.pdf")

    assert document.text == "Größe über Äpfel\nStraße\n東京の天気\n晴れです"
    assert document.sections == (Section(0, 24, 1, ()), Section(24, 34, 2, ()))
    assert _text(document, document.sections[0]) == "Größe über Äpfel\nStraße\n"
    assert _text(document, document.sections[1]) == "東京の天気\n晴れです"
    assert (document.title, document.metadata, document.content_type) == (
        "Wartungsplan",
        {"pages": 2},
        "application/pdf",
    )


def test_pdf_without_title_uses_the_stem() -> None:
    assert parse_pdf(pdf_bytes([("Helvetica", ["A"])]), "file:///d/Bericht.pdf").title == "Bericht"


def test_pdf_empty_page_keeps_its_place() -> None:
    document = parse_pdf(
        pdf_bytes([("Helvetica", ["eins"]), ("Helvetica", []), ("Helvetica", ["drei"])]), "u:x"
    )
    assert document.text == "eins\n\ndrei"
    assert document.sections == (Section(0, 5, 1), Section(5, 6, 2), Section(6, 10, 3))


def _pdf_error(data: bytes) -> str:
    with pytest.raises(ConnectorError) as caught:
        parse_pdf(data, "file:///d/x.pdf")
    return str(caught.value)


def test_pdf_encrypted() -> None:
    assert _pdf_error(pdf_bytes([("Helvetica", ["geheim"])], encrypt="secret")) == (
        "file:///d/x.pdf: encrypted PDF; decrypt it (e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) "
        "and re-ingest"
    )


def test_pdf_truncated() -> None:
    data = pdf_bytes([("Helvetica", ["abgeschnitten"])])
    assert _pdf_error(data[: len(data) // 2]) == (
        "file:///d/x.pdf: corrupt or truncated PDF (Failed to load document (PDFium: Data format error).); "
        "re-download it or repair it (e.g. `qpdf in.pdf out.pdf`)"
    )


def test_pdf_scanned_without_text_layer() -> None:
    assert _pdf_error(scanned_pdf_bytes()) == (
        "file:///d/x.pdf: the PDF has no text layer (a scan?); OCR it first (e.g. `ocrmypdf in.pdf out.pdf`) "
        "and re-ingest"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes); add content or remove it"),
        (PNG_BYTES, "not a PDF (no %PDF header), looks like a PNG image; fix the file or its extension"),
        (
            b"PK\x03\x04rest",
            "not a PDF (no %PDF header), looks like a ZIP archive (or DOCX/XLSX/ODT); fix the file or its extension",
        ),
    ],
)
def test_pdf_wrong_content(data: bytes, reason: str) -> None:
    assert _pdf_error(data) == f"file:///d/x.pdf: {reason}"


def test_docx_headings_paragraphs_and_table() -> None:
    data = docx_bytes(
        [
            ("Title", "Handbuch"),
            ("", "Vorwort."),
            ("Heading 1", "Einleitung"),
            ("", "Text eins."),
            ("", "   "),
            ("Heading 2", "Details"),
            ("", "詳細な説明。"),
            ("Heading 1", "Anhang"),
        ],
        table=[["Name", "Wert"], ["Druck", "2 bar"]],
    )
    document = parse_docx(data, "file:///d/handbuch.docx")

    assert document.text == (
        "Handbuch\nVorwort.\nEinleitung\nText eins.\nDetails\n詳細な説明。\nAnhang\nName | Wert\nName: Druck | Wert: 2 bar"
    )
    at = document.text.index
    assert document.sections == (
        Section(0, at("Einleitung"), None, ("Handbuch",)),
        Section(at("Einleitung"), at("Details"), None, ("Handbuch", "Einleitung")),
        Section(at("Details"), at("Anhang"), None, ("Handbuch", "Einleitung", "Details")),
        Section(at("Anhang"), len(document.text), None, ("Handbuch", "Anhang")),
    )
    assert _text(document, document.sections[3]) == "Anhang\nName | Wert\nName: Druck | Wert: 2 bar"
    assert document.title == "Handbuch"


def test_docx_title_prefers_core_properties_then_stem() -> None:
    assert (
        parse_docx(docx_bytes([("", "x")], core_title="Offiziell"), "file:///d/a.docx").title == "Offiziell"
    )
    assert parse_docx(docx_bytes([("", "x")]), "file:///d/Memo.docx").title == "Memo"


def _docx_error(data: bytes, max_unpacked: int = 10_000_000) -> str:
    with pytest.raises(ConnectorError) as caught:
        parse_docx(data, "file:///d/x.docx", max_unpacked=max_unpacked)
    return str(caught.value)


def test_docx_zip_bomb_is_refused_before_parsing() -> None:
    data = bloated_docx_bytes(5_000_000)
    assert len(data) < 100_000
    unpacked = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert _docx_error(data, max_unpacked=1_000_000) == (
        f"file:///d/x.docx: DOCX unpacks to {unpacked} bytes, over the limit of 1000000 (a zip bomb?); "
        "if the file is genuine, raise the limit with --max-bytes"
    )


def test_docx_wrong_or_corrupt_content() -> None:
    assert _docx_error(b"just text") == (
        "file:///d/x.docx: not a DOCX (no ZIP header), looks like unrecognised content; "
        "fix the extension, or save it from Word as .docx"
    )
    data = docx_bytes([("", "x")])
    assert _docx_error(data[: len(data) // 2]).startswith("file:///d/x.docx: corrupt or truncated DOCX (")
    assert _docx_error(b"").endswith("empty file (0 bytes); add content or remove it")


def test_docx_zip_without_word_parts() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert _docx_error(buffer.getvalue()) == (
        "file:///d/x.docx: corrupt or truncated DOCX (\"There is no item named '[Content_Types].xml' in the "
        'archive"); re-save it from Word or LibreOffice and re-ingest'
    )


def test_docx_without_text() -> None:
    assert (
        _docx_error(docx_bytes([("", "  ")]))
        == "file:///d/x.docx: no text (only whitespace); add content or remove it"
    )


MARKDOWN_LINES = st.lists(
    st.sampled_from(
        ["# Eins", "## Zwei {#zwei}", "### 三", "```", "~~~", "Text", "", "  # eingerückt", "#kein"]
    )
    | st.text(alphabet="#`~ {}ab\n日", max_size=12),
    min_size=1,
    max_size=30,
)


@given(MARKDOWN_LINES)
def test_markdown_sections_always_tile_and_start_at_headings(lines: list[str]) -> None:
    source = "x\n" + "\n".join(lines)
    document = parse_markdown(source.encode(), "file:///d/p.md")
    assert document.text == source  # no front matter: nothing is dropped
    assert document.sections[0].start == 0 and document.sections[-1].end == len(source)
    for section in document.sections[1:]:
        assert document.text[section.start : section.end].lstrip(" ").startswith("#")
