"""Hardening of Ray Serve's HTTP proxy against slow clients (Serve's documented proxy callback).

Serve's proxy hands a request to a replica as soon as its headers are in; the replica then pulls the
body from the proxy while holding one of its ``max_ongoing_requests`` slots, and uvicorn itself puts
no time limit on receiving headers or a body. So a few dozen clients that send half a request hold
every slot. Activated by ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=mahppo.serve.proxy:proxy_middlewares``
in the environment of the Ray cluster (``mahppo serve`` sets it for the Ray it starts), this module

- gives every request a read deadline in the proxy (``MAHPPO_READ_TIMEOUT_S``, default 10 s, from the
  first byte of a request, or from the connection's opening, until its whole body is in): a client
  that has not sent its headers and body by then gets ``408`` and its connection is closed;
- buffers each body in the proxy (up to ``MAHPPO_PROXY_BUFFER_BYTES``, 1 MiB + 1, beyond which it
  streams as before and the replica's own limit answers 413) before the request goes to a replica,
  so a slow body never holds a replica slot;
- answers 413 at once, without reading the body, to a request whose declared ``Content-Length`` is
  over ``MAHPPO_MAX_BODY_BYTES`` (1 MiB, the replica's ``max_body_bytes``), and closes its connection
  (not a 408 once the read deadline has passed).
"""

from __future__ import annotations

import os
from typing import Any

READ_TIMEOUT_ENV = "MAHPPO_READ_TIMEOUT_S"
BUFFER_ENV = "MAHPPO_PROXY_BUFFER_BYTES"
MAX_BODY_ENV = "MAHPPO_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1 << 20
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "mahppo.serve.proxy:proxy_middlewares"
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_BUFFER_BYTES = (1 << 20) + 1
_TIMEOUT_BODY = b'{"detail": "request: not received in time", "field": "request"}'
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def _too_large(limit: int) -> bytes:
    return (b'{"detail": "body: request body exceeds the limit of %d bytes", "field": "body", "errors": '
            b'[{"field": "body", "message": "request body exceeds the limit of %d bytes"}]}' % (limit, limit))


class BufferedBodyMiddleware:
    """Reads the whole body (up to ``limit`` bytes) before the proxy forwards the request; 413 at once for
    a declared ``Content-Length`` over ``max_body``."""

    def __init__(self, app: Any, limit: int = DEFAULT_BUFFER_BYTES, max_body: int | None = None):
        self.app = app
        self.limit = int(limit)
        self.max_body = None if max_body is None else int(max_body)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.max_body is not None:
            for name, value in scope.get("headers", []):
                if name == b"content-length" and value.strip().isdigit() and int(value) > self.max_body:
                    body = _too_large(self.max_body)
                    await send({"type": "http.response.start", "status": 413, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")]})
                    await send({"type": "http.response.body", "body": body})
                    return
        pending: list[dict] = []
        size = 0
        while True:
            message = await receive()
            pending.append(message)
            if message["type"] != "http.request":  # a disconnect (the read deadline closes stalled ones)
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > self.limit:
                break

        async def replay() -> dict:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)


def install_read_deadline(timeout_s: float) -> None:
    """Patch uvicorn's h11 protocol (and make it the one "auto" picks): a request whose headers and body
    are not all in ``timeout_s`` after its first byte (or after the connection opened) is answered 408
    and its connection closed. Idempotent."""
    import h11
    import uvicorn.protocols.http.auto as auto
    from uvicorn.protocols.http.h11_impl import H11Protocol

    auto.AutoHTTPProtocol = H11Protocol
    if getattr(H11Protocol, "_mahppo_deadline", None) is not None:
        H11Protocol._mahppo_deadline = timeout_s
        return
    H11Protocol._mahppo_deadline = timeout_s
    made, received, lost = H11Protocol.connection_made, H11Protocol.data_received, H11Protocol.connection_lost

    def reading(self: Any) -> bool:
        conn = self.conn
        if conn.their_state is h11.SEND_BODY:
            return True
        return conn.their_state is h11.IDLE and bool(conn.trailing_data[0]) or self.cycle is None

    def expire(self: Any) -> None:
        self._mahppo_timer = None
        if reading(self) and not self.transport.is_closing():
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()

    def rearm(self: Any) -> None:
        timer = getattr(self, "_mahppo_timer", None)
        if reading(self):
            if timer is None:
                self._mahppo_timer = self.loop.call_later(H11Protocol._mahppo_deadline, expire, self)
        elif timer is not None:
            timer.cancel()
            self._mahppo_timer = None

    def connection_made(self: Any, transport: Any) -> None:
        made(self, transport)
        rearm(self)

    def data_received(self: Any, data: bytes) -> None:
        received(self, data)
        rearm(self)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        timer = getattr(self, "_mahppo_timer", None)
        if timer is not None:
            timer.cancel()
            self._mahppo_timer = None
        lost(self, exc)

    H11Protocol.connection_made = connection_made
    H11Protocol.data_received = data_received
    H11Protocol.connection_lost = connection_lost


def proxy_middlewares() -> list:
    """The proxy callback: installs the read deadline, returns the body-buffering middleware."""
    from starlette.middleware import Middleware

    install_read_deadline(_env_float(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S))
    return [Middleware(BufferedBodyMiddleware, limit=int(_env_float(BUFFER_ENV, DEFAULT_BUFFER_BYTES)),
                       max_body=int(_env_float(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)))]


def enable_for_local_ray(read_timeout_s: float | None = None, max_body_bytes: int | None = None) -> None:
    """Set the environment so that a Ray started afterwards from this process runs the callback (an
    explicit setting of the user's wins)."""
    os.environ.setdefault(CALLBACK_ENV, CALLBACK)
    if read_timeout_s is not None:
        os.environ[READ_TIMEOUT_ENV] = f"{read_timeout_s:g}"
    if max_body_bytes is not None:
        os.environ[MAX_BODY_ENV] = str(int(max_body_bytes))
        os.environ[BUFFER_ENV] = str(int(max_body_bytes) + 1)
