"""Builds the configured reranker and generator from Config (the composition root's wiring, kept apart).

Both are found by name among the plugins (rag/plugins.py; Rosetta's own are in rag/builtins.py); ``auto``
choices are announced through ``notice``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import cast

from rag.answer.dialogue import GenerationRequest, Generator
from rag.answer.prompts import translate_message
from rag.config import GenerationConfig, GeneratorKind, RerankerKind
from rag.lang import language_name
from rag.plugins import PluginContext, PluginKind, build_part
from rag.types import Reranker


def build_reranker(context: PluginContext) -> Reranker | None:
    """The configured reranker (a built-in or a plugin, found by name), or None for ``none``."""
    kind = context.config.retrieval.reranker
    if kind is RerankerKind.NONE:
        return None
    name = kind.value if isinstance(kind, RerankerKind) else kind
    return cast(Reranker, build_part(PluginKind.RERANKER, name, context))


def generator_kind(g: GenerationConfig, notice: Callable[[str], None],
                   environ: Mapping[str, str] | None = None) -> GeneratorKind | str:
    """The generator to use: the configured one, or for ``auto`` OpenAI, Cohere or extractive (announced)."""
    if g.generator is not GeneratorKind.AUTO:
        return g.generator
    from rag.answer.generators import auto_choice

    choice, reason = auto_choice(os.environ if environ is None else environ, g.base_url, g.openai_api_key_env,
                                 g.cohere_api_key_env)
    notice(reason)
    return GeneratorKind(choice)


def build_generator(kind: GeneratorKind | str, context: PluginContext) -> Generator:
    """The generator of ``kind`` (not ``auto``; a built-in or a plugin, found by name); the extractive one
    scores sentences with ``context.encoder``."""
    if kind is GeneratorKind.AUTO:
        raise ValueError("build_generator needs a concrete kind, got auto")
    name = kind.value if isinstance(kind, GeneratorKind) else kind
    return cast(Generator, build_part(PluginKind.GENERATOR, name, context))


class GeneratorTranslator:
    """A Translator backed by a language model (the retriever's translated legs, the chat's /translate)."""

    def __init__(self, generator: Generator, max_tokens: int = 1024) -> None:
        self.generator = generator
        self.max_tokens = max_tokens

    def translate(self, text: str, language: str) -> str:
        """``text`` in ``language``, as the model renders it."""
        request = GenerationRequest((translate_message(text, language_name(language)),), (), text, language,
                                    max_tokens=self.max_tokens)
        return self.generator.generate(request).text.strip()
