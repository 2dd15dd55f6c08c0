"""FileConnector over real files in tmp_path: walking, globbing, dispatch, and every bad input as ConnectorError."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from connectors.files import FileConnector
from connectors.walk import compile_glob
from rag.errors import ConnectorError
from rag.types import Document, Section
from tests.fixtures_docs import JAPANESE_FONT, PNG_BYTES, bloated_docx_bytes, docx_bytes, pdf_bytes

AS_ROOT = os.geteuid() == 0


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A small documentation tree with hidden entries, unsupported files and a directory symlink cycle."""
    root = tmp_path / "docs"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.md").write_text("# Anleitung\nSchritt eins.\n")
    (root / "b.txt").write_text("Nur Text, ganz schlicht.\n")
    (root / "c.html").write_text('<html lang="de"><title>Seite</title><h1>Kopf</h1><p>Inhalt</p></html>')
    (root / ".hidden.md").write_text("# versteckt\n")
    (root / ".git" / "config.md").write_text("# git\n")
    (root / "image.png").write_bytes(PNG_BYTES)
    (root / "notes.xyz").write_text("unbekannt\n")
    (root / "sub" / "d.pdf").write_bytes(
        pdf_bytes([("Helvetica", ["Seite eins"]), (JAPANESE_FONT, ["二ページ"])])
    )
    (root / "sub" / "deep" / "e.docx").write_bytes(docx_bytes([("Heading 1", "Kapitel"), ("", "Absatz.")]))
    (root / "sub" / "deep" / "f.md").write_text("Tief unten.\n")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    return root


def _uris(root: Path, *relative: str) -> list[str]:
    return [(root / name).resolve().as_uri() for name in relative]


def test_walk_takes_supported_files_sorted_skipping_hidden_and_directory_links(tree: Path) -> None:
    assert list(FileConnector(tree).sources()) == _uris(
        tree, "a.md", "b.txt", "c.html", "sub/d.pdf", "sub/deep/e.docx", "sub/deep/f.md"
    )


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("*.md", ["a.md", "sub/deep/f.md"]),
        ("**/*.md", ["a.md", "sub/deep/f.md"]),
        ("sub/**/*.md", ["sub/deep/f.md"]),
        ("sub/*", ["sub/d.pdf"]),
        ("[de].*", ["sub/d.pdf", "sub/deep/e.docx"]),
        (
            "**/*",
            [
                "a.md",
                "b.txt",
                "c.html",
                "image.png",
                "notes.xyz",
                "sub/d.pdf",
                "sub/deep/e.docx",
                "sub/deep/f.md",
            ],
        ),
        ("*.rst", []),
    ],
)
def test_walk_follows_the_glob(tree: Path, glob: str, expected: list[str]) -> None:
    assert list(FileConnector(tree, glob=glob).sources()) == _uris(tree, *expected)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.md", "a.md", True),
        ("*.md", "x/y/a.md", True),
        ("*.md", "a.mdx", False),
        ("**/*.md", "a.md", True),
        ("docs/*.md", "docs/x/a.md", False),
        ("docs/**", "docs/x/a.md", True),
        ("?.txt", "a.txt", True),
        ("[!a].txt", "a.txt", False),
        ("a+b(1).md", "a+b(1).md", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    assert compile_glob(pattern)(path) is matches


def test_every_supported_format_loads_with_tiling_sections(tree: Path) -> None:
    connector = FileConnector(tree)
    documents = [document for uri in connector.sources() for document in connector.load(uri)]

    assert [(d.title, d.content_type) for d in documents] == [
        ("Anleitung", "text/markdown"),
        ("b", "text/plain"),
        ("Seite", "text/html"),
        ("d", "application/pdf"),
        ("Kapitel", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("f", "text/markdown"),
    ]
    for document in documents:
        tiles = document.tiling()
        assert (tiles[0].start, tiles[-1].end) == (0, len(document.text))
        assert all(a.end == b.start for a, b in itertools.pairwise(tiles))
    pdf = documents[3]
    assert [pdf.text[s.start : s.end] for s in pdf.sections] == ["Seite eins\n", "二ページ"]
    assert documents[4].sections == (Section(0, len("Kapitel\nAbsatz."), None, ("Kapitel",)),)


def test_a_single_file_root(tree: Path) -> None:
    connector = FileConnector(tree / "b.txt", glob="*.md")  # the glob only filters walks
    (uri,) = connector.sources()
    assert connector.load(uri) == [Document(uri=uri, text="Nur Text, ganz schlicht.\n", title="b",
                                            metadata={"encoding": "utf-8", "encoding_source": "utf-8"})]


def test_a_relative_root(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    assert list(FileConnector(Path("sub")).sources()) == _uris(tree, "sub/d.pdf", "sub/deep/e.docx", "sub/deep/f.md")
    assert list(FileConnector(Path("a.md")).sources()) == _uris(tree, "a.md")


def test_a_single_unsupported_file_is_refused(tree: Path) -> None:
    with pytest.raises(ConnectorError) as caught:
        list(FileConnector(tree / "notes.xyz").sources())
    assert str(caught.value) == (
        f"{(tree / 'notes.xyz').as_uri()}: unsupported file type '.xyz'; supported: .docx, .htm, .html, .markdown, "
        ".md, .pdf, .txt; convert it to one of these"
    )


def test_an_unsupported_file_matched_by_a_glob_fails_on_load(tree: Path) -> None:
    (uri,) = FileConnector(tree, glob="*.png").sources()
    with pytest.raises(ConnectorError, match=r"image\.png: unsupported file type '\.png'; supported: "):
        FileConnector(tree, glob="*.png").load(uri)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as caught:
        list(FileConnector(tmp_path / "fehlt").sources())
    assert str(caught.value) == f"{tmp_path / 'fehlt'}: no such file or directory; check the path"


def test_symlinked_files_are_followed_and_loaded_once(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("# Echt\n")
    (tmp_path / "alias.md").symlink_to(tmp_path / "real.md")
    assert list(FileConnector(tmp_path).sources()) == _uris(tmp_path, "real.md")


def _load_error(connector: FileConnector, path: Path) -> str:
    with pytest.raises(ConnectorError) as caught:
        connector.load(path.resolve().as_uri())
    return str(caught.value).removeprefix(path.resolve().as_uri() + ": ")


def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    (tmp_path / "up").symlink_to(tmp_path, target_is_directory=True)
    (uri,) = FileConnector(tmp_path).sources()
    with pytest.raises(ConnectorError) as caught:
        FileConnector(tmp_path).load(uri)
    assert (
        str(caught.value)
        == f"{uri}: cannot read it (Too many levels of symbolic links); check the file and the disk"
    )


def test_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "weg.md").symlink_to(tmp_path / "gelöscht.md")
    (uri,) = FileConnector(tmp_path).sources()
    assert uri == (tmp_path / "gelöscht.md").as_uri()
    with pytest.raises(ConnectorError) as caught:
        FileConnector(tmp_path).load(uri)
    assert str(caught.value) == (
        f"{uri}: no such file (moved, deleted or a broken symlink); fix the link or re-list the sources"
    )


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("leer.txt", b"", "empty file (0 bytes); add content or remove it"),
        ("leer.md", b"\n \n", "no text (only whitespace); add content or remove it"),
        ("leer.pdf", b"", "empty file (0 bytes); add content or remove it"),
        (
            "nul.md",
            b"# Titel\x00",
            (
                "binary content (NUL byte at offset 7), looks like unrecognised content; "
                "this is not a text file, so check its extension"
            ),
        ),
        (
            "bild.pdf",
            PNG_BYTES,
            "not a PDF (no %PDF header), looks like a PNG image; fix the file or its extension",
        ),
        (
            "bild.docx",
            PNG_BYTES,
            "not a DOCX (no ZIP header), looks like a PNG image; fix the extension, or save it from Word as .docx",
        ),
        (
            "alt.txt",
            "Größe".encode("cp1252"),
            ("not valid utf-8 at byte 2, and 2 non-ASCII bytes are too few to detect its encoding; "
            "convert it with `iconv -f <encoding> -t utf-8`, or declare its charset"),
        ),
        (
            "geheim.pdf",
            pdf_bytes([("Helvetica", ["x"])], encrypt="pw"),
            "encrypted PDF; decrypt it (e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) and re-ingest",
        ),
    ],
)
def test_bad_files(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(data)
    assert _load_error(FileConnector(tmp_path), tmp_path / name) == reason


def test_truncated_pdf(tmp_path: Path) -> None:
    data = pdf_bytes([("Helvetica", ["abgeschnitten"])])
    (tmp_path / "kaputt.pdf").write_bytes(data[: len(data) - 200])
    assert _load_error(FileConnector(tmp_path), tmp_path / "kaputt.pdf").startswith(
        "corrupt or truncated PDF ("
    )


def test_oversize_file_names_the_limit_and_the_flag(tmp_path: Path) -> None:
    (tmp_path / "gross.txt").write_text("x" * 11)
    assert _load_error(FileConnector(tmp_path, max_bytes=10), tmp_path / "gross.txt") == (
        "11 bytes is over the limit of 10; raise it with --max-bytes (FileConnector(max_bytes=...)) or split the file"
    )


def test_zip_bomb_docx_is_bounded_by_ten_times_max_bytes(tmp_path: Path) -> None:
    (tmp_path / "bombe.docx").write_bytes(bloated_docx_bytes(3_000_000))
    message = _load_error(FileConnector(tmp_path, max_bytes=200_000), tmp_path / "bombe.docx")
    assert message.startswith("DOCX unpacks to ")
    assert message.endswith(
        " bytes, over the limit of 2000000 (a zip bomb?); if the file is genuine, raise the limit with --max-bytes"
    )
    assert (
        FileConnector(tmp_path, max_bytes=1_000_000).load((tmp_path / "bombe.docx").as_uri())[0].text
        == "klein"
    )


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "rohr.txt")
    assert list(FileConnector(tmp_path).sources()) == _uris(tmp_path, "rohr.txt")
    assert _load_error(FileConnector(tmp_path), tmp_path / "rohr.txt") == (
        "not a regular file (a FIFO, socket or device?); remove it or exclude it"
    )


@pytest.mark.skipif(AS_ROOT, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "zu.txt").write_text("privat")
    (tmp_path / "zu.txt").chmod(0)
    assert _load_error(FileConnector(tmp_path), tmp_path / "zu.txt").startswith("permission denied;")


def test_permission_error_is_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real chmod test above cannot run as root, so the OS refusal is simulated at open().
    (tmp_path / "zu.txt").write_text("privat")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert _load_error(FileConnector(tmp_path), tmp_path / "zu.txt") == (
        "permission denied; make it readable (chmod/chown) or run as a user who can read it"
    )


def test_unlistable_subdirectory_is_yielded_and_fails_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.md").write_text("# A\n")
    (tmp_path / "privat").mkdir()
    real_scandir = os.scandir

    def scandir(path: Path) -> object:
        if Path(path).name == "privat":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("connectors.walk.os.scandir", scandir)
    assert list(FileConnector(tmp_path).sources()) == _uris(tmp_path, "a.md", "privat")
    monkeypatch.setattr(Path, "iterdir", lambda self: scandir(self))
    assert _load_error(FileConnector(tmp_path), tmp_path / "privat") == (
        "permission denied; make it readable (chmod/chown) or run as a user who can read it"
    )


def test_a_directory_uri_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ordner").mkdir()
    assert _load_error(FileConnector(tmp_path), tmp_path / "ordner") == (
        "is a directory; pass it as the root to load the files inside"
    )


def test_only_file_uris_are_loaded(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as caught:
        FileConnector(tmp_path).load("https://example.org/a.md")
    assert str(caught.value) == (
        "https://example.org/a.md: not a local file:// URI; FileConnector loads only what its sources() yield"
    )


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive, got 0"):
        FileConnector(tmp_path, max_bytes=0)


def test_uris_with_spaces_and_non_ascii_round_trip(tmp_path: Path) -> None:
    (tmp_path / "Über uns 日本.md").write_text("# Über\n")
    (uri,) = FileConnector(tmp_path).sources()
    assert uri == (tmp_path / "Über uns 日本.md").as_uri()
    assert FileConnector(tmp_path).load(uri)[0].title == "Über"
