"""The chat: commands parsed into values, views rendered into a string, turns driven through the facade.

Rendering goes into ``rich.console.Console(file=io.StringIO(), width=100)``; the chat's turns run on a
real database with the fakes of tests/fakes.py. tests/test_chat_pty.py drives the real REPL in a terminal.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from rich.console import Console, RenderableType
from typer.testing import CliRunner

from rag.answer.dialogue import GenerationRequest, Passage, Reply
from rag.answer.types import Answer, Citation, Step
from rag.cli.app import app
from rag.cli.chat import Chat, ChatOptions, run_chat, run_pipe
from rag.cli.chat_commands import (
    Ask,
    Clear,
    Command,
    Export,
    Help,
    Invalid,
    OpenPassage,
    Quit,
    SetFilter,
    SetLanguage,
    ShowSources,
    TranslatePassage,
    UseCollection,
    parse,
)
from rag.cli.chat_screen import Mode, Screen
from rag.cli.export import conversation_markdown
from rag.cli.render_answer import answer_view
from rag.cli.render_chat import context_view, excerpt, sources_table
from rag.config import Config, GenerationConfig
from rag.errors import GenerationError
from rag.rosetta import Rosetta
from rag.types import Chunk, Filter, Hit
from tests.fakes import HashEncoder, ScriptedGenerator, cite_first

QUESTION = "How often must the air filter be replaced?"


@pytest.mark.parametrize(("line", "command"), [
    ("", None),
    ("   ", None),
    ("Wie oft wird der Luftfilter gewechselt?", Ask("Wie oft wird der Luftfilter gewechselt?")),
    ("/sources", ShowSources()),
    ("/SOURCES ", ShowSources()),
    ("/sources 2", Invalid("/sources takes no argument, got '2'")),
    ("/open 2", OpenPassage(2)),
    ("/open x", Invalid("/open needs a passage number from /sources, as in /open 2; got x")),
    ("/open", Invalid("/open needs a passage number from /sources, as in /open 2; got nothing")),
    ("/open 0", Invalid("/open needs a passage number from /sources, as in /open 2; got 0")),
    ("/translate 3", TranslatePassage(3)),
    ("/translate -1", Invalid("/translate needs a passage number from /sources, as in /translate 2; got -1")),
    ("/lang de", SetLanguage("de")),
    ("/lang German", SetLanguage("de")),
    ("/lang", SetLanguage(None)),
    ("/lang klingon", Invalid("/lang: not a language code or English language name: 'klingon'; "
                              "use an ISO 639-1 code such as de, ja or en")),
    ("/lang xx", Invalid("/lang: unknown language code 'xx': use an ISO 639-1 code that lingua supports, e.g. 'de'")),
    ("/collection manuals", UseCollection("manuals")),
    ("/collection", Invalid("/collection needs one collection name, as in /collection demo; got nothing")),
    ("/filter lang=de source=*.pdf", SetFilter(Filter(languages=("de",), source="*.pdf"))),
    ("/filter language=de,JA", SetFilter(Filter(languages=("de", "ja")))),
    ("/filter source='my docs/*.md'", SetFilter(Filter(source="my docs/*.md"))),
    ("/filter", SetFilter(None)),
    ("/filter colour=red lang", Invalid("/filter does not understand colour=red lang; "
                                        "write lang=de,ja and/or source=*.pdf")),
    ("/filter source='open", Invalid("/filter could not read \"source='open\" (No closing quotation); "
                                     "quote a glob with spaces in it")),
    ("/clear", Clear()),
    ("/export chat.md", Export(Path("chat.md"))),
    ("/export", Invalid("/export needs a file name, as in /export chat.md")),
    ("/help", Help()),
    ("/quit", Quit()),
    ("/exit", Quit()),
    ("/sourcs", Invalid("unknown command /sourcs; did you mean /sources? /help lists the commands")),
    ("/frobnicate", Invalid("unknown command /frobnicate; /help lists the commands")),
])
def test_lines_parse_into_commands(line: str, command: Command | None) -> None:
    assert parse(line) == command


# A small hand-built answer: [1] verified (German source), [2] unverified, [3] not cited.
def _chunk(ordinal: int, text: str, language: str, uri: str = "https://example.com/hx20") -> Chunk:
    return Chunk(f"{uri}#{ordinal}", uri, ordinal, text, 100 * ordinal, 100 * ordinal + len(text), language,
                 page=ordinal + 1, heading=("Wartung",))


FILTER_DE = _chunk(1, "Der Luftfilter wird monatlich gereinigt. Nach zwei Jahren wird er ersetzt.", "de")
FANS_EN = _chunk(0, "The fans are quiet. Expect about 35 dB at full power.", "en", "https://example.com/faq")
NOTES_JA = _chunk(0, "ファームウェアの更新中は電源を切らないでください。", "ja", "https://example.com/notes")
PASSAGES = (Passage(1, Hit(FILTER_DE, "Wartungshandbuch", 0.9)), Passage(2, Hit(FANS_EN, "FAQ", 0.5)),
            Passage(3, Hit(NOTES_JA, "Release notes", 0.2)))
VERIFIED = Citation(1, FILTER_DE.id, FILTER_DE.document_uri, "Wartungshandbuch", 2, ("Wartung",), "de",
                    FILTER_DE.text, "Nach zwei Jahren wird er ersetzt.", 141, 174, "Replace it after two years.",
                    1.0, True)
UNVERIFIED = Citation(2, FANS_EN.id, FANS_EN.document_uri, "FAQ", 1, ("Wartung",), "en", FANS_EN.text,
                      "Expect about 35 dB at full power.", 20, 53, "It is loud.", 0.41, False)
ANSWER = Answer(QUESTION, QUESTION, "en", "Replace it after two years [1]. It is loud [2].",
                (VERIFIED, UNVERIFIED), PASSAGES, (), (Step("search", 0.012, hits=3), Step("generate", 0.5)),
                "scripted")


def _render(view: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=100)
    console.print(view)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _styles(view: RenderableType, fragment: str) -> set[str]:
    """The styles of the rendered segments that hold ``fragment``."""
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    return {str(s.style) for s in console.render(view) if fragment in s.text and s.style}


def test_verified_and_unverified_citations_look_different() -> None:
    text = _render(answer_view(ANSWER))
    lines = text.splitlines()
    assert "Replace it after two years [1]. It is loud [2]." in text
    assert next(line for line in lines if "Wartungshandbuch" in line).split("│")[1:3] == [" [1] ", " ✓      "]
    assert next(line for line in lines if "FAQ" in line).split("│")[1:3] == [" [2] ", " ? 0.41 "]
    assert "scripted · search 3 hits 12 ms · generate 500 ms" in text
    assert _styles(answer_view(ANSWER), "Nach zwei") == {"bold underline"}
    assert _styles(answer_view(ANSWER), "Expect about 35 dB") == {"underline yellow"}
    assert _styles(answer_view(ANSWER), "✓") == {"green"} and _styles(answer_view(ANSWER), "? 0.41") == {"yellow"}


def test_quotes_of_one_passage_share_its_row_and_its_excerpt() -> None:
    first = dataclasses.replace(VERIFIED, quote="Der Luftfilter wird monatlich gereinigt.", quote_start=100,
                                quote_end=140)
    answer = dataclasses.replace(ANSWER, citations=(VERIFIED, first, UNVERIFIED))
    rows = [line for line in _render(answer_view(answer)).splitlines() if line.startswith("│ [")]
    assert [row.split("│")[1] for row in rows] == [" [1] ", " [2] "]
    assert _styles(answer_view(answer), "Der Luftfilter") == {"bold underline"}
    assert conversation_markdown([answer], "demo").splitlines()[11] == (
        "  > **Der Luftfilter wird monatlich gereinigt.** **Nach zwei Jahren wird er ersetzt.**")


@pytest.mark.parametrize(("passage", "quote", "line"), [
    ("请在应用中\n查看错误代码。", "查看错误代码。", "请在应用中**查看错误代码。**"),
    ("查看错误代码\n请联系客服。", "查看错误代码", "**查看错误代码**请联系客服。"),
    # Markdown closes ** after punctuation only before a space or punctuation: the space stays there.
    ("查看错误代码。\n请联系客服。", "查看错误代码。", "**查看错误代码。** 请联系客服。"),
    ("请点击\n「设置」按钮。", "「设置」按钮。", "请点击 **「设置」按钮。**"),  # ... and before a quote opening with one
    ("First line.\nSecond line.", "Second line.", "First line. **Second line.**"),  # other breaks stay spaces
    ("请在应用中\n\n查看错误代码。", "查看错误代码。", "请在应用中 **查看错误代码。**"),  # a blank line too
])
def test_export_joins_a_cjk_line_break_at_the_edge_of_a_quote(passage: str, quote: str, line: str) -> None:
    chunk = _chunk(0, passage, "zh")
    start = passage.index(quote)
    cited = Citation(1, chunk.id, chunk.document_uri, "快速入门", 1, (), "zh", passage, quote, start,
                     start + len(quote), "", 1.0, True)
    answer = Answer(QUESTION, QUESTION, "en", "See [1].", (cited,), (Passage(1, Hit(chunk, "快速入门", 0.9)),),
                    (), (), "scripted")
    assert f"  > {line}" in conversation_markdown([answer], "demo").splitlines()
    assert f"<strong>{quote}</strong>" in MarkdownIt("commonmark").render(line)  # the bold holds in Markdown


def test_sources_lists_every_passage_and_which_were_cited() -> None:
    text = _render(sources_table(ANSWER))
    rows = [line for line in text.splitlines() if line.startswith("│ [")]
    assert [row.split("│")[1:3] for row in rows] == [[" [1] ", " ✓ cited "], [" [2] ", " ? cited "], [" [3] ", "         "]]
    assert "Passages for: How often must the air filter be replaced?" in text
    assert "ファームウェアの更新中は電源を切らないでください。" in text


def test_open_shows_the_passage_between_its_neighbours_in_order() -> None:
    before = _chunk(0, "Sicherheit zuerst.", "de")
    after = _chunk(2, "Die Garantie gilt zwei Jahre.", "de")
    text = _render(context_view(PASSAGES[0], [before, FILTER_DE, after]))
    assert text.index("Sicherheit zuerst.") < text.index("Der Luftfilter wird") < text.index("Die Garantie")
    assert "▶ [1] chunk 2 · p. 2 · Wartung" in text and "  chunk 1 · p. 1 · Wartung" in text
    assert "[1] Wartungshandbuch · https://example.com/hx20" in text.splitlines()[0]


def test_export_writes_the_conversation_with_citations_as_markdown() -> None:
    follow_up = Answer("And the fans?", "How loud are the fans?", "en", "Quiet [2].", (UNVERIFIED,), PASSAGES,
                       (), (), "scripted")
    assert conversation_markdown([ANSWER, follow_up], "demo") == """\
# Rosetta conversation

Collection `demo` · 2 answers

## 1. How often must the air filter be replaced?

Replace it after two years [1]. It is loud [2].

**Sources**

- **[1]** Wartungshandbuch · https://example.com/hx20 · p. 2 · Wartung · `de` (verified)
  > Der Luftfilter wird monatlich gereinigt. **Nach zwei Jahren wird er ersetzt.**
- **[2]** FAQ · https://example.com/faq · p. 1 · Wartung · `en` (unverified, support 0.41)
  > The fans are quiet. **Expect about 35 dB at full power.**

<sub>en · scripted</sub>

## 2. And the fans?

*Searched as: How loud are the fans?*

Quiet [2].

**Sources**

- **[2]** FAQ · https://example.com/faq · p. 1 · Wartung · `en` (unverified, support 0.41)
  > The fans are quiet. **Expect about 35 dB at full power.**

<sub>en · scripted</sub>
"""


# The chat's turns, through the facade on a real database.
def _open(config: Config, demo: Path, generator: ScriptedGenerator) -> Rosetta:
    # No repair turns: the scripts below hold exactly the replies each test needs.
    config = dataclasses.replace(config, generation=GenerationConfig(repair=False))
    rosetta = Rosetta.open(config, encoder=HashEncoder(dim=64), generator=generator)
    rosetta.ingest([demo / "de", demo / "en"])
    return rosetta


@pytest.fixture
def scripted() -> ScriptedGenerator:
    return ScriptedGenerator([])


@pytest.fixture
def rosetta(config: Config, demo_copy: Path, scripted: ScriptedGenerator) -> Iterator[Rosetta]:
    with _open(config, demo_copy, scripted) as opened:
        yield opened


def _chat(rosetta: Rosetta, mode: Mode = Mode.TERMINAL) -> tuple[Chat, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    screen = Screen(Console(file=out, width=100), Console(file=err, width=100), mode)
    return Chat(rosetta.session(), screen), out, err


def test_a_session_asks_follows_up_and_runs_commands(rosetta: Rosetta, scripted: ScriptedGenerator,
                                                      tmp_path: Path) -> None:
    scripted.script += [cite_first, Reply("How often must the HX-20 air filter be cleaned?"), cite_first]
    chat, out, err = _chat(rosetta)
    for line in [QUESTION, "And cleaned?", "/sources", "/open 1", "/open 99", f"/export {tmp_path / 'c.md'}"]:
        assert chat.handle(line)
    second = chat.session.answers[1]
    assert second.standalone == "How often must the HX-20 air filter be cleaned?"
    text = out.getvalue()
    assert text.count("Sources") == 2 and "Passages for: And cleaned?" in text
    assert f"▶ [1] chunk {second.passages[0].hit.chunk.ordinal + 1}" in text
    assert f"exported 2 answers to {tmp_path / 'c.md'}" in text
    assert err.getvalue() == f"error: the last answer has no passage [99]; it has [1] to [{len(second.passages)}] " \
                             "(see /sources)\n"
    assert (tmp_path / "c.md").read_text().startswith("# Rosetta conversation\n\nCollection `test` · 2 answers")
    assert not chat.handle("/quit") and chat.failures == 1


def test_state_commands_change_what_the_next_question_uses(rosetta: Rosetta, scripted: ScriptedGenerator) -> None:
    scripted.script += [cite_first]
    chat, out, err = _chat(rosetta)
    for line in ["/lang de", "/filter lang=en", "/collection nowhere", "/sources"]:
        assert chat.handle(line)
    assert (chat.session.language, chat.session.where, chat.prompt()) == ("de", Filter(languages=("en",)),
                                                                          "test (de) [lang=en]> ")
    chat.handle(QUESTION)
    (answer,) = chat.session.answers
    assert answer.language == "de" and {p.hit.chunk.language for p in answer.passages} == {"en"}
    chat.handle("/clear")
    chat.handle("/filter")
    assert chat.session.answers == [] and chat.session.where is None
    assert "answers in German (de)" in out.getvalue() and "filter cleared" in out.getvalue()
    assert err.getvalue().splitlines()[0].startswith("error: collection 'nowhere' does not exist (collections: test)")
    assert err.getvalue().splitlines()[1] == "error: no answer yet; ask a question first"


def test_translate_without_a_language_model_says_what_to_do(config: Config, demo_copy: Path) -> None:
    extractive_like = ScriptedGenerator([cite_first], is_llm=False, name="extractive")
    with _open(config, demo_copy, extractive_like) as rosetta:
        chat, _, err = _chat(rosetta)
        chat.handle(QUESTION)
        chat.handle("/translate 1")
    assert err.getvalue() == (
        "error: /translate needs a language model, but the generator is extractive; set OPENAI_API_KEY or "
        "COHERE_API_KEY (or ROSETTA_LLM_BASE_URL for a local server) and restart with --generator openai\n")


def test_translate_renders_a_passage_in_the_answer_language(rosetta: Rosetta, scripted: ScriptedGenerator) -> None:
    def translation(request: GenerationRequest) -> Reply:
        assert "English" in request.messages[0].content and "Luftfilter" in request.messages[0].content
        return Reply("Clean the air filter every month.")

    scripted.script += [cite_first, translation]
    chat, out, _ = _chat(rosetta)
    chat.handle(QUESTION)
    number = next(p.number for p in chat.session.answers[0].passages if "Luftfilter" in p.hit.chunk.text)
    chat.handle(f"/translate {number}")
    assert f"[{number}] Heliox HX-20 Heimspeicher – Wartungshandbuch · de → en" in out.getvalue()
    assert "Clean the air filter every month." in out.getvalue()


def test_an_interrupted_answer_is_not_kept_and_the_next_one_works(rosetta: Rosetta, scripted: ScriptedGenerator
                                                                  ) -> None:
    def interrupted(request: GenerationRequest) -> Reply:
        raise KeyboardInterrupt  # what Ctrl-C raises while the model is writing

    scripted.script += [cite_first, Reply("How often is the air filter cleaned?"), interrupted,
                        Reply("How often is the air filter cleaned?"), cite_first]
    chat, _, _ = _chat(rosetta)
    chat.handle(QUESTION)
    with pytest.raises(KeyboardInterrupt):
        chat.handle("And cleaned?")
    assert len(chat.session.answers) == 1
    chat.handle("And cleaned?")
    assert len(chat.session.answers) == 2


def test_a_failing_turn_is_one_red_line_and_the_chat_goes_on(rosetta: Rosetta, scripted: ScriptedGenerator
                                                              ) -> None:
    def refused(request: GenerationRequest) -> Reply:
        raise GenerationError("the server refused the key (401); check OPENAI_API_KEY")

    scripted.script += [refused, refused, cite_first]
    chat, _, err = _chat(rosetta)
    assert chat.handle(QUESTION) and chat.session.answers == []
    assert err.getvalue() == "error: the server refused the key (401); check OPENAI_API_KEY\n"
    chat.debug = True
    chat.handle(QUESTION)
    assert "Traceback" in err.getvalue() and err.getvalue().endswith("check OPENAI_API_KEY\n")
    chat.handle(QUESTION)
    assert len(chat.session.answers) == 1 and chat.failures == 2


def test_pipe_mode_prints_text_or_json_lines_and_fails_on_errors(rosetta: Rosetta, scripted: ScriptedGenerator
                                                                 ) -> None:
    scripted.script += [cite_first, cite_first]
    chat, out, err = _chat(rosetta, Mode.TEXT)
    assert run_pipe(chat, [QUESTION + "\n", "\n", "/open 42\n"]) == 1
    first = chat.session.answers[0]
    cited = first.citations[0]
    checked = "verified" if cited.verified else f"unverified ({cited.support:.2f})"
    assert out.getvalue().startswith(f"{first.text}\n\n[{cited.marker}] {cited.title} · ")
    assert f"\n    {checked}: “{excerpt(cited.quote, 400)}”\n" in out.getvalue()
    assert err.getvalue() == f"error: the last answer has no passage [42]; it has [1] to [{len(first.passages)}] " \
                             "(see /sources)\n"
    chat, out, err = _chat(rosetta, Mode.JSON)
    assert run_pipe(chat, [QUESTION, "/sources"]) == 0
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["text"] == chat.session.answers[0].text and "Passages for:" in err.getvalue()


def test_a_bad_language_option_is_one_line(rosetta: Rosetta) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_chat(rosetta, ChatOptions(language="klingon", tty=False), Console(file=out), Console(file=err), [])
    assert code == 2 and err.getvalue() == ("error: --lang: /lang: not a language code or English language name: "
                                            "'klingon'; use an ISO 639-1 code such as de, ja or en\n")


def test_chat_command_in_a_pipe_with_the_extractive_generator(config: Config, demo_copy: Path) -> None:
    assert config.db.url is not None
    env = {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "ROSETTA_ENCODER": "e5-small",
           "ROSETTA_DATA_DIR": str(config.db.data_dir), "ROSETTA_GENERATOR": "extractive", "NO_COLOR": "1"}
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(demo_copy / "de"), "--collection", "demo"], env=env).exit_code == 0
    result = runner.invoke(app, ["chat", "--collection", "demo", "--no-tty", "--json"], env=env,
                           input=f"{QUESTION}\n/lang de\n{QUESTION}\n")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert (first["language"], second["language"], first["generator"]) == ("en", "de", "extractive")
    assert first["citations"] and first["citations"][0]["language"] == "de"
    text = runner.invoke(app, ["chat", "--collection", "demo", "--no-tty"], env=env, input="Luftfilter?\n")
    assert text.exit_code == 0 and "\n[1] Heliox HX-20 Heimspeicher – Wartungshandbuch · " in text.stdout
    assert "\n    verified: “" in text.stdout and "Luftfilter" in text.stdout
    missing = runner.invoke(app, ["chat", "--collection", "nowhere", "--no-tty"], env=env, input="Luftfilter?\n")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: collection 'nowhere' does not exist")
