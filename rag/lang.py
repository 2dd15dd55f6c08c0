"""Language detection (script shortcuts, then lingua in two steps) and language codes and names.

Codes are ISO 639-1 (``"de"``); ``"und"`` (BCP 47 "undetermined") stands for a language nobody could
tell. Lingua's accurate models cost ~0.2 s and ~25 MB each to load; all of the default languages
together take 3-5 s and ~550 MB, which a one-shot ``rosetta search`` would spend to read one question.
So a text is first screened with lingua's small trigram models (all enabled languages, ~0.15 s and
~60 MB to load), and the accurate models decide only among the screen's best few candidates, loaded
the first time a candidate comes up (lingua keeps loaded models for the process). Measured against
the all-models detector by ``python -m evals.bench_lang`` (XQuAD questions and paragraphs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import lingua

from rag.words import without_identifiers

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
# Markup is no language: link targets, reference labels and definitions, heading anchors, Hugo shortcodes, URLs,
# inline code and tags are blanked before detection ("[OpenCensus](#opencensus)の略称" reads as "OpenCensus の略称").
_MARKUP = re.compile(
    r"\]\([^)\s]*\)|\]\[[^\]\n]*\]|^[ \t]*\[[^\]\n]+\]:[ \t]*\S+|\{#[^}\n]*\}|\{\{[<%].*?[%>]\}\}|https?://\S+"
    r"|`[^`\n]*`|<[^>\n]+>",
    re.MULTILINE,
)
# A document language's own script, for the prior: a short text with none of it is not in that language.
_PRIOR_SCRIPTS = {
    "ja": _KANA,  # not Han: a Han-only line in a Japanese manual may be Chinese, which lingua can tell
    "zh": _HAN, "ko": _HANGUL, "th": _THAI,
    "ru": re.compile(r"[\u0400-\u04ff]"), "uk": re.compile(r"[\u0400-\u04ff]"), "el": re.compile(r"[\u0370-\u03ff]"),
    "ar": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"), "he": re.compile(r"[\u0590-\u05ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
}  # fmt: skip
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")
# An inverted question or exclamation mark opening the text or a sentence (after a list mark or an opening quote):
# Spanish punctuation. One after a comma or colon may open a quote in another language ("The sign says: ¡Peligro!").
_INVERTED = re.compile(r"(?:^|[.!?…])[\s\-–—*•\"“«(]*[¿¡]", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class _ScriptCounts:
    letters: int
    thai: int
    hangul: int
    kana: int
    han: int
    latin: int
    inverted: int  # ¿ and ¡ opening the text or a sentence

    @classmethod
    def of(cls, text: str) -> _ScriptCounts:
        return cls(*(len(p.findall(text)) for p in (_LETTER, _THAI, _HANGUL, _KANA, _HAN, _LATIN, _INVERTED)))

    def majority(self, script_letters: int) -> bool:
        return 2 * script_letters > self.letters


# The accurate models decide among this many of the screen's best languages (evals/bench_lang.py).
SCREEN_CANDIDATES = 4
# Unsure (None) when the runner-up has at least this share of the winner's confidence. Lingua's own
# margin (an absolute difference of confidences) depends on how many languages share the confidence,
# so it would loosen as the candidates narrow; a ratio does not. 0.8 rejects two-word fragments
# ("Hallo Welt": 0.83) and keeps short questions.
UNSURE_RATIO = 0.8
# From this many letters on, lingua's trigram screen is as accurate as its full models, so a language the
# screen prefers by a wide margin (the runner-up below LONG_TEXT_MARGIN of its confidence) is taken as is.
LONG_TEXT_LETTERS = 120
LONG_TEXT_MARGIN = 0.2
# Candidates the screen gives less than this share of the best one's confidence are dropped before the
# accurate models decide, and a text left with one candidate takes it: on XQuAD's 13,090 questions this
# leaves one candidate for 90% of the texts the script does not decide (en 64%, de 86%) and changes 4
# labels, 2 right and 2 wrong (evals/bench_lang.py). Each accurate model not loaded saves ~0.2 s.
SCREEN_FLOOR = 1e-4
# A text with a prior (its document's language, at ingest): below this many letters (a heading, a list item,
# a glossary line) it takes the prior when its script allows it; below LONG_TEXT_LETTERS it takes the prior
# when the screen counts the prior among its candidates. Lingua cannot tell such fragments apart reliably,
# and each accurate model one of them pulls in costs ~25 MB for the rest of the ingest: on the manuals this
# loads none instead of 12 and labels 0.9825 of the chunks with their folder's language instead of 0.9754
# (evals/bench_lang.py --manuals; a real ingest, code blocks included, loads 5 and peaks at 260 MB).
PRIOR_LETTERS = 60


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    """Detects the language of a text among ``languages``; build it with :meth:`load`."""

    languages: frozenset[str]
    screen: lingua.LanguageDetector
    unsure_ratio: float = UNSURE_RATIO
    min_letters: int = 3
    candidates: int | None = SCREEN_CANDIDATES
    screen_floor: float = SCREEN_FLOOR
    # With ``candidates=None``: lingua's accurate detector over every language, all models preloaded.
    exhaustive: lingua.LanguageDetector | None = None
    # Accurate detectors per candidate set; building one is free once its models are loaded.
    _deciders: dict[frozenset[lingua.Language], lingua.LanguageDetector] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def load(
        cls,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        unsure_ratio: float = UNSURE_RATIO,
        min_letters: int = 3,
        candidates: int | None = SCREEN_CANDIDATES,
    ) -> LanguageDetector:
        """Build a detector restricted to ``languages`` (ISO 639-1 codes).

        Only the small screening models load now; each accurate model loads the first time its language
        is a candidate for a text. ``unsure_ratio``: the answer is None when the second-best language has
        at least this share of the best one's confidence. ``candidates`` is how many of the screen's best
        languages the accurate models choose among; ``None`` loads every accurate model now (3-5 s, ~550 MB
        for the defaults) and lets lingua choose among all languages with its own margin (a relative
        distance of 0.05): Rosetta's detector before screening, kept as the reference.
        """
        if candidates is not None and candidates < 1:
            raise ValueError(f"candidates must be at least 1 (or None for every language), got {candidates}")
        codes = frozenset(normalize_language(code) for code in languages)
        models = [_lingua_language(c) for c in codes]
        screen = lingua.LanguageDetectorBuilder.from_languages(*models).with_low_accuracy_mode()
        exhaustive = None
        if candidates is None:
            full = lingua.LanguageDetectorBuilder.from_languages(*models).with_minimum_relative_distance(0.05)
            exhaustive = full.with_preloaded_language_models().build()
        return cls(codes, screen.with_preloaded_language_models().build(), unsure_ratio, min_letters, candidates,
                   exhaustive=exhaustive)

    def detect(self, text: str, prior: str | None = None) -> str | None:
        """Return the ISO 639-1 code of ``text``'s language, or None if too short or unsure.

        ``prior``: the language the text most likely has (its document's, at ingest); a short text takes it
        when nothing in the text speaks against it (see PRIOR_LETTERS).
        """
        # Identifiers (HX-BK1, E22) are written alike in every language: the language is in the other words.
        text = without_identifiers(_MARKUP.sub(" ", text))
        counts = _ScriptCounts.of(text)
        if counts.letters == 0:
            return None
        shortcut = self._script_shortcut(counts)
        if shortcut is not None:
            return shortcut
        if counts.letters < self.min_letters:
            return None
        prior = prior if prior in self.languages else None
        if prior is None and counts.inverted and "es" in self.languages:
            prior = "es"  # of the languages lingua knows, only Spanish opens a sentence with ¿ or ¡
        if prior is not None and counts.letters < PRIOR_LETTERS and _script_allows(prior, text, counts):
            return prior
        found = self._decide(text, counts, prior)
        code = found.iso_code_639_1.name.lower() if found is not None else None
        # Han-only text is usually Chinese, but kanji-only Japanese exists: trust lingua when it says so.
        if code is None and counts.majority(counts.han) and "zh" in self.languages:
            return "zh"
        return code

    def _decide(self, text: str, counts: _ScriptCounts, prior: str | None) -> lingua.Language | None:
        """Screen ``text`` with the trigram models, then let the accurate models pick among the best."""
        if self.exhaustive is not None:
            return self.exhaustive.detect_language_of(text)
        ranked = [v for v in self.screen.compute_language_confidence_values(text) if v.value > 0]
        ranked = ranked[: self.candidates]
        if not ranked:
            return None
        ranked = [v for v in ranked if v.value >= self.screen_floor * ranked[0].value]
        if prior is not None and counts.letters < LONG_TEXT_LETTERS:
            named = next((v.language for v in ranked if v.language.iso_code_639_1.name.lower() == prior), None)
            if named is not None:
                return named
        if len(ranked) == 1 or (
            counts.letters >= LONG_TEXT_LETTERS and ranked[1].value < LONG_TEXT_MARGIN * ranked[0].value
        ):
            return ranked[0].language
        key = frozenset(v.language for v in ranked)
        decider = self._deciders.get(key)
        if decider is None:
            decider = lingua.LanguageDetectorBuilder.from_languages(*key).build()
            self._deciders[key] = decider
        best, second = decider.compute_language_confidence_values(text)[:2]
        if best.value <= 0 or second.value >= self.unsure_ratio * best.value:
            return None
        return best.language

    @property
    def accurate_languages(self) -> tuple[str, ...]:
        """The languages whose accurate models this detector has loaded so far."""
        return tuple(sorted({lang.iso_code_639_1.name.lower() for key in self._deciders for lang in key}))

    def _script_shortcut(self, counts: _ScriptCounts) -> str | None:
        """Return a language that the script alone decides (Thai, Hangul, kana), if it is enabled."""
        candidates = (
            ("th", counts.majority(counts.thai)),
            ("ko", counts.majority(counts.hangul)),
            ("ja", counts.kana > 0 and counts.majority(counts.kana + counts.han)),
        )
        return next((code for code, wins in candidates if wins and code in self.languages), None)


def _script_allows(prior: str, text: str, counts: _ScriptCounts) -> bool:
    """Whether a short ``text`` may be in ``prior``: it holds some of the prior's own script (Japanese, Chinese,
    Arabic...), or it is mostly Latin letters, which any document quotes (names, code, link lists). A short
    text in another non-Latin script than the prior's (a Chinese line in an English manual) may not."""
    own = _PRIOR_SCRIPTS.get(prior)
    if own is not None and own.search(text) is not None:
        return True
    return counts.majority(counts.latin)


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
