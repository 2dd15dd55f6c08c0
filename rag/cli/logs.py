"""Where the ``rosetta`` command sends the logs: Rosetta's loggers (``rag.*``, ``connectors.*``) to stderr, so
``--json`` on stdout stays clean, at the level -v/-vv or ``ROSETTA_LOG_LEVEL`` asks for, with secrets redacted.

The library itself only logs (each module to ``logging.getLogger(__name__)``); a program that imports it
configures logging as it likes. Third-party loggers are left as they are.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from rag.store.database import redact

LOGGERS = ("rag", "connectors")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# An Authorization header, or an error text that quotes one.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")


class RedactingFormatter(logging.Formatter):
    """Formats a record, traceback included, then replaces the secrets: the given values (API keys),
    database URL passwords and bearer tokens become ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(FORMAT)
        # Longest first, so a key that contains another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        """The formatted line with no secret in it."""
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(_BEARER.sub(r"\1***", text))


class StderrHandler(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (a test runner swaps it between commands)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write one formatted record and a newline."""
        try:
            sys.stderr.write(self.format(record) + "\n")
        except (OSError, ValueError):  # a closed or broken stderr: logging must never fail the command
            self.handleError(record)


def setup_logging(level: int, secrets: Iterable[str] = ()) -> StderrHandler:
    """Send Rosetta's loggers to stderr at ``level``, redacting ``secrets``; replaces an earlier setup."""
    handler = StderrHandler()
    handler.setFormatter(RedactingFormatter(secrets))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
    return handler
