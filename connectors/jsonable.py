"""Keep only the JSON-representable part of third-party metadata (YAML front matter, LlamaIndex)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from rag.types import JsonValue


class _Skip:
    """Marks a value with no JSON form; dropped by the caller."""


SKIP = _Skip()


def jsonable(mapping: Mapping[Any, object]) -> dict[str, JsonValue]:
    """Return ``mapping`` with string keys and JSON values; dates become ISO strings, other types are dropped."""
    converted = {str(key): to_json(value) for key, value in mapping.items()}
    return {key: value for key, value in converted.items() if not isinstance(value, _Skip)}


def to_json(value: object) -> JsonValue | _Skip:
    """Return ``value`` as a JSON value, or SKIP when it has none (bytes, objects, NaN)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else SKIP
    if isinstance(value, (dt.date, dt.time)):
        # datetime is a date subclass, so this covers YAML timestamps too.
        return value.isoformat()
    if isinstance(value, Mapping):
        return jsonable(value)
    if isinstance(value, (list, tuple)):
        items = [to_json(item) for item in value]
        return [item for item in items if not isinstance(item, _Skip)]
    return SKIP
