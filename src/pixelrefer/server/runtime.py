"""Awaiting model jobs from request handlers: refusals (429/503), timeouts (504), cancellation, streaming.

A request that stops waiting for its job (timeout, client gone, stream closed) abandons it: a job still in
the queue is dropped (it no longer counts against ``max_queue``), a running one has its cancel event set and
stops at its next decoding step, which releases the model for the next job.
"""

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
from starlette.responses import StreamingResponse

from pixelrefer.server.errors import ApiError, api_error, error_body
from pixelrefer.server.worker import ModelWorker, QueueFullError, ShuttingDownError

logger = logging.getLogger(__name__)


class PrepareSlots:
    """At most ``limit`` requests prepared at once (media decoded, regions parsed, question checked) on worker
    threads, outside the model queue and off the event loop; more get HTTP 429.

    Used only from the event loop thread, so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.used >= self.limit:
            raise ApiError(429, "queue_full", f"{self.limit} requests are being prepared; retry later")
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
    return api_error(exc) or exc


def abandon(future: Future | None, cancel: threading.Event) -> None:
    """Nobody waits for this job any more: drop it if queued, stop it at its next decoding step if running."""
    cancel.set()
    if future is not None:
        future.cancel()


def _timeout(timeout_s: float) -> ApiError:
    return ApiError(504, "timeout", f"no answer within {timeout_s:g} s")


async def wait(future: Future, timeout_s: float, cancel: threading.Event) -> Any:
    """The job's result; HTTP 504 after ``timeout_s``. On timeout or cancellation of the awaiting request
    (client disconnect) the job is abandoned."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except asyncio.TimeoutError as exc:
        abandon(future, cancel)
        raise _timeout(timeout_s) from exc
    except asyncio.CancelledError:
        abandon(future, cancel)
        raise
    except Exception as exc:
        raise translate(exc) from exc


class PieceStream:
    """A streamed answer: the model thread reports ``ready`` (input resolved and encoded), then text pieces,
    then its result; the request reads them here.

    ``opened()`` waits for ``ready`` so that bad input, a full queue or a timeout before the first token are
    answered as JSON errors before a 200 stream starts. ``close()`` (reader gone, finished or timed out)
    abandons the job; ``cancel`` is the event the model checks at every decoding step.
    """

    def __init__(self, timeout_s: float, cancel: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancel = cancel
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.future: Future | None = None

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopped): nobody is listening
            self.cancel.set()

    def ready(self) -> None:
        self._put(("ready", None))

    def emit(self, piece: str) -> None:
        self._put(("piece", piece))

    def start(self, worker: ModelWorker, run: Callable[[PieceStream], Any]) -> None:
        self.future = submit(lambda: worker.submit(lambda: run(self)))
        self.future.add_done_callback(lambda f: self._put(("done", f)))

    def close(self) -> None:
        abandon(self.future, self.cancel)

    async def _next(self) -> tuple[str, Any]:
        try:
            return await asyncio.wait_for(self._queue.get(), max(self.deadline - time.monotonic(), 0.0))
        except asyncio.TimeoutError as exc:
            raise _timeout(self.timeout_s) from exc

    async def opened(self) -> None:
        """Return once the job has started answering; raise its error (an :class:`ApiError` for bad input)."""
        try:
            kind, value = await self._next()
            if kind == "done":
                raise _failure(value)
        except BaseException:
            self.close()
            raise

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """After :meth:`opened`: ("piece", text) ... then ("result", value) or ("error", error body dict)."""
        try:
            while True:
                try:
                    kind, value = await self._next()
                except ApiError as exc:
                    yield "error", error_body(exc.status, exc.kind, exc.message)
                    return
                if kind == "piece":
                    yield kind, value
                    continue
                yield _outcome(value)
                return
        finally:
            self.close()


def _failure(future: Future) -> BaseException:
    if future.cancelled():
        return ApiError(503, "cancelled", "the request was cancelled")
    exc = future.exception()
    if exc is None:
        return RuntimeError("the stream ended before it started")
    return translate(exc)


def _outcome(future: Future) -> tuple[str, Any]:
    if not future.cancelled() and future.exception() is None:
        return "result", future.result()
    err = _failure(future)
    if isinstance(err, ApiError):
        return "error", error_body(err.status, err.kind, err.message)
    logger.error("streaming job failed: %r", err)
    return "error", error_body(500, "internal_error", f"internal error ({type(err).__name__})")


class EventStream(StreamingResponse):
    """A server-sent-event response that calls ``on_close`` however it ends: finished, client disconnect
    (even before the first chunk), or cancellation of the request."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def sse(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"
