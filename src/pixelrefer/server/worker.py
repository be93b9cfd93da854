"""One model per process: a single worker thread runs every model call, fed by a bounded queue.

Requests submit jobs and await their futures; a full queue refuses at once (HTTP 429), a closing
worker refuses and fails whatever still waits (HTTP 503). Only live work counts against the queue: a job whose
future was cancelled (its request timed out or went away) is dropped, never run. A job runs in a copy of the
context it was submitted from, so context variables such as the request's input limits
(:func:`pixelrefer.limits.use_limits`) apply on the model thread too. Jobs marked batchable that wait together
are handed to ``batch_fn`` in one call (e.g. ``PixelRefer.ask_batch``), so concurrent questions
share the forward passes.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The bounded queue is full; the client should retry later."""


class ShuttingDownError(RuntimeError):
    """The worker is closing and takes no more work."""


@dataclass
class _Job:
    run: Callable[[], Any] | None
    future: Future = field(default_factory=Future)
    batch_item: Any = None
    batch_key: Any = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class ModelWorker:
    """A worker thread owning all model calls. ``max_queue`` jobs may wait beyond the running one."""

    def __init__(
        self,
        max_queue: int,
        batch_fn: Callable[[list[Any]], list[Any]] | None = None,
        max_batch: int = 1,
    ) -> None:
        if max_queue < 0 or max_batch < 1:
            raise ValueError("max_queue must be >= 0 and max_batch >= 1")
        self.max_queue = max_queue
        self.max_batch = max_batch
        self._batch_fn = batch_fn
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="pixelrefer-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Live jobs waiting (not counting the one running)."""
        with self._cond:
            self._prune()
            return len(self._pending)

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def closing(self) -> bool:
        return self._closing

    def submit(self, run: Callable[[], Any]) -> Future:
        """Queue ``run()`` for the model thread; raises :class:`QueueFullError` / :class:`ShuttingDownError`."""
        return self._enqueue(_Job(run=run))

    def submit_batchable(self, item: Any, key: Any = None) -> Future:
        """Queue one item for ``batch_fn``; items with equal ``key`` waiting together are answered in one call."""
        if self._batch_fn is None:
            raise RuntimeError("this worker has no batch function")
        return self._enqueue(_Job(run=None, batch_item=item, batch_key=key))

    def _prune(self) -> None:
        """Drop waiting jobs nobody waits for (cancelled futures). Called with the lock held."""
        if any(job.future.cancelled() for job in self._pending):
            self._pending = deque(job for job in self._pending if not job.future.cancelled())

    def _enqueue(self, job: _Job) -> Future:
        with self._cond:
            self._prune()
            if self._closing:
                raise ShuttingDownError("the server is shutting down")
            if len(self._pending) + int(self._busy) > self.max_queue:  # max_queue waiting + the running one
                raise QueueFullError(f"the request queue is full ({self.max_queue} waiting); retry later")
            self._pending.append(job)
            self._cond.notify()
        return job.future

    def close(self, timeout: float | None = 30.0) -> None:
        """Refuse new work, fail waiting jobs with :class:`ShuttingDownError`, let the running one finish."""
        with self._cond:
            self._closing = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in dropped:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ShuttingDownError("the server is shutting down"))
        self._thread.join(timeout)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            self._prune()
            while not self._pending and not self._closing:
                self._cond.wait()
                self._prune()
            if not self._pending:
                return None
            first = self._pending.popleft()
            jobs = [first]
            if first.run is None:
                mates = [j for j in self._pending if j.run is None and j.batch_key == first.batch_key]
                for job in mates[: self.max_batch - 1]:
                    self._pending.remove(job)
                    jobs.append(job)
            self._busy = True
            return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            try:
                if live and live[0].run is not None:
                    live[0].context.run(_settle, live[0].future, live[0].run)
                elif live:
                    live[0].context.run(self._run_batch, live)
            finally:
                with self._cond:
                    self._busy = False

    def _run_batch(self, jobs: list[_Job]) -> None:
        assert self._batch_fn is not None
        if len(jobs) == 1:
            _settle(jobs[0].future, lambda: self._batch_fn([jobs[0].batch_item])[0])
            return
        try:
            results = self._batch_fn([job.batch_item for job in jobs])
        except Exception:  # noqa: BLE001 - one bad item must not fail its neighbours: answer them one by one
            logger.info("batch of %d failed; answering its items one by one", len(jobs))
            for job in jobs:
                _settle(job.future, lambda job=job: self._batch_fn([job.batch_item])[0])
            return
        logger.debug("answered a batch of %d", len(jobs))
        for job, result in zip(jobs, results):
            job.future.set_result(result)


def _settle(future: Future, run: Callable[[], Any]) -> None:
    try:
        future.set_result(run())
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
        future.set_exception(exc)
