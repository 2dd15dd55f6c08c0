"""A corpus of hostile and broken files beside a few good ones, generated into a directory (issue 6).

``build_corpus(root, max_bytes)`` writes every file and returns a Corpus that says what ingesting each
with that ``max_bytes`` must report: a ``Stored`` file is stored with its language; a ``Failed`` one is
reported FAILED with a reason matching a pattern (the documented problem, e.g. "encrypted PDF"); a
``Skipped`` path is never listed (documented: unsupported extensions, hidden entries and directory
symlinks are not walked, a file symlink is loaded once under its target's URI). The same call always
writes the same bytes. The zip bomb is sized against ``max_bytes``; the 10 MB single-line file is
stored under ``MAX_BYTES`` and refused as oversize under ``QUICK_MAX_BYTES``, which keeps a run short.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import signal
import struct
import subprocess
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

from connectors.docx import UNZIP_FACTOR
from tests.fixtures_docs import PNG_BYTES, docx_bytes, pdf_bytes, scanned_pdf_bytes

MAX_BYTES = 16_000_000
QUICK_MAX_BYTES = 4_000_000
# The single-line file: one sentence repeated without a line break, so its chunks repeat and the
# encoding cache keeps a real encoder's work small while chunking still walks all 10 MB.
BIG_LINE = "The inverter restarts by itself after a grid fault and writes the event to its log. "
BIG_BYTES = 10_000_000


@dataclass(frozen=True, slots=True)
class Stored:
    """A file that must be stored, its chunks in ``language``."""

    path: str
    language: str


@dataclass(frozen=True, slots=True)
class Failed:
    """A file that must be reported FAILED with an error matching the regex ``reason``."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path the directory walk must not report (``why`` is the documented rule)."""

    path: str
    why: str


Entry = Stored | Failed | Skipped


@dataclass(frozen=True, slots=True)
class Corpus:
    """The directory and what ingesting it must report per entry."""

    root: Path
    entries: tuple[Entry, ...]

    @property
    def stored(self) -> list[Stored]:
        """Entries that must be stored."""
        return [e for e in self.entries if isinstance(e, Stored)]

    @property
    def failed(self) -> list[Failed]:
        """Entries that must fail."""
        return [e for e in self.entries if isinstance(e, Failed)]

    @property
    def listed(self) -> list[Stored | Failed]:
        """Entries the walk must report, stored or failed."""
        return [e for e in self.entries if not isinstance(e, Skipped)]

    @property
    def skipped(self) -> list[Skipped]:
        """Entries the walk must leave out."""
        return [e for e in self.entries if isinstance(e, Skipped)]


# --- good files in several languages -------------------------------------------------------------

GOOD_TEXT = {
    "en": "The air filter must be replaced every six months. A blinking red light means the filter is blocked.",
    "de": "Der Luftfilter muss alle sechs Monate gewechselt werden. Eine rot blinkende Leuchte zeigt einen "
          "verstopften Filter an.",
    "es": "El filtro de aire debe cambiarse cada seis meses. Una luz roja intermitente indica que el filtro "
          "está obstruido.",
    "fr": "Le filtre à air doit être remplacé tous les six mois. Un voyant rouge clignotant signale un filtre "
          "bouché.",
    "ja": "エアフィルターは六か月ごとに交換してください。赤いランプが点滅している場合はフィルターが詰まっています。",
    "ru": "Воздушный фильтр нужно менять каждые шесть месяцев. Мигающий красный индикатор означает, что "
          "фильтр засорён.",
    "ar": "يجب تغيير فلتر الهواء كل ستة أشهر. يشير الضوء الأحمر الوامض إلى أن الفلتر مسدود.",
}


def _good() -> Iterator[tuple[str, bytes, Entry]]:
    yield ("good/en-guide.md", f"---\ntitle: Service guide\nproduct: HX-20\n---\n# Filters\n\n{GOOD_TEXT['en']}\n"
           .encode(), Stored("good/en-guide.md", "en"))
    yield "good/de-handbuch.txt", GOOD_TEXT["de"].encode(), Stored("good/de-handbuch.txt", "de")
    yield ("good/ja-notes.html", f"<html lang=ja><body><h1>注意</h1><p>{GOOD_TEXT['ja']}</p></body></html>".encode(),
           Stored("good/ja-notes.html", "ja"))
    yield "good/es-garantia.pdf", _pdf(GOOD_TEXT["es"]), Stored("good/es-garantia.pdf", "es")
    yield "good/fr-notice.docx", _docx([("", GOOD_TEXT["fr"])]), Stored("good/fr-notice.docx", "fr")
    yield "good/ru-utf16-bom.html", codecs.BOM_UTF16_LE + f"<p>{GOOD_TEXT['ru']}</p>".encode("utf-16-le"), Stored(
        "good/ru-utf16-bom.html", "ru")
    yield "good/ar-utf8-bom.txt", codecs.BOM_UTF8 + GOOD_TEXT["ar"].encode(), Stored("good/ar-utf8-bom.txt", "ar")


# --- hostile but valid: must be stored ------------------------------------------------------------

ODD_NAMES = [
    "odd/with space 'single' \"double\".md",
    "odd/new\nline.txt",
    "odd/emoji 📚🔥.txt",
    "odd/مرحبا بالعالم.txt",
    "odd/right-to-left \u202etxt.md",
    "odd/percent %41 hash # question ? amp &.txt",
    "odd/back\\slash;semi|pipe*star.txt",
    "odd/--help.md",
    "odd/ESC \x1b[31mred\x1b[0m bell \x07.txt",
    "odd/" + "l" * 250 + ".txt",
    "odd/" + "ü" * 125 + ".md",
    "odd/SHOUTING.TXT",
    os.fsdecode(b"odd/latin-1 name \xe9t\xe9.txt"),  # not UTF-8: the str holds surrogate escapes
]


def _hostile_but_valid() -> Iterator[tuple[str, bytes, Entry]]:
    sentence = GOOD_TEXT["en"].encode()
    for name in ODD_NAMES:
        yield name, sentence, Stored(name, "en")
    deep = b"<div>" * 3000 + sentence + b"</div>" * 3000  # past Python's recursion limit
    yield "odd/deep-nesting.html", b"<html><body>" + deep + b"</body></html>", Stored("odd/deep-nesting.html", "en")
    yield "odd/unclosed-tags.html", b"<p><b><i>" + sentence + b"<table><tr><td>", Stored("odd/unclosed-tags.html", "en")
    yield "odd/pdf-owner-password-only.pdf", _pdf(GOOD_TEXT["en"], StandardEncryption("", ownerPassword="owner")), \
        Stored("odd/pdf-owner-password-only.pdf", "en")
    yield "odd/utf32-bom.txt", codecs.BOM_UTF32_LE + GOOD_TEXT["de"].encode("utf-32-le"), Stored(
        "odd/utf32-bom.txt", "de")
    yield "odd/pdf-title-with-nul.pdf", pdf_bytes([("Helvetica", [GOOD_TEXT["en"]])], title="Manual\x00\x00"), \
        Stored("odd/pdf-title-with-nul.pdf", "en")
    yield "odd/crlf-and-cr.md", GOOD_TEXT["en"].replace(". ", ".\r\n\r").encode(), Stored("odd/crlf-and-cr.md", "en")
    yield ("odd/unclosed-front-matter.md", b"---\ntitle: never closed\n" + sentence, Stored(
        "odd/unclosed-front-matter.md", "en"))
    yield "odd/nested-traversal-member.docx", _with_members(_docx([("", GOOD_TEXT["en"])]), {
        "../../outside.txt": b"escape"}), Stored("odd/nested-traversal-member.docx", "en")


def _big_line(max_bytes: int) -> tuple[str, bytes, Entry]:
    """The 10 MB single-line file: stored when it fits ``max_bytes``, else refused as oversize."""
    path, line = "odd/big-single-line.txt", BIG_LINE.encode()
    data = (line * (BIG_BYTES // len(line) + 1))[:BIG_BYTES].rstrip()
    if len(data) <= max_bytes:
        return path, data, Stored(path, "en")
    return path, data, Failed(path, f"{len(data)} bytes is over the limit of {max_bytes}; raise it with --max-bytes")


# --- broken files: must fail, naming the problem --------------------------------------------------

def _broken_pdfs() -> Iterator[tuple[str, bytes, str]]:
    good = _pdf(GOOD_TEXT["en"])
    yield "pdf/truncated-to-header.pdf", good[:9], "corrupt or truncated PDF"
    yield "pdf/truncated-to-100-bytes.pdf", good[:100], "corrupt or truncated PDF"
    yield "pdf/garbage-after-header.pdf", b"%PDF-1.7\n" + bytes(range(1, 256)) * 40, "corrupt or truncated PDF"
    yield "pdf/encrypted-user-password.pdf", _pdf(GOOD_TEXT["en"], "secret"), "encrypted PDF; decrypt it"
    yield "pdf/scanned-no-text-layer.pdf", scanned_pdf_bytes(), "no text layer .*OCR"
    yield "pdf/only-spaces.pdf", _pdf("      "), "no text layer"
    yield "pdf/png-inside.pdf", PNG_BYTES, "not a PDF .*looks like a PNG image"
    yield "pdf/empty.pdf", b"", r"empty file \(0 bytes\)"
    yield "pdf/header-after-1kib.pdf", b" " * 2048 + good, r"not a PDF \(no %PDF header\)"
    yield "pdf/all-nul.pdf", b"\x00" * 4096, r"not a PDF \(no %PDF header\)"
    yield "pdf/docx-inside.pdf", _docx([("", "x")]), r"not a PDF .*looks like a ZIP archive"


def _broken_docx(max_bytes: int) -> Iterator[tuple[str, bytes, str]]:
    good = _docx([("", GOOD_TEXT["en"])])
    yield "docx/zip-bomb.docx", _zip_bomb(UNZIP_FACTOR * max_bytes + (1 << 20)), "zip bomb"
    yield "docx/lying-sizes-bomb.docx", _lying_bomb(), "corrupt or truncated DOCX"
    yield "docx/encrypted-member.docx", _odd_member(flags=0x1), "is encrypted; save the document again"
    yield "docx/unknown-compression.docx", _odd_member(method=99), "compression method 99"
    yield "docx/zip-not-ooxml.docx", _zip({"hello.txt": b"hello"}), "corrupt or truncated DOCX"
    yield "docx/spreadsheet.docx", _xlsx(), "not a Word document but .*spreadsheetml"
    yield "docx/truncated.docx", good[: len(good) // 2], "corrupt or truncated DOCX"
    yield "docx/empty.docx", b"", r"empty file \(0 bytes\)"
    yield "docx/plain-text.docx", b"just some text", r"not a DOCX \(no ZIP header\)"
    yield "docx/ole-encrypted.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "old binary Office file"
    yield "docx/pdf-inside.docx", _pdf("x"), r"not a DOCX .*looks like a PDF"
    yield "docx/billion-laughs.docx", _docx_xml(_BILLION_LAUGHS), "not a readable Word document"
    yield "docx/malformed-xml.docx", _docx_xml(b"<w:document><w:body><w:p>"), "not a readable Word document"
    yield "docx/empty-body.docx", _docx([]), "no text"
    yield "docx/missing-document-part.docx", _without(good, "word/document.xml"), "corrupt or truncated DOCX"


def _broken_text() -> Iterator[tuple[str, bytes, str]]:
    sentence = GOOD_TEXT["en"].encode()
    yield "text/nul-bytes.txt", sentence[:20] + b"\x00\x00" + sentence[20:], r"NUL byte at offset 20"
    yield "text/latin-1.txt", "Größe und Gewicht: 48 kg, Maße über 1 m.".encode("latin-1"), r"not valid utf-8 at byte 2"
    yield "text/utf-16-without-bom.txt", GOOD_TEXT["de"].encode("utf-16-le"), "NUL byte at offset 1"
    yield "text/utf-16-bom-with-nul.txt", codecs.BOM_UTF16_LE + "ab\x00cd".encode("utf-16-le"), "NUL character"
    yield "text/utf-8-bom-with-nul.txt", codecs.BOM_UTF8 + sentence + b"\x00", "NUL character"
    yield ("text/broken-utf-8-mid-file.txt", sentence * 50 + b"\xff\xfe\xfa" + sentence,
           f"not valid utf-8 at byte {50 * len(sentence)}")
    yield "text/truncated-multibyte.txt", GOOD_TEXT["ja"].encode()[:-1], "not valid utf-8"
    yield "text/cesu-surrogate.txt", b"a \xed\xa0\x80 b", "not valid utf-8 at byte 2"
    yield "text/overlong-slash.txt", b"a \xc0\xaf b", "not valid utf-8 at byte 2"
    yield "text/empty.txt", b"", r"empty file \(0 bytes\)"
    yield "text/whitespace-only.txt", b" \t\r\n\x0b\x0c \n" * 100, r"no text \(only whitespace\)"
    yield "text/bom-only.txt", codecs.BOM_UTF8, r"no text \(only whitespace\)"
    yield "text/png-inside.txt", PNG_BYTES, "binary content .*looks like a PNG image"
    yield "text/gzip-inside.txt", _gzip(sentence), "binary content .*looks like a gzip archive"


def _broken_markup() -> Iterator[tuple[str, bytes, str]]:
    body = GOOD_TEXT["en"].encode()
    yield "md/invalid-yaml.md", b"---\ntitle: [unclosed\nkey: : :\n---\n" + body, "invalid YAML front matter"
    yield "md/front-matter-a-list.md", b"---\n- a\n- b\n---\n" + body, "front matter must be a YAML mapping"
    yield "md/python-object-tag.md", b"---\nx: !!python/object/apply:os.system ['true']\n---\n" + body, \
        "invalid YAML front matter"
    yield "md/yaml-alias-bomb.md", _yaml_bomb() + body, "front matter expands to more than"
    yield "md/yaml-past-recursion-limit.md", b"---\na: " + b"[" * 800 + b"]" * 800 + b"\n---\n" + body, \
        "front matter nests too deeply"
    yield "md/yaml-100-levels.md", b"---\na: " + b"[" * 100 + b"]" * 100 + b"\n---\n" + body, \
        "front matter nests too deeply"
    yield "md/nul-in-yaml.md", b'---\ntitle: "a\\0b"\n---\n' + body, "NUL character"
    yield "md/front-matter-only.md", b"---\ntitle: Nothing else\n---\n", "no text"
    yield "md/gzip-inside.md", _gzip(body), "binary content .*looks like a gzip archive"
    yield "html/no-body.html", b"<html><head><title>Empty</title></head></html>", "no text"
    yield "html/doctype-only.html", b"<!DOCTYPE html>", "no text"
    yield "html/script-and-style-only.html", b"<script>alert(1)</script><style>p{}</style><!-- c -->", "no text"
    yield "html/unknown-charset.html", b"<meta charset='x-no-such-charset'><p>" + body, "unknown text encoding"
    yield "html/lying-charset.html", b"<meta charset=utf-8><p>" + "Größe".encode("latin-1"), "not valid utf-8"
    yield "html/nul-bytes.html", b"<p>a\x00b</p>", "NUL byte at offset 4"
    yield "html/pdf-inside.html", _pdf("x"), "binary content|not valid utf-8"


def _broken_links(root: Path) -> Iterator[tuple[str, str]]:
    """Make the special files (symlinks, a FIFO) and yield ``(path, reason)`` for each."""
    fs = root / "fs"
    fs.mkdir()
    os.symlink("loop-b.md", fs / "loop-a.md")
    os.symlink("loop-a.md", fs / "loop-b.md")
    yield "fs/loop-a.md", "Too many levels of symbolic links"
    yield "fs/loop-b.md", "Too many levels of symbolic links"
    os.symlink("self.txt", fs / "self.txt")
    yield "fs/self.txt", "Too many levels of symbolic links"
    os.symlink("missing/target.md", fs / "dangling.md")
    yield "fs/dangling.md", "broken symlink"
    os.symlink("/dev/zero", fs / "dev-zero.txt")
    yield "fs/dev-zero.txt", "not a regular file"
    os.mkfifo(fs / "fifo.txt")
    yield "fs/fifo.txt", "not a regular file"


def _skipped(root: Path) -> Iterator[Skipped]:
    (root / "skip").mkdir()
    (root / "skip" / "image.png").write_bytes(PNG_BYTES)
    yield Skipped("skip/image.png", "unsupported extension")
    (root / "skip" / "no-extension").write_bytes(b"text")
    yield Skipped("skip/no-extension", "unsupported extension")
    (root / "skip" / ".hidden.md").write_bytes(b"hidden")
    yield Skipped("skip/.hidden.md", "hidden")
    os.symlink(".", root / "skip" / "loop-dir.md")
    yield Skipped("skip/loop-dir.md", "directory symlink")
    os.symlink("../good/en-guide.md", root / "skip" / "alias.md")
    yield Skipped("skip/alias.md", "a file symlink is loaded once, under its target's URI")


def build_corpus(root: Path, max_bytes: int = MAX_BYTES) -> Corpus:
    """Write the corpus under ``root`` (created, must not exist); return what ingesting it with ``max_bytes``
    (``--max-bytes``, ``IngestConfig.max_bytes``) must report."""
    root.mkdir(parents=True)
    entries: list[Entry] = []
    for path, data, entry in [*_good(), *_hostile_but_valid(), _big_line(max_bytes)]:
        _write(root, path, data)
        entries.append(entry)
    broken = [*_broken_pdfs(), *_broken_docx(max_bytes), *_broken_text(), *_broken_markup()]
    for path, data, reason in broken:
        _write(root, path, data)
        entries.append(Failed(path, reason))
    entries += [Failed(path, reason) for path, reason in _broken_links(root)]
    entries += list(_skipped(root))
    return Corpus(root, tuple(entries))


def _write(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- byte builders ---------------------------------------------------------------------------------

def _pdf(text: str, encrypt: str | StandardEncryption | None = None) -> bytes:
    if isinstance(encrypt, str) or encrypt is None:
        return pdf_bytes([("Helvetica", [text])], encrypt=encrypt)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=encrypt, invariant=True)
    pdf.setFont("Helvetica", 12)
    pdf.drawString(72, 720, text)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


# ZIP members carry a time; a fixed one makes the same corpus byte for byte on every run.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(_member(name), data)
    return buffer.getvalue()


def _docx(paragraphs: list[tuple[str, str]]) -> bytes:
    """``docx_bytes`` re-packed with fixed member times."""
    return _zip(_members(docx_bytes(paragraphs)))


def _members(docx: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _with_members(docx: bytes, extra: dict[str, bytes]) -> bytes:
    return _zip({**_members(docx), **extra})


def _without(docx: bytes, member: str) -> bytes:
    return _zip({name: data for name, data in _members(docx).items() if name != member})


def _docx_xml(document_xml: bytes) -> bytes:
    """A sound DOCX package whose ``word/document.xml`` is replaced."""
    return _with_members(_docx([("", "placeholder")]), {"word/document.xml": document_xml})


_W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE w:document [\n<!ENTITY a "ha">\n'
    + b"".join(b'<!ENTITY %c "%s">\n' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(9))
    + b"]>\n<w:document " + _W + b"><w:body><w:p><w:r><w:t>&j;</w:t></w:r></w:p></w:body></w:document>"
)


def _xlsx() -> bytes:
    types = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
             b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
             b'spreadsheetml.sheet.main+xml"/></Types>')
    rels = (b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            b'officeDocument" Target="xl/workbook.xml"/></Relationships>')
    workbook = b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'
    return _zip({"[Content_Types].xml": types, "_rels/.rels": rels, "xl/workbook.xml": workbook})


def _zip_bomb(size: int) -> bytes:
    """A DOCX whose document part honestly inflates to ``size`` zero bytes (about 1000:1)."""
    buffer = io.BytesIO(_docx([("", "bomb")]))
    with (zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive,
          archive.open(_member("word/media/zeros.bin"), "w", force_zip64=True) as member):
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            member.write(block)
    return buffer.getvalue()


def _lying_bomb() -> bytes:
    """A 1 MB DOCX whose document part declares 100 bytes but inflates to 1 GiB (the headers lie)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(bytes(1 << 20))
    compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh, so each further MiB of zeros deflates identically.
    mebibyte = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    payload = mebibyte * 1024 + compressor.flush()
    return _raw_docx(_RawMember("word/document.xml", payload, crc=0, size=100))


def _odd_member(flags: int = 0, method: int = 8) -> bytes:
    """A DOCX whose document part has the given ZIP flag bits and compression method."""
    member = _deflated("word/document.xml", _members(_docx([("", "x")]))["word/document.xml"])
    return _raw_docx(_RawMember(member.name, member.data, member.crc, member.size, flags, method))


@dataclass(frozen=True, slots=True)
class _RawMember:
    name: str
    data: bytes  # raw deflate data
    crc: int
    size: int  # declared uncompressed size
    flags: int = 0
    method: int = zipfile.ZIP_DEFLATED


def _deflated(name: str, data: bytes) -> _RawMember:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return _RawMember(name, compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data))


def _raw_docx(document: _RawMember) -> bytes:
    """A sound DOCX package written by hand with ``document`` as its document part."""
    parts = _members(_docx([("", "x")]))
    return _raw_zip([*(_deflated(n, d) for n, d in parts.items() if n != document.name), document])


def _raw_zip(members: list[_RawMember]) -> bytes:
    """A ZIP written by hand, so that sizes, flags and methods can lie."""
    local, central = b"", b""
    for m in members:
        name = m.name.encode()
        fields = struct.pack("<HHHHHIII", 20, m.flags, m.method, 0, 0, m.crc, len(m.data), m.size)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, len(local)) + name)
        local += b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name + m.data
    count = len(members)
    return local + central + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(central), len(local), 0)


def _yaml_bomb() -> bytes:
    """Front matter of nine alias levels, ten references each: 10^9 strings once expanded."""
    lines = [b'---\na0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [b"a%d: &a%d [%s]" % (i, i, b", ".join([b"*a%d" % (i - 1)] * 10)) for i in range(1, 9)]
    return b"\n".join(lines) + b"\n---\n"


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


# --- a subprocess with its peak memory -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Measured:
    """A finished subprocess: exit code, output, wall time and its peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


def run_measured(argv: list[str], env: dict[str, str], timeout: float = 600.0) -> Measured:
    """Run ``argv`` and return its outcome with the peak RSS of that process (and its children) alone.

    The peak is the child's own high-water mark (``VmHWM`` in /proc, read while it runs), not ``ru_maxrss``:
    Linux carries ``ru_maxrss`` across fork and exec, so a child forked from a large test process reports at
    least the parent's size (seen: 1.5 GB for a 0.6 GB ingest late in a full test run).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        status, peak_kb = _wait4(process.pid, timeout)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; Popen must not wait again
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        seconds, peak_kb / 1024)


def _high_water_kb(pid: int) -> int:
    """The process's peak resident set (kB) since its exec, 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def _wait4(pid: int, timeout: float) -> tuple[int, int]:
    """Wait for ``pid``; return its wait status and its peak RSS in kB (VmHWM, read every 20 ms: monotone,
    so the last reading before it exits is its peak but for those last milliseconds)."""
    deadline = time.monotonic() + timeout
    peak = 0
    while time.monotonic() < deadline:
        peak = max(peak, _high_water_kb(pid))
        done, status, _ = os.wait4(pid, os.WNOHANG)
        if done:
            return status, peak
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.wait4(pid, 0)
    raise TimeoutError(f"process {pid} ran past {timeout} s and was killed")
