"""Encoders: ``bge-m3`` (BAAI/bge-m3, dense + sparse + ColBERT), ``e5-small`` (offline), and ``auto``."""

from __future__ import annotations

from collections.abc import Callable

from rag.encoders.e5 import E5_NAME, E5SmallEncoder
from rag.errors import EncoderError
from rag.types import Encoder

BGE_M3_PREFIX = "bge-m3:"


def load_bge_m3(model: str, device: str | None, batch_size: int) -> Encoder:
    """Load BGE-M3 from a hub id or a local directory."""
    from rag.encoders.bge_m3 import BgeM3Encoder

    return BgeM3Encoder.load(model, device=device, batch_size=batch_size)


def load_auto(model: str, device: str | None, batch_size: int, notice: Callable[[str], None]) -> Encoder:
    """BGE-M3 when it loads, else e5-small; the choice and the reason are passed to ``notice``."""
    try:
        encoder = load_bge_m3(model, device, batch_size)
    except EncoderError as exc:
        notice(f"encoder: e5-small (offline multilingual-e5-small); bge-m3 is unavailable: {exc}")
        return E5SmallEncoder.load(batch_size=batch_size)
    notice(f"encoder: bge-m3 ({model})")
    return encoder


def encoder_for_name(name: str, device: str | None, batch_size: int) -> Encoder:
    """Load the encoder a collection records by name (``e5-small`` or ``bge-m3:<model>``)."""
    if name == E5_NAME:
        return E5SmallEncoder.load(batch_size=batch_size)
    if name.startswith(BGE_M3_PREFIX):
        return load_bge_m3(name[len(BGE_M3_PREFIX):], device, batch_size)
    raise EncoderError(f"unknown encoder {name!r} recorded in the database; expected e5-small or bge-m3:<model>")


__all__ = ["BGE_M3_PREFIX", "E5SmallEncoder", "encoder_for_name", "load_auto", "load_bge_m3"]
