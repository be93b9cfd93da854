"""pixelrefer.utils.process: a child server is started until healthy, refused when it dies, and always stopped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pixelrefer.utils.process import LOOPBACK, ProcessStartError, answers, free_port, running, stop


def test_running_waits_for_health_then_stops(tmp_path):
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/"
    command = [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK, "--directory", str(tmp_path)]
    with running(command, url, tmp_path / "server.log", start_timeout_s=30, poll_s=0.1) as process:
        assert answers(url)
        assert process.poll() is None
    assert process.poll() is not None
    assert not answers(url, timeout_s=0.5)


def start_and_stop(command: list[str], log, start_timeout_s: float) -> None:
    with running(command, f"http://{LOOPBACK}:{free_port()}/", log, start_timeout_s=start_timeout_s, poll_s=0.05):
        pass


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    with pytest.raises(ProcessStartError, match=r"exited with code 3; see .*server\.log"):
        start_and_stop(command, log, start_timeout_s=30)
    assert "boom" in log.read_text()


def test_a_server_that_never_answers_times_out(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ProcessStartError, match="did not start within"):
        start_and_stop(command, tmp_path / "log", start_timeout_s=0.3)


def test_stop_kills_a_process_that_ignores_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"ready"
    stop(process, timeout_s=0.3)
    assert process.returncode == -9
