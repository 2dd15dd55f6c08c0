"""What an LLM server's HTTP status means, in words that say what to do next (shared by OpenAI and Cohere).

The server's own text is kept short and never shown for a 401: OpenAI's 401 text quotes part of the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Server text longer than this is cut; a stack trace or HTML error page is no help in one red line.
DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Server:
    """Who answered, for messages: ``what`` reads like "Cohere at https://api.cohere.com"."""

    what: str
    api_key_env: str
    model: str
    retries: int
    secret: str = field(default="", repr=False, compare=False)

    def scrub(self, text: str) -> str:
        """``text`` with the API key (if the server echoed it) replaced by ``***``."""
        return text.replace(self.secret, "***") if len(self.secret) >= 8 else text


def status_message(server: Server, status: int | None, detail: str) -> str:
    """The message for an HTTP error status that survived the SDK's retries (the server's text scrubbed)."""
    detail = server.scrub(detail)
    said = f"HTTP {status}: {detail}" if detail and status not in (401, 498) else f"HTTP {status}"
    if status in (401, 498):
        return f"{server.what} rejected the API key ({said}); check ${server.api_key_env}"
    if status == 403:
        return (f"{server.what} refused the request ({said}); check that the key in ${server.api_key_env} "
                f"may use model {server.model!r}")
    if status == 404:
        return f"{server.what} does not know model {server.model!r} ({said}); check the model name and the base URL"
    if status == 429:
        return f"{server.what} rate-limited the request ({said}) after {server.retries} retries; retry later"
    if status is not None and status >= 500:
        return f"{server.what} failed ({said}) after {server.retries} retries; retry later"
    if status is not None and status < 300:
        return unreadable(server, said)
    return f"{server.what} refused the request ({said}); check the model name {server.model!r} and the request"


def unreadable(server: Server, why: str) -> str:
    """The message for a reply body that is not what the API promises (malformed JSON, wrong shape)."""
    return (f"{server.what} sent a reply that could not be read ({why}); check that the base URL points at "
            "the right API, or retry")


def timed_out(server: Server) -> str:
    """The message for a request that got no answer in time."""
    return f"{server.what} did not answer in time; retry later or raise the generation timeout"


def unreachable(server: Server, reason: str) -> str:
    """The message for a connection that could not be made."""
    return (f"could not reach {server.what} ({reason}); start the server or fix the base URL, and check the "
            "network and proxy settings")


def broke_off(server: Server, reason: str) -> str:
    """The message for a connection that broke during a request or a reply stream."""
    return f"the connection to {server.what} broke off ({reason}); retry"


def connection_message(server: Server, cause: BaseException | None) -> str:
    """``unreachable`` when connecting failed, else ``broke_off``; ``cause`` is httpx's (or httpx2's) error."""
    reason = f"{type(cause).__name__}: {cause}" if cause is not None else "no connection"
    # By class name, so httpx and httpx2 (the openai SDK's fork) read alike.
    if cause is None or type(cause).__name__ == "ConnectError":
        return unreachable(server, reason)
    return broke_off(server, reason)


def cut_stream(server: Server) -> str:
    """The message for a reply stream that ended before the server said it was finished."""
    return f"the reply stream from {server.what} ended before it finished; retry"


def detail(body: Any) -> str:
    """The server's error text from a JSON body (``{"error": {"message"}}`` or ``{"message"}``), shortened."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
    else:
        message = body
    text = "" if message is None else " ".join(str(message).split())
    return text if len(text) <= DETAIL_CHARS else f"{text[:DETAIL_CHARS]}..."
