"""The model worker: bounded queue (429), shutdown (503), batching of waiting questions, error isolation."""

from __future__ import annotations

import threading

import pytest

from pixelrefer.server.worker import ModelWorker, QueueFullError, ShuttingDownError


def _hold(worker: ModelWorker) -> threading.Event:
    release, started = threading.Event(), threading.Event()
    worker.submit(lambda: (started.set(), release.wait(10)))
    assert started.wait(5)
    return release


def test_queue_limit_and_shutdown() -> None:
    worker = ModelWorker(max_queue=2)
    release = _hold(worker)
    waiting = [worker.submit(lambda i=i: i) for i in range(2)]
    with pytest.raises(QueueFullError):
        worker.submit(lambda: 99)
    release.set()
    assert [f.result(5) for f in waiting] == [0, 1]
    release = _hold(worker)
    pending = worker.submit(lambda: "never")
    closer = threading.Thread(target=worker.close)
    closer.start()
    with pytest.raises(ShuttingDownError):
        pending.result(5)
    release.set()
    closer.join(5)
    with pytest.raises(ShuttingDownError):
        worker.submit(lambda: 1)


def test_waiting_items_with_the_same_key_are_batched_and_a_bad_item_fails_alone() -> None:
    calls: list[list[int]] = []

    def batch(items: list[int]) -> list[int]:
        calls.append(list(items))
        if -1 in items:
            raise ValueError("bad item")
        return [i * 10 for i in items]

    worker = ModelWorker(max_queue=8, batch_fn=batch, max_batch=3)
    release = _hold(worker)
    futures = [worker.submit_batchable(i, key="a") for i in (1, 2, -1, 4)] + [worker.submit_batchable(5, key="b")]
    release.set()
    assert futures[0].result(5) == 10 and futures[1].result(5) == 20
    with pytest.raises(ValueError, match="bad item"):
        futures[2].result(5)
    assert futures[3].result(5) == 40 and futures[4].result(5) == 50
    assert calls[0] == [1, 2, -1]  # three waiting "a" items in one call, then one by one after it failed
    assert [5] in calls
    worker.close()


def test_a_cancelled_job_is_skipped() -> None:
    worker = ModelWorker(max_queue=4)
    ran = []
    release = _hold(worker)
    future = worker.submit(lambda: ran.append(1))
    assert future.cancel()
    release.set()
    worker.submit(lambda: None).result(5)
    assert ran == []
    worker.close()


def test_abandoned_jobs_leave_the_queue() -> None:
    worker = ModelWorker(max_queue=1)
    release = _hold(worker)
    for _ in range(3):  # each waiting job is abandoned (its request timed out): the slot is free again
        assert worker.submit(lambda: None).cancel()
        assert worker.depth == 0
    kept = worker.submit(lambda: "ran")
    with pytest.raises(QueueFullError):
        worker.submit(lambda: None)
    release.set()
    assert kept.result(5) == "ran"
    worker.close()


def test_a_job_runs_in_the_context_it_was_submitted_from() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    worker = ModelWorker(max_queue=2, batch_fn=lambda items: [var.get() for _ in items])
    var.set("request")
    assert worker.submit(var.get).result(5) == "request"
    assert worker.submit_batchable(1).result(5) == "request"
    worker.close()
