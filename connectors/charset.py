"""Legacy encodings (Shift_JIS, EUC-JP, GBK/GB18030, Big5, EUC-KR, cp1251 ...) detected by charset-normalizer.

A detection is used only when it is confident: enough non-ASCII bytes to judge, a clean decoding, and
no near-equal candidate that reads the bytes differently. Anything else stays an error naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.errors import ConnectorError
from rag.types import JsonValue

# Fewer non-ASCII bytes than this cannot tell encodings apart ("é" is two bytes in half of them).
MIN_EVIDENCE = 16
# charset-normalizer's "chaos" (share of implausible characters, in %) a detection may show at most.
MAX_CHAOS = 10.0
# A candidate this close to the best, in chaos and in language coherence (both %), is a rival.
RIVAL_CHAOS = 5.0
RIVAL_COHERENCE = 10.0
ASCII_BYTES = bytes(range(0x80))
# Shift_JIS maps the single bytes 0xA1-0xDF to half-width katakana, so any single-byte text (KOI8-R,
# Windows-125x) also "reads" as Shift_JIS; real Japanese text is seldom more than a fifth half-width kana.
HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]")
MAX_HALFWIDTH_KANA = 0.2
FIX = "convert it with `iconv -f <encoding> -t utf-8`, or declare its charset"


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text and the codec that decoded it; ``source`` says how it was chosen: bom, declared, utf-8 or detected."""

    text: str
    encoding: str
    source: str

    def metadata(self) -> dict[str, JsonValue]:
        """Return the Document metadata that records the encoding."""
        return {"encoding": self.encoding, "encoding_source": self.source}


def detect(data: bytes, uri: str, utf8_error: UnicodeDecodeError) -> Decoded:
    """Return ``data`` decoded in its detected encoding, or raise ConnectorError saying why it is not sure."""
    invalid = f"{uri}: not valid utf-8 at byte {utf8_error.start}"
    evidence = len(data.translate(None, ASCII_BYTES))
    if evidence < MIN_EVIDENCE:
        raise ConnectorError(f"{invalid}, and {evidence} non-ASCII bytes are too few to detect its encoding; {FIX}")
    if _mostly_utf8(data):
        raise ConnectorError(f"{invalid}, though most of it is UTF-8 (a damaged file?); repair it, or {FIX}")
    from charset_normalizer import from_bytes  # only for files that are not UTF-8: it costs ~0.1 s to import

    matches = list(from_bytes(data))
    if not matches or matches[0].percent_chaos > MAX_CHAOS:
        raise ConnectorError(f"{invalid}, and no encoding reads it cleanly; {FIX}")
    best = matches[0]
    rivals = [
        match.encoding for match in matches[1:]
        if match.percent_chaos - best.percent_chaos < RIVAL_CHAOS
        and best.percent_coherence - match.percent_coherence < RIVAL_COHERENCE
        and str(match) != str(best)
    ]
    if rivals:
        raise ConnectorError(
            f"{invalid}, and it reads equally well as {best.encoding} or {', '.join(rivals[:3])}; {FIX}"
        )
    text = str(best)
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    if len(HALFWIDTH_KANA.findall(text)) > MAX_HALFWIDTH_KANA * non_ascii:
        raise ConnectorError(
            f"{invalid}, and it reads as {best.encoding} only with half-width katakana, the way single-byte "
            f"text misread as Shift_JIS looks; {FIX}"
        )
    return Decoded(text, best.encoding, "detected")


def _mostly_utf8(data: bytes) -> bool:
    """True when the valid multi-byte UTF-8 characters outnumber the invalid sequences."""
    text = data.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    return non_ascii - broken > broken
