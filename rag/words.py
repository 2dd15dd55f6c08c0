"""Words of a text as Rosetta counts them, in any script: the lexical encoder's terms, and the words that survive
translation (codes, numbers, Latin terms inside another script), which count across languages in search
and in the extractive generator. Pure text functions: no model, no store.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import regex

_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}ー"
# A letter, mark or digit outside the unspaced scripts.
_CHAR = rf"(?:(?![{_UNSPACED}])[\p{{L}}\p{{M}}\p{{N}}])"
# Words: runs of an unspaced script, or runs of letters, marks and digits that do not cross into one, so a
# code or a Latin name written against Japanese or Chinese ("E22是什么意思", "OpenTelemetryコレクタ") is a
# word of its own and the text after it is still split into bigrams.
_WORD = regex.compile(rf"[{_UNSPACED}]+|{_CHAR}+")
_UNSPACED_RUN = regex.compile(rf"^[{_UNSPACED}]+$")
# The version of :func:`terms`' splitting, part of the lexical encoders' cache name and ingest key, so a
# change re-encodes stored chunks at the next ingest. v2: a run of Latin letters or digits ends where an
# unspaced script begins (v1 kept "e22が表示されます" as one term, losing the bigrams after the code).
TERMS_VERSION = "terms-v2"


def terms(text: str) -> list[str]:
    """Split ``text`` into normalized terms: words, and character bigrams for unspaced scripts."""
    found: list[str] = []
    for run in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _UNSPACED_RUN.match(run):
            found.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            found.append(run)
    return found


# A word with the parts joined to it by - . / _ (HX-BK1, v2.4.1-rc1, 24-Stunden-Service), outside unspaced scripts
# so "エラーE22の" keeps its Japanese; matched once per word, so the cost is linear in the text.
_JOINED = regex.compile(rf"{_CHAR}+(?:[-./_]{_CHAR}+)*")
_JOINER = regex.compile(r"([-./_])")
_DIGIT = regex.compile(r"\p{N}")


def without_identifiers(text: str) -> str:
    """``text`` (NFKC-normalized, as :func:`terms` reads it) with its identifiers blanked: they are written
    alike in every language, so they tell nothing of the text's language and their letters mislead a language
    detector ("Qué es HX-BK1?", "HX-BK1とは？").

    An identifier is a word holding a digit and, in a word joined by - . / _ that holds one, the parts that hold a
    digit or are written in capitals alone: "HX-BK1", "E22", "v2.4.1-rc1" go; "24-Stunden-Service" keeps
    "Stunden-Service", "3.Juli" keeps "Juli"."""
    return str(_JOINED.sub(_blank_identifier, unicodedata.normalize("NFKC", text)))


def _blank_identifier(match: regex.Match[str]) -> str:
    word = str(match[0])
    if _DIGIT.search(word) is None:
        return word
    return "".join(" " if _DIGIT.search(part) or part.isupper() else part for part in _JOINER.split(word))


_LATIN_WORD = regex.compile(r"^[\p{Latin}\p{M}\p{N}]+$")


def surviving_words(text: str) -> frozenset[str]:
    """The terms of the words of ``text`` that survive translation: those with a digit (codes such as HX-F07
    or E22, numbers, versions), and Latin-script words in a text mostly written in another script (product
    names and English terms inside Japanese or Chinese).

    Measured on XQuAD and the manuals (README, "Language-neutral retrieval"): counting every shared word
    across languages also counts accidental fragments and costs cross-lingual recall.
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", text))
    # Two letters of another script make Latin words foreign in this text (one may be a stray symbol).
    foreign_latin = sum(len(w) for w in words if not _LATIN_WORD.match(w)) >= 2
    # Not a run of an unspaced script: Thai digits are digits, but a Thai run holding them is Thai prose.
    kept = [w for w in words if not _UNSPACED_RUN.match(w)
            and (any(ch.isdigit() for ch in w) or (foreign_latin and _LATIN_WORD.match(w)))]
    return frozenset(t for word in kept for t in terms(word))


def spaced_words(text: str) -> frozenset[str]:
    """The words of ``text`` outside unspaced scripts (Han, kana, Thai...), normalized as :func:`terms`
    normalizes them: the vocabulary :func:`surviving_words` is drawn from, so a text holds a question's
    surviving word when this holds it (:func:`shared_shares`)."""
    return frozenset(word.casefold() for word in _WORD.findall(unicodedata.normalize("NFKC", text))
                     if not _UNSPACED_RUN.match(word))


# ASCII to its full-width form (A -> Ａ), which Japanese and Chinese text often uses for codes and numbers.
_FULL_WIDTH = str.maketrans({chr(code): chr(code + 0xFEE0) for code in range(0x21, 0x7F)})


def held_words(text: str, words: frozenset[str]) -> frozenset[str]:
    """Those of ``words`` (in :func:`spaced_words`' form) that ``text`` holds as words.

    A text that does not hold a word's characters in plain or full-width form is passed over without
    normalizing and splitting it: a search checks a few hundred chunks (a word written half in full-width
    forms, or in other compatibility forms such as circled digits, is not found)."""
    folded = text.casefold()
    if not any(word in folded or word.translate(_FULL_WIDTH) in folded for word in words):
        return frozenset()
    return spaced_words(text) & words


def bm25_idf(total: int, frequency: int) -> float:
    """BM25's inverse document frequency of a word ``frequency`` of ``total`` texts hold (never negative)."""
    return math.log(1.0 + (total - frequency + 0.5) / (frequency + 0.5))


def shared_shares(texts: Sequence[str], words: frozenset[str]) -> list[float]:
    """How much of ``words`` each text holds: 1 for all of them, else the share of their IDF among ``texts``,
    so a code that few texts hold counts more than a year that many hold.

    ``words`` are the question's terms that survive translation (:func:`surviving_words`: codes, numbers,
    Latin terms in another script), found in a text as whole words (:func:`held_words`): evidence that
    holds in every language, unlike the dense scores' (README, "Identifiers in the language choice")."""
    if not words:
        return [0.0] * len(texts)
    held = [held_words(text, words) for text in texts]
    idf = {word: bm25_idf(len(held), sum(word in found for found in held)) for word in words}
    total = sum(idf.values())
    return [sum(idf[word] for word in found) / total for found in held]
