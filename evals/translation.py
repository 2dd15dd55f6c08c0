"""A Translator from a parallel dataset: the dataset's own translation of a query stands in for an LLM's.

XQuAD's questions (and the manuals' headings) are professional translations of each other that share a
query id across languages. ``--translator human`` hands Rosetta's retriever those translations, so the
translated legs (``sparse:de``, and ``dense:de`` with ``retrieval.translate_dense``) can be measured
where no LLM runs. It is an upper bound for an LLM's translations, not a stand-in for their errors:
XQuAD's questions were translated with their paragraphs, so a translated question may share wording with
its translated paragraph more than an LLM's would.
"""

from __future__ import annotations

from enum import Enum

from evals.datasets import Dataset
from rag.errors import ConfigError
from rag.types import Translator


class TranslatorKind(Enum):
    """What translates questions in an eval: nothing, or the dataset's human translations."""

    NONE = "none"
    HUMAN = "human"


class ParallelTranslator:
    """Translates a query of ``dataset`` into another of its languages by query id."""

    def __init__(self, dataset: Dataset) -> None:
        self.name = dataset.name
        self._ids: dict[str, list[str]] = {}
        self._texts: dict[tuple[str, str], str] = {}
        self._languages = frozenset(language for language, queries in dataset.queries.items() if queries)
        for language, queries in dataset.queries.items():
            for query in queries:
                self._ids.setdefault(query.text, []).append(query.id)
                self._texts.setdefault((query.id, language), query.text)

    def translate(self, text: str, language: str) -> str:
        """The dataset's ``language`` version of the query whose text is ``text``.

        Raises ConfigError when ``text`` is no query of the dataset or none of its ids has a ``language``
        version (a language the run did not load: add it to --query-langs)."""
        ids = self._ids.get(text)
        if not ids:
            raise ConfigError(f"--translator human: {text!r} is not a query of {self.name}; it translates the "
                              "dataset's own queries only")
        for query_id in ids:
            found = self._texts.get((query_id, language))
            if found is not None:
                return found
        if language in self._languages:
            raise ConfigError(f"--translator human: query {ids[0]} of {self.name} has no {language} version (the "
                              "dataset's translations have gaps), so it cannot stand in for a translator here")
        raise ConfigError(f"--translator human: query {ids[0]} of {self.name} has no {language} version; add "
                          f"{language} to --query-langs if the dataset has it (a collection language the dataset "
                          "lacks, such as a misdetected chunk's, cannot be translated into)")


def translator(kind: TranslatorKind, dataset: Dataset) -> Translator | None:
    """The translator ``kind`` names over ``dataset`` (None for ``none``)."""
    return ParallelTranslator(dataset) if kind is TranslatorKind.HUMAN else None
