"""Language detection (lingua plus script shortcuts) and language codes and names.

Codes are ISO 639-1 (``"de"``); ``"und"`` (BCP 47 "undetermined") stands for a language nobody could
tell. Building a detector is the expensive step (3-5 s and ~550 MB resident for the default languages
with preloading), so a detector is built once with :meth:`LanguageDetector.load` and then reused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import lingua

UNDETERMINED = "und"

DEFAULT_LANGUAGES: tuple[str, ...] = (
    "en", "de", "fr", "es", "pt", "it", "nl", "sv", "pl", "ru", "uk", "el",
    "tr", "ar", "he", "hi", "th", "zh", "ja", "ko", "vi", "id",
)  # fmt: skip

# Lingua's enum names give the English names; these read better than the enum spelling.
_NAME_OVERRIDES = {"nb": "Norwegian Bokmål", "nn": "Norwegian Nynorsk", "und": "Undetermined"}

_LETTER = re.compile(r"[^\W\d_]")
_THAI = re.compile(r"[\u0e00-\u0e7f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
# U+30FB (katakana middle dot) and U+30FC (prolonged sound mark) also appear in Chinese text, so
# they are not evidence of Japanese.
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30fa\u30fd-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_SUBTAG = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True, slots=True)
class _ScriptCounts:
    letters: int
    thai: int
    hangul: int
    kana: int
    han: int

    @classmethod
    def of(cls, text: str) -> _ScriptCounts:
        letters, thai, hangul, kana, han = (
            len(p.findall(text)) for p in (_LETTER, _THAI, _HANGUL, _KANA, _HAN)
        )
        return cls(letters, thai, hangul, kana, han)

    def majority(self, script_letters: int) -> bool:
        return 2 * script_letters > self.letters


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    """Detects the language of a text among ``languages``; build it with :meth:`load`."""

    languages: frozenset[str]
    model: lingua.LanguageDetector
    min_letters: int = 3

    @classmethod
    def load(
        cls,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        preload: bool = True,
        min_relative_distance: float = 0.05,
        min_letters: int = 3,
    ) -> LanguageDetector:
        """Build a detector restricted to ``languages`` (ISO 639-1 codes).

        ``preload`` loads every language model now (3-5 s for the defaults); without it lingua loads
        models on first use, which moves ~2 s into the first ``detect`` call on Latin-script text.
        ``min_relative_distance`` is lingua's margin between the best and second-best language below
        which it answers "unsure" (None); 0.05 rejects two-word fragments but keeps short sentences.
        """
        codes = frozenset(normalize_language(code) for code in languages)
        builder = lingua.LanguageDetectorBuilder.from_languages(*(_lingua_language(c) for c in codes))
        builder = builder.with_minimum_relative_distance(min_relative_distance)
        if preload:
            builder = builder.with_preloaded_language_models()
        return cls(codes, builder.build(), min_letters)

    def detect(self, text: str) -> str | None:
        """Return the ISO 639-1 code of ``text``'s language, or None if too short or unsure."""
        counts = _ScriptCounts.of(text)
        if counts.letters < self.min_letters:
            return None
        shortcut = self._script_shortcut(counts)
        if shortcut is not None:
            return shortcut
        found = self.model.detect_language_of(text)
        code = found.iso_code_639_1.name.lower() if found is not None else None
        # Han-only text is usually Chinese, but kanji-only Japanese exists: trust lingua when it says so.
        if code is None and counts.majority(counts.han) and "zh" in self.languages:
            return "zh"
        return code

    def _script_shortcut(self, counts: _ScriptCounts) -> str | None:
        """Return a language that the script alone decides (Thai, Hangul, kana), if it is enabled."""
        candidates = (
            ("th", counts.majority(counts.thai)),
            ("ko", counts.majority(counts.hangul)),
            ("ja", counts.kana > 0 and counts.majority(counts.kana + counts.han)),
        )
        return next((code for code, wins in candidates if wins and code in self.languages), None)


def normalize_language(code: str) -> str:
    """Return the ISO 639-1 code for a tag such as ``"de"``, ``"DE"``, ``"de-AT"``, ``"deu"`` or ``"German"``.

    Three-letter codes that have no two-letter form (``"und"``, ``"fil"``) stay as they are.
    """
    cleaned = code.strip().lower().replace("_", "-")
    primary = cleaned.split("-", 1)[0]
    if _SUBTAG.fullmatch(primary):
        return (_iso_639_1_of_639_3(primary) or primary) if len(primary) == 3 else primary
    try:
        by_name = lingua.Language.from_str(cleaned)
    except ValueError:
        raise ValueError(f"not a language code or English language name: {code!r}") from None
    return by_name.iso_code_639_1.name.lower()


def language_name(code: str) -> str:
    """Return the English name of a language code, e.g. ``"de"`` -> ``"German"``."""
    normalized = normalize_language(code)
    if normalized in _NAME_OVERRIDES:
        return _NAME_OVERRIDES[normalized]
    return _lingua_language(normalized).name.replace("_", " ").title()


def _lingua_language(code: str) -> lingua.Language:
    """Return lingua's Language for an ISO 639-1 code; ValueError names codes lingua lacks."""
    try:
        return lingua.Language.from_iso_code_639_1(lingua.IsoCode639_1.from_str(code))
    except ValueError:
        raise ValueError(
            f"unknown language code {code!r}: use an ISO 639-1 code that lingua supports, e.g. 'de'"
        ) from None


def _iso_639_1_of_639_3(code: str) -> str | None:
    """Return the two-letter code for a three-letter one that lingua knows, else None."""
    try:
        language = lingua.Language.from_iso_code_639_3(lingua.IsoCode639_3.from_str(code))
    except ValueError:
        return None
    return language.iso_code_639_1.name.lower()
