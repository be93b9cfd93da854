"""Running the app under uvicorn with connection-level defences against slow and numerous clients.

uvicorn's h11 protocol waits forever for a request's headers and body, and its ``limit_concurrency`` counts
idle and half-open connections, so a few dozen clients sending partial headers make every request (``/health``
included) answer 503. :class:`GuardedH11Protocol` adds, per connection (limits from
:class:`~pixelrefer.server.settings.ServerSettings`):

- headers must be complete within ``header_timeout_s`` of the connection opening or of its previous response
  (else 408 and close); the body within ``body_timeout_s`` of the headers, and at ``min_body_rate`` on average
  once it has taken ``header_timeout_s`` (else 408, or a close once a response has started);
- at most ``max_connections`` open: a new connection beyond that evicts one that is still waiting for its
  headers, first those that have sent part of a request line or headers without finishing (the slow-header
  attack; a real client sends its headers at once), oldest first, then idle ones (just opened, or kept alive
  between requests); it is refused with 503 when every open connection is inside a request.

Request-level limits (how many requests are served at once, body size, disconnects) are ASGI middlewares in
:mod:`pixelrefer.server.guards`. :func:`uvicorn_config` is the one place the server's uvicorn options are set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pixelrefer.server.errors import error_body
from pixelrefer.server.settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings

logger = logging.getLogger(__name__)

HEADERS, BODY = "headers", "body"


def _raw_response(status: int, reason: str, kind: str, message: str) -> bytes:
    body = json.dumps(error_body(status, kind, message)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header/body deadlines and a connection cap that sheds slow clients first."""

    settings: ClassVar[ServerSettings] = ServerSettings()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase: str | None = None
        self.phase_since = 0.0
        self.partial_headers = False  # bytes of a request arrived, its headers are not complete yet
        self.body_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------------------------------- uvicorn hooks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._track()
        if len(self.connections) > self.settings.max_connections:
            self._shed()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()
        if self.phase == HEADERS:
            self.partial_headers = True
        elif self.phase == BODY:
            self.body_bytes += len(data)  # an upper bound: the first chunk may end with the headers

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.phase = None
        super().connection_lost(exc)

    # ---------------------------------------------------------------------------------------- deadlines
    def _current_phase(self) -> str | None:
        state = self.conn.their_state
        if state is h11.IDLE:
            return HEADERS
        if state is h11.SEND_BODY:
            return BODY
        return None

    def _track(self) -> None:
        """Arm the deadline of the phase the connection is in, when it has just entered it."""
        phase = self._current_phase() if not self.transport.is_closing() else None
        if phase == self.phase:
            return
        self._disarm()
        self.phase, self.phase_since, self.partial_headers, self.body_bytes = phase, self.loop.time(), False, 0
        if phase is not None:
            first = self.settings.header_timeout_s
            if phase == BODY:
                first = min(first, self.settings.body_timeout_s)
            self._deadline = self.loop.call_later(first, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        """The phase's first check (``header_timeout_s`` in, or ``body_timeout_s`` if sooner); a body that is
        still arriving fast enough is checked again every second."""
        self._deadline = None
        if self.phase == HEADERS:
            message = f"the request headers did not arrive within {self.settings.header_timeout_s:g} s"
        else:
            elapsed = self.loop.time() - self.phase_since
            too_slow = self.body_bytes < self.settings.min_body_rate * elapsed and not self.flow.read_paused
            if elapsed < self.settings.body_timeout_s and not too_slow:
                wait = min(1.0, self.settings.body_timeout_s - elapsed)
                self._deadline = self.loop.call_later(wait, self._expired)
                return
            message = (f"the request body arrived at under {self.settings.min_body_rate} bytes/s" if too_slow else
                       f"the request body did not arrive within {self.settings.body_timeout_s:g} s")
        logger.info("closing a connection: %s", message)
        self.drop(408, "Request Timeout", "request_timeout", message)

    def drop(self, status: int, reason: str, kind: str, message: str) -> None:
        """Close the connection, with an error response unless one has started."""
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started or self.cycle.response_complete:
            self.transport.write(_raw_response(status, reason, kind, message))
        self.transport.close()

    # ---------------------------------------------------------------------------------------- connection cap
    def _shed(self) -> None:
        waiting = [p for p in self.connections
                   if p is not self and isinstance(p, GuardedH11Protocol) and p.phase == HEADERS
                   and not p.transport.is_closing()]
        if waiting:
            oldest = min(waiting, key=lambda p: (not p.partial_headers, p.phase_since))
            oldest.drop(408, "Request Timeout", "request_timeout", "closed to make room for other clients")
            return
        logger.warning("%d connections are open, all in requests: refusing a new one", len(self.connections) - 1)
        self.drop(503, "Service Unavailable", "overloaded", "too many open connections; retry later")


def uvicorn_config(app: Any, settings: ServerSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                   log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration the server runs under (``pixelrefer serve``, tests, benchmarks)."""
    protocol = type("PixelReferH11Protocol", (GuardedH11Protocol,), {"settings": settings})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol, lifespan="on",
                          timeout_keep_alive=settings.keep_alive_s,
                          h11_max_incomplete_event_size=settings.max_header_bytes, timeout_graceful_shutdown=10)
