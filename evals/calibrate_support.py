"""Calibrates the support threshold of citation checking (rag/answer/citations.py) on XQuAD's parallel paragraphs.

A claim is an English (``--claim-lang``) sentence. Its *supported* score is its cosine similarity with the
best sentence of the same paragraph in another language (its translation is there); its *unsupported*
score is the same against a paragraph of another article. The printed threshold is the midpoint between
the supported 10th percentile and the unsupported 90th percentile.

    python -m evals.calibrate_support --data ../shared/data/xquad --langs de,zh,ar,th --paragraphs 40
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.datasets import load_xquad
from rag.chunk import split_sentences
from rag.encoders import encoder_for_name
from rag.types import Document, Encoder


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text) if e - s >= 8]


def _unit(matrix: np.ndarray) -> np.ndarray:
    unit: np.ndarray = matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)
    return unit


def _best(encoder: Encoder, claims: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
    """Each claim's best cosine similarity against ``sentences`` (claims as queries, sentences as passages)."""
    queries = _unit(np.stack([e.dense for e in encoder.encode_queries(claims)]))
    passages = _unit(np.stack([e.dense for e in encoder.encode_passages(sentences)]))
    best: np.ndarray = np.max(queries @ passages.T, axis=1)
    return best


def _articles(documents: Sequence[Document]) -> list[str]:
    return [document.uri.split("/")[3] for document in documents]


def measure(data: Path, claim_lang: str, langs: Sequence[str], paragraphs: int, encoder_name: str,
            seed: int = 0) -> dict[str, Any]:
    """Supported and unsupported similarity percentiles per language, and the threshold they suggest."""
    dataset = load_xquad(data, [claim_lang, *langs])
    encoder = encoder_for_name(encoder_name, None, 16)
    source = dataset.documents[claim_lang]
    articles = _articles(source)
    rng = random.Random(seed)
    picked = rng.sample(range(len(source)), paragraphs)
    result: dict[str, Any] = {"encoder": encoder.name, "claim_lang": claim_lang, "paragraphs": paragraphs}
    supported: list[float] = []
    unsupported: list[float] = []
    for lang in langs:
        target = dataset.documents[lang]
        pos: list[float] = []
        neg: list[float] = []
        for index in picked:
            claims = _sentences(source[index].text)
            other = rng.choice([i for i, a in enumerate(articles) if a != articles[index]])
            pos.extend(_best(encoder, claims, _sentences(target[index].text)).tolist())
            neg.extend(_best(encoder, claims, _sentences(target[other].text)).tolist())
        result[lang] = {"supported_p10": float(np.percentile(pos, 10)), "supported_p50": float(np.median(pos)),
                        "unsupported_p50": float(np.median(neg)), "unsupported_p90": float(np.percentile(neg, 90))}
        supported += pos
        unsupported += neg
    low, high = float(np.percentile(supported, 10)), float(np.percentile(unsupported, 90))
    threshold = (low + high) / 2
    result["all"] = {"supported_p10": low, "unsupported_p90": high, "threshold": threshold,
                     "supported_kept": float(np.mean(np.array(supported) >= threshold)),
                     "unsupported_kept": float(np.mean(np.array(unsupported) >= threshold)),
                     "claims": len(supported)}
    return result


def main() -> None:
    """Print the calibration as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/xquad"))
    parser.add_argument("--claim-lang", default="en")
    parser.add_argument("--langs", default="de,zh,ar,th")
    parser.add_argument("--paragraphs", type=int, default=40)
    parser.add_argument("--encoder", default="e5-small")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.data, args.claim_lang, args.langs.split(","), args.paragraphs, args.encoder)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
