"""The generators: any OpenAI-compatible server, Cohere (native citations), and extractive (no LLM, offline).

Importing this package loads neither SDK; each generator imports its own in ``load``.
"""

from __future__ import annotations

from collections.abc import Mapping

from rag.answer.generators.cohere import CohereGenerator
from rag.answer.generators.extractive import ExtractiveGenerator
from rag.answer.generators.openai import OpenAIGenerator

__all__ = ["CohereGenerator", "ExtractiveGenerator", "OpenAIGenerator", "auto_choice"]


def auto_choice(environ: Mapping[str, str], base_url: str | None, openai_key_env: str,
                cohere_key_env: str) -> tuple[str, str]:
    """The generator ``auto`` picks (``openai``, ``cohere`` or ``extractive``) and a one-line reason for the user.

    OpenAI when its key is set or a base URL is configured, else Cohere when its key is set, else extractive.
    """
    if environ.get(openai_key_env, "").strip():
        return "openai", f"generator: openai ({openai_key_env} is set)"
    if base_url:
        return "openai", f"generator: openai (base URL {base_url})"
    if environ.get(cohere_key_env, "").strip():
        return "cohere", f"generator: cohere ({cohere_key_env} is set)"
    return "extractive", (f"generator: extractive (no LLM configured: set {openai_key_env} or "
                          f"ROSETTA_LLM_BASE_URL, or {cohere_key_env})")
