"""Builds the configured reranker and generator from Config (the composition root's wiring, kept apart).

Each part gets only the fields it needs; ``auto`` choices are announced through ``notice``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from rag.answer.dialogue import GenerationRequest, Generator
from rag.answer.prompts import translate_message
from rag.chunk import chunk_text, encoded_text, split_prose
from rag.config import GenerationConfig, GeneratorKind, RerankerKind, RetrievalConfig
from rag.lang import language_name
from rag.types import Encoder, Reranker


def build_reranker(r: RetrievalConfig, device: str | None, bge_m3_model: str) -> Reranker | None:
    """The configured reranker, or None for ``none``."""
    if r.reranker is RerankerKind.CROSS_ENCODER:
        from rag.search.rerankers.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker.load(r.reranker_model or CrossEncoderReranker.DEFAULT_MODEL, device)
    if r.reranker is RerankerKind.COLBERT:
        from rag.search.rerankers.colbert import ColbertReranker

        return ColbertReranker.load(r.reranker_model or bge_m3_model, device)
    if r.reranker is RerankerKind.COHERE:
        from rag.search.rerankers.cohere import CohereReranker

        return CohereReranker.load(r.reranker_model or CohereReranker.DEFAULT_MODEL, r.cohere_api_key_env,
                                   r.cohere_base_url)
    return None


def generator_kind(g: GenerationConfig, notice: Callable[[str], None],
                   environ: Mapping[str, str] | None = None) -> GeneratorKind:
    """The generator to use: the configured one, or for ``auto`` OpenAI, Cohere or extractive (announced)."""
    if g.generator is not GeneratorKind.AUTO:
        return g.generator
    from rag.answer.generators import auto_choice

    choice, reason = auto_choice(os.environ if environ is None else environ, g.base_url, g.openai_api_key_env,
                                 g.cohere_api_key_env)
    notice(reason)
    return GeneratorKind(choice)


def build_generator(g: GenerationConfig, kind: GeneratorKind, encoder: Encoder, heading_context: bool = False
                    ) -> Generator:
    """The generator of ``kind`` (not ``auto``); the extractive one scores sentences with ``encoder`` (and
    passages as ingest encoded them: under their heading path with ``heading_context``)."""
    from rag.answer.generators import CohereGenerator, ExtractiveGenerator, OpenAIGenerator

    if kind is GeneratorKind.OPENAI:
        return OpenAIGenerator.load(g.model or OpenAIGenerator.DEFAULT_MODEL, g.openai_api_key_env, g.base_url,
                                    g.timeout_s, g.max_retries)
    if kind is GeneratorKind.COHERE:
        return CohereGenerator.load(g.model or CohereGenerator.DEFAULT_MODEL, g.cohere_api_key_env,
                                    g.cohere_base_url, g.timeout_s, g.max_retries)
    if kind is GeneratorKind.EXTRACTIVE:
        passage_text = encoded_text if heading_context else chunk_text
        return ExtractiveGenerator(encoder, split_prose, g.extractive_sentences, g.extractive_passage_weight,
                                   passage_text)
    raise ValueError(f"build_generator needs a concrete kind, got {kind.value}")


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
