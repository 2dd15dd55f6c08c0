"""``rosetta chat``: a conversation over one collection, with slash commands (see ``rag/cli/chat_commands.py``).

In a terminal it reads lines with readline (history kept in the data directory), streams each answer and
draws its citations; Ctrl-C stops the answer being written (it is not kept), Ctrl-D quits. In a pipe it
prints each answer as text or as one JSON line. A failing turn is one red line and the chat goes on.
"""

from __future__ import annotations

from collections.abc import Generator as Gen
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from rag.answer.conversation import Session
from rag.answer.dialogue import Passage
from rag.answer.types import Answer
from rag.cli.chat_commands import (
    COMMANDS,
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
    describe_filter,
    parse,
    parse_language,
)
from rag.cli.chat_screen import Mode, Screen
from rag.cli.export import conversation_markdown
from rag.cli.render_chat import context_view, help_table, sources_table, translation_view
from rag.cli.terminal import printable
from rag.errors import RagError
from rag.lang import language_name
from rag.rosetta import Rosetta
from rag.types import Filter

# Lines of input history kept between runs.
HISTORY_LINES = 1000
HISTORY_FILE = "chat_history"


class Refused(Exception):
    """A command that cannot run now (no answer yet, no such passage); the message says what to do."""


@dataclass(slots=True)
class Chat:
    """The chat's state: the session (collection, language, filter, answers), the screen, and options."""

    session: Session[Rosetta]
    screen: Screen
    debug: bool = False
    failures: int = 0

    @property
    def rosetta(self) -> Rosetta:
        """The facade this chat asks."""
        return self.session.rosetta

    @property
    def collection(self) -> str:
        """The collection being asked."""
        return self.session.collection or self.rosetta.config.collection

    def prompt(self) -> str:
        """``demo> ``, with the answer language and filter when they are set."""
        language = f" ({self.session.language})" if self.session.language else ""
        where = f" [{describe_filter(self.session.where)}]" if self.session.where else ""
        return f"{self.collection}{language}{where}> "

    def handle(self, line: str) -> bool:
        """Run one line (a question or a command); False when it asks to quit."""
        command = parse(line)
        if isinstance(command, Quit):
            return False
        if command is not None:
            self._guarded(command)
        return True

    def _guarded(self, command: Command) -> None:
        try:
            self.run(command)
        except (RagError, Refused) as exc:
            self.fail(str(exc))

    def fail(self, message: str) -> None:
        """One red line (after the traceback with --debug); the chat goes on."""
        if self.debug:
            self.screen.err.print_exception()
        self.failures += 1
        self.screen.error(message)

    def run(self, command: Command) -> None:
        """Carry out a command; RagError and Refused say what went wrong."""
        match command:
            case Ask(text):
                self.ask(text)
            case ShowSources():
                self.screen.show(sources_table(self._last()))
            case OpenPassage(number):
                passage = self._passage(number)
                self.screen.show(context_view(passage, self.rosetta.context(passage.hit)))
            case TranslatePassage(number):
                self.translate(number)
            case SetLanguage(language):
                self.session.language = language
                self.screen.note(f"answers in {language_name(language)} ({language})" if language
                                 else "answers in each question's language")
            case UseCollection(name):
                self.use_collection(name)
            case SetFilter(where):
                self.set_filter(where)
            case Clear():
                self.session.clear()
                self.screen.note("conversation cleared; the next question starts fresh")
            case Export(path):
                self.export(path)
            case Help():
                self.screen.show(help_table())
            case Invalid(message):
                raise Refused(message)

    def ask(self, question: str) -> None:
        """Answer a question or follow-up, streaming it; the answer is kept only once it is complete."""
        streamed: list[str] = []
        with closing(self._pieces(question)) as pieces:
            for piece in pieces:
                if isinstance(piece, str):
                    streamed.append(piece)
                    self.screen.delta(piece)
                else:
                    self.screen.answer(piece, "".join(streamed))

    def _pieces(self, question: str) -> Gen[str | Answer, None, None]:
        # The session keeps an answer only once it is complete; closing() releases the model's stream on Ctrl-C.
        return self.session.stream(question)

    def _last(self) -> Answer:
        if not self.session.answers:
            raise Refused("no answer yet; ask a question first")
        return self.session.answers[-1]

    def _passage(self, number: int) -> Passage:
        answer = self._last()
        try:
            return answer.passage(number)
        except KeyError:
            raise Refused(f"the last answer has no passage [{number}]; it has [1] to [{len(answer.passages)}] "
                          f"(see /sources)") from None

    def translate(self, number: int) -> None:
        """Passage ``number`` in the answer language, by the configured language model."""
        passage = self._passage(number)
        translator = self.rosetta.translator(self.collection)
        if translator is None:
            raise Refused(f"/translate needs a language model, but the generator is "
                          f"{self.rosetta.generator(self.collection).name}; set OPENAI_API_KEY or COHERE_API_KEY "
                          f"(or ROSETTA_LLM_BASE_URL for a local server) and restart with --generator openai")
        language = self.session.language or self._last().language
        if passage.hit.chunk.language == language:
            self.screen.note(f"passage [{number}] is already in {language_name(language)}; /open {number} shows it")
            return
        text = translator.translate(passage.hit.chunk.text, language)
        self.screen.show(translation_view(passage, language, text))

    def use_collection(self, name: str) -> None:
        """Ask ``name`` from now on (it must exist)."""
        self.rosetta.retriever(name)  # raises naming the fix when it does not exist
        self.session.collection = name
        self.screen.note(f"now asking collection {name!r}")

    def set_filter(self, where: Filter | None) -> None:
        """Search only passages matching ``where`` (None: all)."""
        self.session.where = where
        self.screen.note(f"filter: {describe_filter(where)}" if where else "filter cleared")

    def export(self, path: Path) -> None:
        """Write the conversation as Markdown to ``path``."""
        answers = self.session.answers
        if not answers:
            raise Refused("nothing to export yet; ask a question first")
        try:
            path.write_text(conversation_markdown(answers, self.collection), encoding="utf-8")
        except OSError as exc:
            raise Refused(f"could not write {path} ({exc.strerror}); give a path in a writable directory") from exc
        self.screen.note(f"exported {len(answers)} answer{'s' if len(answers) > 1 else ''} to {path}")

    def welcome(self) -> None:
        """What is being asked, and how to use the chat; a missing collection is one red line naming the fix."""
        try:
            self.rosetta.retriever(self.collection)
            status = next((c for c in self.rosetta.status().collections if c.name == self.collection), None)
        except RagError as exc:
            self.fail(str(exc))
            return
        if status is None:
            return
        languages = ", ".join(sorted(status.document_languages))
        self.screen.show(Text.assemble(
            ("Rosetta chat ", "bold"), f"over {self.collection!r}: {status.documents} documents in {languages}, "
            f"{status.chunks} passages.\n",
            ("Ask in any language; /help lists the commands, Ctrl-C stops an answer, Ctrl-D quits.", "dim")))


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """How ``rosetta chat`` was started."""

    language: str | None = None
    k: int | None = None
    where: Filter | None = None
    debug: bool = False
    tty: bool = True
    as_json: bool = False


def _complete(text: str, state: int) -> str | None:
    names = [usage.split()[0] for usage, _ in COMMANDS]
    matches = [name for name in names if name.startswith(text)] if text.startswith("/") else []
    return matches[state] if state < len(matches) else None


@contextmanager
def remembered(path: Path) -> Iterator[None]:
    """Input history loaded from ``path``, each new line appended to it; Tab completes commands."""
    try:
        import readline
    except ImportError:  # Windows has no readline: input() still works, without history
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    readline.set_history_length(HISTORY_LINES)
    readline.read_history_file(path)
    readline.write_history_file(path)  # keeps the file to HISTORY_LINES lines
    readline.set_completer_delims(" \t\n")
    readline.set_completer(_complete)
    readline.parse_and_bind("tab: complete")
    before = readline.get_current_history_length()
    try:
        yield
    finally:
        added = readline.get_current_history_length() - before
        if added > 0:
            readline.append_history_file(added, path)


def run_terminal(chat: Chat, history: Path) -> None:
    """The interactive loop: Ctrl-C stops the current answer (or clears the line), Ctrl-D quits."""
    chat.welcome()
    with remembered(history):
        while True:
            try:
                line = input(printable(chat.prompt()))
            except EOFError:
                chat.screen.out.print()
                return
            except KeyboardInterrupt:
                chat.screen.out.print()
                continue
            try:
                if not chat.handle(line):
                    return
            except KeyboardInterrupt:
                chat.screen.stopped()


def run_pipe(chat: Chat, lines: Iterable[str]) -> int:
    """Each line a question or command; 1 when any turn failed, else 0."""
    for line in lines:
        if not chat.handle(line):
            break
    return 1 if chat.failures else 0


def run_chat(rosetta: Rosetta, options: ChatOptions, out: Console, err: Console, lines: Iterable[str]) -> int:
    """Run a chat over the configured collection; returns the exit code."""
    language = parse_language(options.language or "")
    if isinstance(language, Invalid):
        Screen(out, err).error(f"--lang: {language.message}")
        return 2
    mode = Mode.TERMINAL if options.tty else Mode.JSON if options.as_json else Mode.TEXT
    session = rosetta.session(language=language.language, where=options.where, k=options.k)
    chat = Chat(session, Screen(out, err, mode), options.debug)
    if mode is not Mode.TERMINAL:
        return run_pipe(chat, lines)
    run_terminal(chat, rosetta.config.db.data_dir / HISTORY_FILE)
    return 0
