"""ASGI middlewares that keep one client from hurting the others: body size, request count, disconnects.

The connection-level defences (slow headers, slow bodies, too many connections) live in
:mod:`pixelrefer.server.protocol`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

from pixelrefer.limits import Limits, use_limits
from pixelrefer.server.errors import error_response, internal_error

logger = logging.getLogger(__name__)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413.

    A declared Content-Length is checked up front (the server enforces it); a chunked body without one is
    read here first, up to the limit, and replayed to the app.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length", b"")
        too_big = error_response(413, "payload_too_large", f"the request body exceeds {self.limit} bytes")
        if length.isdigit():
            if int(length) > self.limit:
                await too_big(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class WithLimits:
    """Every request is handled under ``use_limits(limits)``: the checks of :mod:`pixelrefer.limits` (question,
    regions, masks, media), wherever they run for this request (event loop, decode thread, model thread), use the
    server's limits."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        with use_limits(self.limits):
            await self.app(scope, receive, send)


class RequestGuard:
    """For every HTTP request outside ``light_paths`` (``/health``, ``/v1/models``, which always answer):

    - at most ``max_active`` at once, counted from the headers to the end of the response; more get 503 at
      once, before their body is read;
    - a client that disconnects before its response is complete cancels the request's handler, which abandons
      its model job (:func:`pixelrefer.server.runtime.wait`, :class:`~pixelrefer.server.runtime.PieceStream`);
    - an unexpected error is answered with a 500 JSON body here, so the connection stays usable (Starlette's
      outer error middleware would answer, then re-raise, and uvicorn would drop the connection).
    """

    def __init__(self, app: Any, max_active: int, light_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_active = max_active
        self.light_paths = frozenset(light_paths)
        self.active = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.light_paths:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_active:
            busy = error_response(503, "overloaded", f"{self.max_active} requests are in progress; retry later")
            await busy(scope, receive, send)
            return
        self.active += 1
        try:
            await _CancelOnDisconnect(self.app, scope, receive, send).run()
        finally:
            self.active -= 1


class _CancelOnDisconnect:
    """Run one request's app in its own task. Once the app has read the whole body, a watcher is the only
    reader of ``receive``: on ``http.disconnect`` before the response is complete it cancels the app task (and
    answers the app's own ``receive`` calls with the disconnect)."""

    def __init__(self, app: Any, scope: dict, receive: Any, send: Any) -> None:
        self.app, self.scope, self._receive, self._send = app, scope, receive, send
        self.disconnected = asyncio.Event()
        self.response_started = False
        self.response_complete = False
        self.watcher: asyncio.Task | None = None
        self.task: asyncio.Task | None = None

    async def receive(self) -> dict:
        if self.watcher is not None:
            await self.disconnected.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.watcher = asyncio.ensure_future(self._watch())
        return message

    async def send(self, message: dict) -> None:
        self.response_started = True
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.response_complete = True
        await self._send(message)

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()
        if not self.response_complete and self.task is not None:
            logger.info("client went away: cancelling %s %s", self.scope.get("method"), self.scope.get("path"))
            self.task.cancel()

    async def run(self) -> None:
        self.task = asyncio.ensure_future(self.app(self.scope, self.receive, self.send))
        try:
            await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if (current is not None and current.cancelling()) or not self.disconnected.is_set():
                raise  # the server itself is cancelling (shutdown), not the client's disconnect
        except Exception as exc:  # a bug, not bad input (that is a 4xx from the app's handlers)
            if self.response_started:
                raise
            await internal_error(exc)(self.scope, self._receive, self._send)
        finally:
            if self.watcher is not None:
                self.watcher.cancel()
