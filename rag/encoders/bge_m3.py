"""BAAI/bge-m3 through FlagEmbedding: normalized CLS vectors, lexical weights and, on request, ColBERT vectors.

FlagEmbedding is the model's reference code, so the numbers match what the BGE-M3 authors evaluate. Its
imports (torch, transformers) happen inside :meth:`BgeM3Encoder.load`, never at import.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import EncoderError
from rag.types import Encoding, SparseVector

DEFAULT_MODEL = "BAAI/bge-m3"
# FlagEmbedding builds both heads with random weights, and loads neither, unless both files are present.
HEAD_FILES = ("sparse_linear.pt", "colbert_linear.pt")
# Files of the hub repo that inference never reads (ONNX export ~2.3 GB, README images, other frameworks).
IGNORED_FILES = [
    "onnx/*",
    "imgs/*",
    "*.onnx",
    "*.onnx_data",
    "flax_model.msgpack",
    "rust_model.ot",
    "tf_model.h5",
]


def lexical_weights(
    token_ids: Sequence[int], token_weights: Sequence[float], special_ids: Collection[int]
) -> dict[int, float]:
    """Return BGE-M3's lexical weights: per token id the max weight over its positions, positive only,
    special tokens dropped (FlagEmbedding's ``_process_token_weights``)."""
    weights: dict[int, float] = {}
    for token_id, weight in zip(token_ids, token_weights, strict=True):
        if token_id not in special_ids and weight > 0:
            weights[token_id] = max(float(weight), weights.get(token_id, 0.0))
    return weights


class AlikeForQueries:
    """What both BGE-M3 runtimes share: queries and passages are encoded alike, without prefixes, and the
    lexical weights are learned (no IDF). A subclass implements ``_encode``."""

    __slots__ = ()

    @property
    def lexical_idf(self) -> bool:
        """False: BGE-M3's lexical weights are learned for queries and passages alike."""
        return False

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Encode passages (same as queries for BGE-M3)."""
        return self._encode(_sequence(texts))

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Encode queries (same as passages for BGE-M3)."""
        return self._encode(_sequence(texts))

    def _encode(self, texts: Sequence[str]) -> list[Encoding]:
        raise NotImplementedError


def _sequence(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got one str; wrap it in a list")
    return texts


@dataclass(frozen=True, slots=True)
class BgeM3Encoder(AlikeForQueries):
    """BGE-M3 (dense 1024-d for the real model, lexical weights, optional ColBERT); queries and passages
    are encoded alike, without prefixes."""

    model: Any = field(repr=False)  # FlagEmbedding's BGEM3FlagModel
    source: str  # the hub id as given, or the model directory's absolute path
    batch_size: int = 16
    max_length: int = 8192
    colbert: bool = False

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        use_fp16: bool = False,
        batch_size: int = 16,
        max_length: int = 8192,
        colbert: bool = False,
    ) -> BgeM3Encoder:
        """Load BGE-M3 from a local directory or a hub id (from the cache, else downloaded)."""
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"need batch_size >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        require_packages("BGE-M3 encoder")
        directory, source = _locate(model)
        _check_heads(directory)
        flag_model = _load_flag_model(directory, device, use_fp16)
        _check_max_length(flag_model, directory, max_length)
        return cls(flag_model, source, batch_size, max_length, colbert)

    @property
    def name(self) -> str:
        """``bge-m3:`` followed by the hub id or the directory's absolute path."""
        return f"bge-m3:{self.source}"

    @property
    def dim(self) -> int:
        """Dense dimension: the backbone's hidden size (1024 for BAAI/bge-m3)."""
        return int(_backbone_config(self.model).hidden_size)

    @property
    def sparse_dim(self) -> int:
        """Size of the tokenizer's vocabulary, the space lexical weights live in."""
        return len(self.model.tokenizer)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, ``<s>`` and ``</s>`` included, before truncation."""
        return len(self.model.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def _encode(self, texts: Sequence[str]) -> list[Encoding]:
        if not texts:
            return []
        # One call for all texts: FlagEmbedding sorts them by length and batches by batch_size itself, and
        # each call spends one extra forward pass probing the batch size, so per-batch calls would double it.
        output = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            max_length=self.max_length,
            return_dense=True,
            return_sparse=True,
            return_colbert_vecs=self.colbert,
        )
        dense = np.asarray(output["dense_vecs"], dtype=np.float32)  # float16 under use_fp16 on a GPU
        colbert = output["colbert_vecs"] or [None] * len(texts)
        return [
            Encoding(vector, self._sparse(weights), _float32(vectors))
            for vector, weights, vectors in zip(dense, output["lexical_weights"], colbert, strict=True)
        ]

    def _sparse(self, weights: Mapping[str, Any]) -> SparseVector:
        # FlagEmbedding keys lexical weights by the token id as a string, with numpy scalar weights.
        return SparseVector(
            {int(token_id): float(weight) for token_id, weight in weights.items()}, self.sparse_dim
        )


def _float32(vectors: Any) -> np.ndarray | None:
    return None if vectors is None else np.asarray(vectors, dtype=np.float32)


def _backbone_config(flag_model: Any) -> Any:
    # BGEM3FlagModel.model is FlagEmbedding's M3 wrapper; its .model is the XLM-R backbone.
    return flag_model.model.model.config


def _locate(model: str) -> tuple[Path, str]:
    """Return the model directory and the identity to record: a local path, or a hub id's snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve(), str(path.resolve())
    if path.exists() or path.is_absolute() or model.startswith((".", "~")):
        raise EncoderError(
            f"BGE-M3 model directory {path} does not exist or is not a directory; "
            f"pass a directory holding a BGE-M3 checkpoint or a hub id like {DEFAULT_MODEL}"
        )
    return _download(model), model


def _download(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    # The hub's own errors (LocalEntryNotFoundError, HfHubHTTPError, ...) are OSErrors, repo-id validation
    # is a ValueError; errors.HTTPError is its HTTP client's base error (requests, httpx or httpx2 by
    # version), which proxy and mid-download failures escape as.
    from huggingface_hub.errors import HTTPError  # type: ignore[attr-defined]

    try:
        return Path(snapshot_download(repo_id=model_id, ignore_patterns=IGNORED_FILES))
    except (OSError, ValueError, HTTPError) as exc:
        # The hub's messages run to several lines; the first one says what went wrong.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncoderError(
            f"could not load {model_id}: {reason}; download it on a machine with internet or pass a local path"
        ) from exc


def _check_heads(directory: Path) -> None:
    missing = [name for name in HEAD_FILES if not (directory / name).is_file()]
    if missing:
        raise EncoderError(
            f"{directory} lacks {' and '.join(missing)}; a BGE-M3 checkpoint must contain sparse_linear.pt "
            f"and colbert_linear.pt (copy them from {DEFAULT_MODEL} or use a complete checkpoint)"
        )


_PACKAGES = ("torch", "FlagEmbedding", "huggingface_hub")


def require_packages(component: str, packages: Sequence[str] = _PACKAGES) -> None:
    """Raise EncoderError naming ``packages`` that are not installed and how to install them.

    Checked before anything else so a core install (no torch) gets the fix, not a traceback.
    """
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise EncoderError(
            f"the {component} needs packages that are not installed ({', '.join(missing)}); "
            "pip install torch (the build for your machine), then pip install 'rosetta-rag[bge-m3]'"
        )


def _load_flag_model(directory: Path, device: str | None, use_fp16: bool) -> Any:
    try:
        import torch
        from FlagEmbedding import BGEM3FlagModel
    except ImportError as exc:
        raise EncoderError(
            f"the BGE-M3 encoder needs torch and FlagEmbedding: {exc}; "
            "pip install 'rosetta-rag[bge-m3]' after installing torch"
        ) from exc
    try:
        return BGEM3FlagModel(str(directory), use_fp16=use_fp16, devices=device or _default_device(torch))
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderError(
            f"could not load BGE-M3 from {directory}: {exc}; "
            "check that the directory holds a complete, uncorrupted checkpoint"
        ) from exc


def _default_device(torch: Any) -> str:
    # One device: FlagEmbedding's default is every visible GPU, served by a pool of worker processes.
    if torch.cuda.is_available():
        return "cuda:0"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def _check_max_length(flag_model: Any, directory: Path, max_length: int) -> None:
    config = _backbone_config(flag_model)
    check_max_length(int(config.max_position_embeddings), int(config.pad_token_id), directory, max_length)


def check_max_length(max_positions: int, pad_token_id: int, directory: Path, max_length: int) -> None:
    """Raise ValueError when ``max_length`` tokens exceed what the checkpoint in ``directory`` can read."""
    # XLM-R numbers positions from pad_token_id + 1, so that many embeddings are unusable.
    limit = max_positions - pad_token_id - 1
    if max_length > limit:
        raise ValueError(
            f"max_length {max_length} exceeds the {limit} tokens the model in {directory} "
            f"can read; pass max_length <= {limit}"
        )
