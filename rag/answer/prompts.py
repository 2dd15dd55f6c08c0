"""Renders the templates in ``prompts/`` into messages: rules, fenced passages, tool results, repairs.

Templates are plain text with ``$name`` placeholders (string.Template). Values are substituted once, so
text from documents is never read as a template. Passages are fenced between ``<passage>`` tags, and a
closing tag inside a document is defused so a document cannot end its own fence.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from rag.answer.dialogue import Message, Passage, Role, ToolSpec

_FENCE = re.compile(r"<\s*/?\s*passage", re.IGNORECASE)


@cache
def template(name: str) -> Template:
    """The template ``prompts/<name>.txt``, read once."""
    text = resources.files("prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return Template(text.strip("\n"))


def render(name: str, **values: str) -> str:
    """Fill template ``name``; a missing placeholder raises KeyError naming it."""
    return template(name).substitute(values)


def _attribute(value: str) -> str:
    return " ".join(value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").split())


def location(passage: Passage) -> str:
    """Where a passage is: ``p. 3 › Wartung › Filter``, or the heading path, or ''."""
    chunk = passage.hit.chunk
    parts = ([f"p. {chunk.page}"] if chunk.page else []) + list(chunk.heading)
    return " › ".join(parts)


def passage_block(passages: Sequence[Passage]) -> str:
    """Passages fenced as data with number, source language, title and location; or the no-passages line."""
    if not passages:
        return render("no_passages")
    return "\n\n".join(
        render("passage", number=str(p.number), language=p.hit.chunk.language, title=_attribute(p.hit.title),
               location=_attribute(location(p)), text=_FENCE.sub(lambda m: m.group(0).replace("<", "‹"),
                                                                  p.hit.chunk.text))
        for p in passages)


def system_message(language: str, language_name: str, tools: bool) -> Message:
    """The rules: only the passages, the answer language, citations, fenced data."""
    rule = render("tools_rule") if tools else ""
    return Message(Role.SYSTEM, render("system", language=language, language_name=language_name,
                                       tools_rule=rule).rstrip())


def question_message(question: str, passages: Sequence[Passage], language_name: str) -> Message:
    """The user turn: fenced passages, then the question."""
    return Message(Role.USER, render("question", passages=passage_block(passages), question=question,
                                     language_name=language_name))


def tool_result(query: str, passages: Sequence[Passage]) -> str:
    """What a search tool call returns to the model."""
    return render("tool_result", query=query.replace('"', "'"), count=str(len(passages)),
                  passages=passage_block(passages))


def repair_message(problems: Sequence[str], language_name: str) -> Message:
    """The one repair turn: the problems found, and the rules again."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return Message(Role.USER, render("repair", problems=listed, language_name=language_name))


def rewrite_message(history: Sequence[tuple[str, str]], question: str, language_name: str) -> Message:
    """Ask for a standalone version of a follow-up; ``history`` is (user, assistant) pairs."""
    turns = "\n".join(f"User: {user}\nAssistant: {assistant}" for user, assistant in history)
    return Message(Role.USER, render("rewrite", history=turns, question=question, language_name=language_name))


def translate_message(text: str, language_name: str) -> Message:
    """Ask for a translation of ``text`` (fenced as data)."""
    return Message(Role.USER, render("translate", text=text.replace("</text>", "</ text>"),
                                     language_name=language_name))


def search_tool() -> ToolSpec:
    """The ``search`` tool offered to tool-capable models."""
    return ToolSpec("search", render("search_tool"), {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to search for, in any language."},
            "languages": {"type": "array", "items": {"type": "string"},
                          "description": "Only passages in these ISO 639-1 languages, e.g. [\"de\", \"ja\"]."},
            "collection": {"type": "string", "description": "Another collection to search; default: the current one."},
        },
        "required": ["query"],
    })


@dataclass(frozen=True, slots=True)
class Frame:
    """The extractive generator's words in one language: the intro above the quotes, and the no-match line."""

    language: str
    intro: str
    none: str


@cache
def _frames() -> Mapping[str, Mapping[str, str]]:
    text = resources.files("prompts").joinpath("extractive.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def extractive_frame(language: str) -> Frame:
    """The frame for ``language``; English for a language without one (its ``language`` says so)."""
    frames = _frames()
    code = language if language in frames else "en"
    return Frame(code, frames[code]["intro"], frames[code]["none"])
