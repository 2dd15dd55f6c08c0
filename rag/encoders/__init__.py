"""Encoders: ``bge-m3`` (BAAI/bge-m3, dense + sparse + ColBERT), ``e5-small`` (offline), and ``auto``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.config import Precision, Runtime
from rag.encoders.e5 import E5_NAME, E5SmallEncoder
from rag.errors import EncoderError
from rag.types import Encoder

BGE_M3_PREFIX = "bge-m3:"


@dataclass(frozen=True, slots=True)
class BgeM3Options:
    """How BGE-M3 runs: its precision, the runtime, and where ONNX exports are kept (None: no ONNX)."""

    precision: Precision = Precision.FP32
    runtime: Runtime = Runtime.AUTO
    onnx_cache: Path | None = None
    notice: Callable[[str], None] | None = None  # told before a (minutes-long) ONNX export starts


def load_bge_m3(model: str, device: str | None, batch_size: int, options: BgeM3Options = BgeM3Options()) -> Encoder:
    """Load BGE-M3 from a hub id or a local directory: on ONNX Runtime for a CPU (unless the runtime says
    torch), through FlagEmbedding's torch on a GPU or when asked."""
    from rag.encoders.bge_m3 import BgeM3Encoder

    if _uses_onnx(device, options):
        from rag.encoders.bge_m3_onnx import BgeM3OnnxEncoder

        if options.onnx_cache is None:
            raise EncoderError("the ONNX runtime for BGE-M3 needs a cache directory for its export")
        return BgeM3OnnxEncoder.load(model, precision=options.precision, cache_dir=options.onnx_cache,
                                     batch_size=batch_size, notice=options.notice)
    if options.precision is Precision.INT8:
        raise EncoderError("precision int8 runs on ONNX Runtime; set models.runtime to onnx or auto on a CPU")
    return BgeM3Encoder.load(model, device=device, use_fp16=options.precision is Precision.FP16,
                             batch_size=batch_size)


def _uses_onnx(device: str | None, options: BgeM3Options) -> bool:
    if options.runtime is not Runtime.AUTO:
        if options.runtime is Runtime.ONNX and options.precision is Precision.FP16:
            raise EncoderError("precision fp16 runs on torch (a GPU); use fp32 or int8 with the onnx runtime")
        return options.runtime is Runtime.ONNX
    if options.precision is Precision.FP16:
        return False
    return (device or "cpu") == "cpu" and options.onnx_cache is not None


def load_auto(model: str, device: str | None, batch_size: int, notice: Callable[[str], None],
              options: BgeM3Options = BgeM3Options()) -> Encoder:
    """BGE-M3 when it loads, else e5-small; the choice and the reason are passed to ``notice``."""
    try:
        encoder = load_bge_m3(model, device, batch_size, options)
    except EncoderError as exc:
        notice(f"encoder: e5-small (offline multilingual-e5-small); bge-m3 is unavailable: {exc}")
        return E5SmallEncoder.load(batch_size=batch_size)
    notice(f"encoder: bge-m3 ({model})")
    return encoder


def encoder_for_name(name: str, device: str | None, batch_size: int,
                     options: BgeM3Options = BgeM3Options()) -> Encoder:
    """Load the encoder a collection records by name (``e5-small`` or ``bge-m3:<model>``)."""
    if name == E5_NAME:
        return E5SmallEncoder.load(batch_size=batch_size)
    if name.startswith(BGE_M3_PREFIX):
        return load_bge_m3(name[len(BGE_M3_PREFIX):], device, batch_size, options)
    raise EncoderError(f"collection was built by encoder {name!r}, which is not installed here; select it with "
                       "--encoder (ROSETTA_ENCODER): openai-compatible with ROSETTA_EMBEDDINGS_BASE_URL and "
                       "ROSETTA_EMBEDDINGS_IDENTITY for a remote server's vectors, or the plugin that provides it")


__all__ = ["BGE_M3_PREFIX", "BgeM3Options", "E5SmallEncoder", "encoder_for_name", "load_auto", "load_bge_m3"]
