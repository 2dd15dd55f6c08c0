"""The offline default when no language model is configured: quote the passage sentences nearest the question.

Sentences are ranked by cosine similarity between the question (encoded as a query) and each sentence
(encoded as a passage) with the collection's encoder, so a question in one language finds sentences in
another. Each quote is verbatim passage text, so the citation check finds it by exact match.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from rag.answer.dialogue import GenerationRequest, Passage, Reply
from rag.answer.prompts import Frame, extractive_frame
from rag.centering import Centering, LatentQuery, plain, stratified
from rag.types import Chunk, Encoder, LatentEncoder, latent_dim, one_line
from rag.words import shared_shares, surviving_words

# Shorter sentences ("Hinweis:", "1.2 Filter") are headings or list labels, not statements worth quoting.
# Wide (CJK) characters count twice, so a six-character Japanese sentence still qualifies.
MIN_WIDTH = 8

Split = Callable[[str], Sequence[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Quote:
    """A sentence of a passage on one line (``rag.types.one_line``: a quote must stay on its blockquote line;
    the citation check compares texts the same way, so it still matches exactly), and its score."""

    text: str
    passage: int
    score: float


@dataclass(slots=True)
class ExtractiveGenerator:
    """Answers without an LLM: the ``sentences`` passage sentences closest to the question, quoted and cited.

    ``split`` gives the ``(start, end)`` sentence spans of a text (``rag.chunk.split_sentences``).
    """

    encoder: Encoder
    split: Split
    sentences: int = 3
    # How much the sentence's passage counts: a sentence scores (1 - w) * cos(question, sentence)
    # + w * cos(question, passage). Swept on XQuAD (rosetta eval answers, en/de/zh/ar/th, 40 questions
    # per pair; answer_hit cross / mono): w=0 .845/.950, 0.25 .849/.955, 0.5 .840/.940, 0.75 .792/.935,
    # 1.0 .699/.905. A little passage context helps; more drowns the sentence that answers.
    passage_weight: float = 0.25
    # The text a passage's vector was made from at ingest (rag.chunk.encoded_text), so it is a cache hit.
    passage_text: Callable[[Chunk], str] = lambda chunk: chunk.text
    # A quote after the first must score within ``margin`` of it (None: the best ``sentences``, however
    # weak): the second and third best sentences of a short collection are often from passages about
    # something else. Chosen on XQuAD mixed pools (README, "Quotes near the best only").
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.sentences < 1:
            raise ValueError(f"the extractive generator quotes >= 1 sentences, got {self.sentences}")
        if not 0 <= self.passage_weight <= 1:
            raise ValueError(f"passage_weight must be in [0, 1], got {self.passage_weight}")
        if self.margin is not None and not self.margin >= 0:  # NaN too
            raise ValueError(f"the extractive margin must be >= 0, got {self.margin}")

    @property
    def name(self) -> str:
        """``extractive``."""
        return "extractive"

    @property
    def supports_tools(self) -> bool:
        """False."""
        return False

    @property
    def is_llm(self) -> bool:
        """False: it cannot translate, rewrite or repair."""
        return False

    @property
    def native_documents(self) -> bool:
        """False: it reads ``request.passages`` but needs no special prompt."""
        return False

    def generate(self, request: GenerationRequest) -> Reply:
        """The frame's intro in the answer language, then the best sentences as ``> sentence [n]`` lines."""
        started = time.perf_counter()
        quotes = self.quotes(request.question, request.passages, request.language, request.centering)
        text = render(extractive_frame(request.language), quotes)
        return Reply(text, model=self.name, seconds=time.perf_counter() - started)

    def stream(self, request: GenerationRequest) -> Iterator[str | Reply]:
        """The reply's text line by line (each with its newline), then the Reply."""
        reply = self.generate(request)
        yield from reply.text.splitlines(keepends=True)
        yield reply

    def quotes(self, question: str, passages: Sequence[Passage], language: str | None = None,
               centering: Centering | None = None) -> list[Quote]:
        """The best ``sentences`` distinct sentences of ``passages`` for ``question``, best first; with a
        ``margin``, only those within it of the best.

        With ``centering`` the similarities are language-neutral (rag/centering.py; ``language`` is the
        question's), so a sentence in the question's own language does not win for its language alone.
        """
        candidates = [(text, passage) for passage in passages for text in self._sentences(passage)]
        if not candidates:
            return []
        texts = [text for text, _ in candidates]
        (query,) = self.encoder.encode_queries([question])
        sentence_vectors = np.stack([e.dense for e in self.encoder.encode_passages(texts)])
        languages = [p.hit.chunk.language for _, p in candidates]
        plain_scores = self._scores(plain(), query.dense, sentence_vectors, languages, passages, candidates)
        if centering is None:
            scores = plain_scores
        else:
            # Within a language sentences keep their plain order; centred scores only interleave languages.
            neutral = self._scores(centering, centering.chunks.query(query.dense, language), sentence_vectors,
                                   languages, passages, candidates)
            neutral = neutral + self._latent_bonus(centering, question, texts, languages, language)
            if centering.shared_choice_weight:
                # A sentence holding the question's codes or numbers, as search's language choice counts them.
                neutral = neutral + centering.shared_choice_weight * np.array(
                    shared_shares(texts, surviving_words(question)))
            scores = np.array(stratified(languages, plain_scores.tolist(), neutral.tolist()))
        best: dict[str, Quote] = {}
        for (text, passage), score in zip(candidates, scores.tolist()):
            if text not in best or score > best[text].score:
                best[text] = Quote(text, passage.number, float(score))
        ranked = sorted(best.values(), key=lambda quote: -quote.score)[:self.sentences]
        if self.margin is None:
            return ranked
        return [quote for quote in ranked if quote.score >= ranked[0].score - self.margin]

    def _latent_bonus(self, centering: Centering, question: str, sentences: Sequence[str], languages: list[str],
                      language: str | None) -> np.ndarray:
        """``centering.latent_choice_weight`` times each sentence's latent-term cosine with the question, for
        sentences in another language than the question's (0 for its own, and without latent terms), as
        search adds it to the score that interleaves languages (rag/centering.py, score_chunk)."""
        if not centering.latent_choice_weight or not latent_dim(self.encoder):
            return np.zeros(len(sentences))
        encoder = cast(LatentEncoder, self.encoder)
        (asked,) = encoder.encode_latent([question])
        scoring = LatentQuery.of(centering, asked, language)
        assert scoring is not None  # latent_choice_weight > 0
        scores = scoring.score_vectors(languages, encoder.encode_latent(list(sentences)))
        return centering.latent_choice_weight * np.array(scores)

    def _scores(self, centering: Centering, query: np.ndarray, sentence_vectors: np.ndarray, languages: list[str],
                passages: Sequence[Passage], candidates: Sequence[tuple[str, Passage]]) -> np.ndarray:
        """(1 - w) * the sentence's similarity + w * its passage's, with ``centering``'s language means."""
        scores: np.ndarray = (1 - self.passage_weight) * centering.sentences.similarities(
            query, sentence_vectors, languages)
        if self.passage_weight:
            # Passages were encoded at ingest (as passage_text gives them), so with the cached encoder this
            # costs no model call.
            vectors = np.stack([e.dense for e in self.encoder.encode_passages(
                [self.passage_text(p.hit.chunk) for p in passages])])
            relevance = centering.chunks.similarities(query, vectors, [p.hit.chunk.language for p in passages])
            by_number = dict(zip((p.number for p in passages), relevance.tolist()))
            scores = scores + self.passage_weight * np.array([by_number[p.number] for _, p in candidates])
        return scores

    def _sentences(self, passage: Passage) -> list[str]:
        """The passage's quotable sentences; its whole text when no sentence qualifies."""
        text = passage.hit.chunk.text
        found = [one_line(text[start:end]) for start, end in self.split(text)]
        kept = [sentence for sentence in found if _quotable(sentence)]
        whole = one_line(text)
        return kept or ([whole] if _quotable(whole) else [])


def render(frame: Frame, quotes: Sequence[Quote]) -> str:
    """The reply text: the intro, a blank line, then one ``> sentence [n]`` line per quote (or the none line)."""
    if not quotes:
        return f"{frame.intro}\n\n{frame.none}"
    return f"{frame.intro}\n\n" + "\n".join(f"> {quote.text} [{quote.passage}]" for quote in quotes)


def _quotable(sentence: str) -> bool:
    if sentence.startswith("#"):  # a Markdown heading names a section; it states nothing
        return False
    if sentence.rstrip().endswith(("?", "？", "؟")):  # a question (an FAQ's heading) answers nothing
        return False
    width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in sentence)
    return width >= MIN_WIDTH and any(ch.isalpha() for ch in sentence)
