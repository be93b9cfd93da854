"""Run a server as a child process on loopback: a free port, start until healthy, stop (terminate, then kill).

One owner for the pattern that the vLLM server (:mod:`pixelrefer.engines.vllm_server`), the engine benchmark and
the load-and-fault benchmark all need. Only the standard library is used (no HTTP client dependency): the health
probe is a plain ``GET`` that must answer 200, sent without any proxy.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ProcessStartError(RuntimeError):
    """A child server exited, or did not answer its health URL in time; the message names its log file."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``GET url`` answers 200 within ``timeout_s``."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(process: subprocess.Popen, url: str, timeout_s: float, *, name: str = "the server",
                       log: str | Path | None = None, poll_s: float = 0.5) -> None:
    """Block until ``url`` answers 200; :class:`ProcessStartError` if ``process`` exits or ``timeout_s`` passes."""
    see = f"; see {log}" if log is not None else ""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ProcessStartError(f"{name} exited with code {process.returncode}{see}")
        if answers(url):
            return
        if time.monotonic() > deadline:
            raise ProcessStartError(f"{name} did not start within {timeout_s:.0f} s{see}")
        time.sleep(poll_s)


def stop(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Terminate ``process``; kill it if it has not exited after ``timeout_s``. Returns once it has exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("process %d ignored SIGTERM for %.0f s; killing it", process.pid, timeout_s)
        process.kill()
        process.wait()


@contextmanager
def running(command: Sequence[str], health_url: str, log: str | Path, *, start_timeout_s: float,
            name: str = "the server", env: Mapping[str, str] | None = None, poll_s: float = 0.5,
            stop_timeout_s: float = 30.0) -> Iterator[subprocess.Popen]:
    """Start ``command`` (stdout and stderr to ``log``), wait until ``health_url`` answers 200, yield the process,
    and stop it when the block ends (also when starting fails)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                   env=dict(env) if env is not None else None)
    try:
        wait_until_healthy(process, health_url, start_timeout_s, name=name, log=log, poll_s=poll_s)
        logger.info("%s is up (%s)", name, health_url)
        yield process
    finally:
        stop(process, stop_timeout_s)
