"""A real uvicorn server on a free 127.0.0.1 port, run the way ``pixelrefer serve`` runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from pixelrefer.server import ServerSettings
from pixelrefer.server.protocol import uvicorn_config
from pixelrefer.utils.process import free_port


@contextmanager
def running(app, settings: ServerSettings | None = None) -> Iterator[str]:
    """Serve ``app`` (with ``settings``' connection limits; default: the app's own settings) until the block ends."""
    settings = settings or app.state.settings
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def assert_error(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    """The response is our JSON error body with this status (and error type)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status and error["message"]
    if kind is not None:
        assert error["type"] == kind, error
    return error
