"""Awaiting model jobs from request handlers: timeouts, 429/503 refusals, input errors, and streaming."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool

from pixelrefer.server.errors import ApiError, error_body
from pixelrefer.server.service import as_api_error
from pixelrefer.server.worker import ModelWorker, QueueFullError, ShuttingDownError

logger = logging.getLogger(__name__)


class DecodeSlots:
    """At most ``limit`` uploads decoded at once (outside the model queue); more get HTTP 429.

    Used only from the event loop thread, so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    async def decode(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.used >= self.limit:
            raise ApiError(429, "queue_full", f"{self.limit} uploads are being decoded; retry later")
        self.used += 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self.used -= 1


def submit(enqueue: Callable[[], Future]) -> Future:
    """Queue a job, turning refusals into HTTP 429 (queue full) or 503 (shutting down)."""
    try:
        return enqueue()
    except QueueFullError as exc:
        raise ApiError(429, "queue_full", str(exc)) from exc
    except ShuttingDownError as exc:
        raise ApiError(503, "shutting_down", str(exc)) from exc


def translate(exc: BaseException) -> BaseException:
    if isinstance(exc, ShuttingDownError):
        return ApiError(503, "shutting_down", str(exc))
    return as_api_error(exc) or exc


async def wait(future: Future, timeout_s: float) -> Any:
    """The job's result; HTTP 504 after ``timeout_s`` (a job not yet started is dropped)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except asyncio.TimeoutError as exc:
        future.cancel()
        raise ApiError(504, "timeout", f"no answer within {timeout_s:g} s") from exc
    except Exception as exc:
        raise translate(exc) from exc


class PieceStream:
    """Text pieces produced on the model thread, consumed by an async SSE generator."""

    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.future: Future | None = None

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopped): nobody is listening
            self._stop.set()

    def emit(self, piece: str) -> None:
        self._put(("piece", piece))

    def stopped(self) -> bool:
        return self._stop.is_set() or time.monotonic() > self.deadline

    def start(self, worker: ModelWorker, run: Callable[[PieceStream], Any]) -> None:
        self.future = submit(lambda: worker.submit(lambda: run(self)))
        self.future.add_done_callback(lambda f: self._put(("done", f)))

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Yield ("piece", text) ... then ("result", value) or ("error", error body dict)."""
        try:
            while True:
                remaining = self.deadline - time.monotonic()
                try:
                    kind, value = await asyncio.wait_for(self._queue.get(), max(remaining, 0.0))
                except asyncio.TimeoutError:
                    yield "error", error_body(504, "timeout", f"no answer within {self.timeout_s:g} s")
                    return
                if kind == "piece":
                    yield kind, value
                    continue
                yield _outcome(value)
                return
        finally:
            self._stop.set()
            if self.future is not None:
                self.future.cancel()


def _outcome(future: Future) -> tuple[str, Any]:
    if future.cancelled():
        return "error", error_body(503, "cancelled", "the request was cancelled")
    exc = future.exception()
    if exc is None:
        return "result", future.result()
    err = translate(exc)
    if isinstance(err, ApiError):
        return "error", error_body(err.status, err.kind, err.message)
    logger.error("streaming job failed: %r", exc)
    return "error", error_body(500, "internal_error", f"internal error ({type(exc).__name__})")


def sse(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"
