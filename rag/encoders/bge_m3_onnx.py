"""BGE-M3 through ONNX Runtime: FlagEmbedding's three outputs, without torch at run time.

A BGE-M3 checkpoint (XLM-R backbone, ``sparse_linear.pt``, ``colbert_linear.pt``) is exported once into one
ONNX graph that computes what FlagEmbedding computes: the normalised CLS vector, ``relu(sparse_linear(h))``
per token and the normalised ``colbert_linear(h[1:])`` vectors. ``int8`` quantises that graph's weights
dynamically (onnxruntime.quantization). Exports live in ``cache_dir/<checkpoint key>/``, written under a
lock into a temporary directory and renamed, so two processes never read a half-written model.

The export needs torch and transformers (the ``bge-m3`` extra); encoding needs only onnxruntime, tokenizers
and numpy. Tokenising, length-sorted batching and the lexical-weight and ColBERT post-processing follow
FlagEmbedding's ``BGEM3FlagModel.encode``, so fp32 outputs equal its outputs (tests/test_encoders_bge_m3_onnx.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Precision
from rag.encoders.bge_m3 import DEFAULT_MODEL, HEAD_FILES, AlikeForQueries, lexical_weights
from rag.errors import EncoderError
from rag.types import Encoding, SparseVector

# Bumped whenever the exported graph changes, so older exports are not reused.
EXPORT_VERSION = 1
OPSET = 17
_INPUTS = ("input_ids", "attention_mask")
_OUTPUTS = ("dense", "token_weights", "colbert")


def checkpoint_key(directory: Path) -> str:
    """A key that changes when the checkpoint's weights, heads or tokenizer change (names, sizes, mtimes)."""
    digest = hashlib.sha256(f"export-v{EXPORT_VERSION}".encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".onnx" not in p.name):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def export(directory: Path, cache_dir: Path, precision: Precision,
           notice: Callable[[str], None] | None = None) -> Path:
    """Return the ONNX file for ``directory``'s checkpoint at ``precision``, exporting it first if needed
    (``notice`` is told first: the real BGE-M3 takes minutes on a CPU)."""
    if precision is Precision.FP16:
        raise EncoderError("fp16 runs through torch on a GPU, not ONNX Runtime; use precision fp32 or int8 on CPU")
    target = cache_dir / checkpoint_key(directory)
    model = target / f"model-{precision.value}.onnx"
    if model.is_file():
        return model
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".export.lock"):
        if model.is_file():  # another process exported it while we waited
            return model
        if notice is not None:
            notice(f"encoder: exporting {directory} to ONNX ({precision.value}), once, into {target}")
        fp32 = target / "model-fp32.onnx"
        if not fp32.is_file():
            _publish(target, "model-fp32.onnx", lambda out: _export_fp32(directory, out))
        if precision is Precision.INT8:
            _publish(target, "model-int8.onnx", lambda out: _quantize(fp32, out))
    return model


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(target: Path, name: str, write: Any) -> None:
    """Write ``name`` (and its external-data file) in a temporary directory, then move it into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        out = Path(tmp) / name
        write(out)
        for produced in sorted(Path(tmp).iterdir(), key=lambda p: p.name == name):  # the graph last
            os.replace(produced, target / produced.name)


def _export_fp32(directory: Path, out: Path) -> None:
    try:
        import torch
        from transformers import XLMRobertaModel
    except ImportError as exc:
        raise EncoderError(
            f"exporting BGE-M3 to ONNX needs torch and transformers: {exc}; "
            "pip install torch (the build for your machine), then pip install 'rosetta-rag[bge-m3]'"
        ) from exc

    class M3(torch.nn.Module):  # FlagEmbedding's EncoderOnlyEmbedderM3Model.forward, inference only
        def __init__(self) -> None:
            super().__init__()
            self.backbone = XLMRobertaModel.from_pretrained(str(directory), add_pooling_layer=False)
            hidden = int(self.backbone.config.hidden_size)
            self.sparse_linear = torch.nn.Linear(hidden, 1)
            self.colbert_linear = torch.nn.Linear(hidden, hidden)
            for head, name in ((self.sparse_linear, HEAD_FILES[0]), (self.colbert_linear, HEAD_FILES[1])):
                head.load_state_dict(torch.load(directory / name, map_location="cpu", weights_only=True))

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any, Any]:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            dense = torch.nn.functional.normalize(hidden[:, 0], dim=-1)
            token_weights = torch.relu(self.sparse_linear(hidden)).squeeze(-1)
            colbert = self.colbert_linear(hidden[:, 1:]) * attention_mask[:, 1:][:, :, None].float()
            return dense, token_weights, torch.nn.functional.normalize(colbert, dim=-1)

    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # it warns of the pooler weights BGE-M3 leaves unused
    try:
        module = M3().eval()
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderError(f"could not load BGE-M3 from {directory} for the ONNX export: {exc}") from exc
    finally:
        transformers_logging.set_verbosity(verbosity)
    example = (torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "dense": {0: "batch"}, "token_weights": {0: "batch", 1: "tokens"},
               "colbert": {0: "batch", 1: "tokens_1"}}
    raw = out.parent / "raw"
    raw.mkdir()
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about Python-side shape checks in transformers' code; the axes stay dynamic.
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        torch.onnx.export(module, example, str(raw / out.name), input_names=list(_INPUTS),
                          output_names=list(_OUTPUTS), dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    _single_file(raw / out.name, out)
    shutil.rmtree(raw)


def _single_file(exported: Path, out: Path) -> None:
    """Re-save ``exported`` as ``out``, its weights in one ``out.data`` file when the graph is over 2 GB
    (the exporter writes one file per tensor then: ~400 files for BGE-M3)."""
    import onnx

    model = onnx.load(str(exported))
    external = len(list(exported.parent.iterdir())) > 1
    onnx.save_model(model, str(out), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=f"{out.name}.data")


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # int8 weights of the real model are ~0.6 GB: one file, under protobuf's 2 GB limit.
    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])


@dataclass(frozen=True, slots=True)
class BgeM3OnnxEncoder(AlikeForQueries):
    """BGE-M3 on ONNX Runtime (CPU): dense, lexical weights and, on request, ColBERT vectors."""

    session: Any = field(repr=False)  # onnxruntime.InferenceSession
    tokenizer: Any = field(repr=False)  # tokenizers.Tokenizer, truncating at max_length
    counter: Any = field(repr=False)  # the same tokenizer without truncation, for count_tokens
    special_ids: frozenset[int]
    pad_id: int
    hidden: int
    vocabulary: int
    source: str
    precision: Precision
    batch_size: int = 16
    max_length: int = 8192
    colbert: bool = False

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        precision: Precision = Precision.FP32,
        cache_dir: Path,
        batch_size: int = 16,
        max_length: int = 8192,
        colbert: bool = False,
        threads: int | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> BgeM3OnnxEncoder:
        """Load (exporting on first use) BGE-M3 from a local directory or a hub id for ONNX Runtime."""
        from rag.encoders.bge_m3 import _check_heads, _locate, check_max_length, require_packages

        if batch_size < 1 or max_length < 2:
            raise ValueError(f"need batch_size >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        require_packages("BGE-M3 ONNX encoder", ("onnxruntime", "tokenizers", "huggingface_hub"))
        directory, source = _locate(model)
        _check_heads(directory)
        config = _read_json(directory / "config.json")
        check_max_length(int(config["max_position_embeddings"]), int(config["pad_token_id"]), directory, max_length)
        tokenizer, special_ids, pad_id = _tokenizer(directory, max_length)
        counter, _, _ = _tokenizer(directory, None)
        session = _session(export(directory, cache_dir, precision, notice), threads)
        return cls(session, tokenizer, counter, special_ids, pad_id, int(config["hidden_size"]), tokenizer.get_vocab_size(),
                   source, precision, batch_size, max_length, colbert)

    @property
    def name(self) -> str:
        """The same name as the FlagEmbedding encoder: fp32 outputs are equal, so collections are shared."""
        return f"bge-m3:{self.source}"

    @property
    def cache_name(self) -> str:
        """int8 outputs differ a little from fp32 ones, so the encoding cache keeps them apart."""
        return self.name if self.precision is Precision.FP32 else f"{self.name}#{self.precision.value}"

    @property
    def dim(self) -> int:
        return self.hidden

    @property
    def sparse_dim(self) -> int:
        return self.vocabulary

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, ``<s>`` and ``</s>`` included, before truncation."""
        return len(self.counter.encode(text).ids)

    def _encode(self, texts: Sequence[str]) -> list[Encoding]:
        ids = [encoded.ids for encoded in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first, as FlagEmbedding
        out: list[Encoding | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            for i, encoding in zip(batch, self._run([ids[i] for i in batch]), strict=True):
                out[i] = encoding
        return [e for e in out if e is not None]

    def _run(self, batch: list[list[int]]) -> list[Encoding]:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        dense, weights, colbert = self.session.run(list(_OUTPUTS), {"input_ids": input_ids, "attention_mask": mask})
        encodings = []
        for row, ids in enumerate(batch):
            sparse = lexical_weights(ids, weights[row, :len(ids)].tolist(), self.special_ids)
            vectors = np.asarray(colbert[row, :len(ids) - 1], dtype=np.float32) if self.colbert else None
            encodings.append(Encoding(np.asarray(dense[row], dtype=np.float32),
                                      SparseVector(sparse, self.vocabulary), vectors))
        return encodings


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise EncoderError(f"cannot read {path}: {exc}; the BGE-M3 checkpoint is incomplete") from exc


def _tokenizer(directory: Path, max_length: int | None) -> tuple[Any, frozenset[int], int]:
    """The checkpoint's fast tokenizer, truncating like FlagEmbedding (unless ``max_length`` is None); its
    special ids (cls, eos, pad, unk) and the pad id."""
    from tokenizers import Tokenizer

    path = directory / "tokenizer.json"
    if not path.is_file():
        raise EncoderError(f"{directory} lacks tokenizer.json, which the ONNX encoder reads; "
                           f"use a complete checkpoint (the hub's {DEFAULT_MODEL} ships one)")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length)
    special_map = directory / "special_tokens_map.json"
    special = _read_json(special_map) if special_map.is_file() else {}
    names = [special.get(key, default) for key, default in
             (("cls_token", "<s>"), ("eos_token", "</s>"), ("pad_token", "<pad>"), ("unk_token", "<unk>"))]
    tokens = [name["content"] if isinstance(name, dict) else name for name in names]
    ids = [tokenizer.token_to_id(token) for token in tokens]
    if any(i is None for i in ids):
        raise EncoderError(f"{path} lacks one of the special tokens {tokens}; the checkpoint is not BGE-M3's format")
    return tokenizer, frozenset(int(i) for i in ids), int(ids[2])


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a damaged file
        raise EncoderError(f"could not load the ONNX export {path}: {exc}; delete {path.parent} to export it again") from exc

