"""What keeps a server safe to expose: API keys, the loopback rule, and a request-body limit.

Keys are compared in constant time and never logged or echoed. A server that would listen on anything but
loopback without keys refuses to start.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from rag.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, keys: frozenset[str], env_name: str) -> None:
    """ConfigError when listening on ``host`` (not loopback) would need keys and none are set."""
    if not keys and not is_loopback(host):
        raise ConfigError(f"refusing to listen on {host} without API keys: set {env_name}=KEY1,KEY2 (the bearer "
                          "tokens clients must send), or listen on 127.0.0.1")


def authorized(header: str | None, keys: frozenset[str]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys`` as a bearer token (any request when no
    keys are set)."""
    if not keys:
        return True
    scheme, _, token = (header or "").partition(" ")
    given = token.strip().encode()
    return scheme.lower() == "bearer" and any(hmac.compare_digest(given, key.encode()) for key in keys)


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """A chunked request body grew past the limit (an HTTPException, so FastAPI's body parsing passes it on
    as a 413 instead of calling it a parse error)."""


class BodyLimit:
    """ASGI middleware: requests over ``limit`` bytes (``upload_limit`` on ``upload_path``) get a 413, by
    their Content-Length, or while a chunked body is read."""

    def __init__(self, app: Asgi, limit: int, upload_limit: int, upload_path: str) -> None:
        self.app, self.limit, self.upload_limit, self.upload_path = app, limit, upload_limit, upload_path

    def _too_large(self, limit: int) -> str:
        setting = "serve.max_upload_bytes" if limit == self.upload_limit else "serve.max_body_bytes"
        return f"the request body is larger than {limit} bytes ({setting}); send less"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit + 64_000 if scope["path"] == self.upload_path else self.limit
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            await _reject(send, 413, self._too_large(limit))
            return
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(413, self._too_large(limit))
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _reject(send, 413, self._too_large(limit))


class KeyCheck:
    """ASGI middleware: HTTP requests without one of ``keys`` as a bearer token get a 401 (for apps whose
    routes we do not declare, such as the MCP SDK's streamable HTTP app)."""

    def __init__(self, app: Asgi, keys: frozenset[str]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not authorized(header, self.keys):
                await _reject(send, 401, "missing or wrong API key: send 'Authorization: Bearer <key>' with one "
                                         "of the keys in the server's ROSETTA_API_KEYS")
                return
        await self.app(scope, receive, send)
