"""The generators package: the ``auto`` choice, the Protocol, and no SDK loaded at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag.answer.dialogue import Generator
from rag.answer.generators import CohereGenerator, ExtractiveGenerator, OpenAIGenerator, auto_choice
from rag.chunk import split_sentences
from tests.fakes import HashEncoder

NONE_CONFIGURED = ("extractive", ("generator: extractive (no LLM configured: set OPENAI_API_KEY or "
                                 "ROSETTA_LLM_BASE_URL, or COHERE_API_KEY)"))


@pytest.mark.parametrize(("environ", "base_url", "expected"), [
    ({"OPENAI_API_KEY": "sk-1", "COHERE_API_KEY": "co-1"}, None, ("openai", "generator: openai (OPENAI_API_KEY is set)")),
    ({"COHERE_API_KEY": "co-1"}, "http://localhost:11434/v1",
     ("openai", "generator: openai (base URL http://localhost:11434/v1)")),
    ({"COHERE_API_KEY": "co-1"}, None, ("cohere", "generator: cohere (COHERE_API_KEY is set)")),
    ({"OPENAI_API_KEY": "  ", "COHERE_API_KEY": ""}, None, NONE_CONFIGURED),
    ({}, None, NONE_CONFIGURED),
    ({}, "", NONE_CONFIGURED),
])
def test_auto_choice(environ: dict[str, str], base_url: str | None, expected: tuple[str, str]) -> None:
    assert auto_choice(environ, base_url, "OPENAI_API_KEY", "COHERE_API_KEY") == expected


def test_auto_choice_names_the_configured_variables() -> None:
    assert auto_choice({"MY_OPENAI": "sk-1"}, None, "MY_OPENAI", "MY_COHERE") == (
        "openai", "generator: openai (MY_OPENAI is set)")
    assert auto_choice({}, None, "MY_OPENAI", "MY_COHERE")[1] == (
        "generator: extractive (no LLM configured: set MY_OPENAI or ROSETTA_LLM_BASE_URL, or MY_COHERE)")


def test_all_three_satisfy_the_protocol() -> None:
    generators: list[Generator] = [
        OpenAIGenerator.load(base_url="http://127.0.0.1:9/v1", environ={}),
        CohereGenerator.load(environ={"COHERE_API_KEY": "co-1"}),
        ExtractiveGenerator(HashEncoder(), split_sentences),
    ]
    assert [(g.name, g.supports_tools, g.is_llm, g.native_documents) for g in generators] == [
        ("openai:gpt-4o-mini", True, True, False), ("cohere:command-a-03-2025", False, True, True),
        ("extractive", False, False, False)]


def test_importing_generators_loads_no_sdk() -> None:
    code = ("import sys, rag.answer.generators, rag.answer.generators.openai, rag.answer.generators.cohere, rag.answer.generators.extractive; "
            "print(sorted({'openai', 'cohere', 'httpx', 'httpx2', 'torch'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
