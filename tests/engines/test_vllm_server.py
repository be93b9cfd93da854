"""vllm_server's process handling, with a stand-in for the vLLM environment's python (no vLLM needed)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from pixelrefer.engines.vllm_client import EngineError
from pixelrefer.engines.vllm_server import vllm_server
from pixelrefer.utils.process import answers

# Answers GET /v1/models on the --port it is given, as the vLLM OpenAI server does once it is up.
_FAKE_SERVER = '''
import http.server, sys
port = int(sys.argv[sys.argv.index("--port") + 1])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def fake_python(tmp_path: Path, body: str) -> Path:
    """An executable that stands for the vLLM environment's python and runs ``body`` with vLLM's arguments."""
    script = tmp_path / "server.py"
    script.write_text(body)
    exe = tmp_path / "python"
    exe.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{script}" "$@"\n')  # drop "-m vllm...server"
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_vllm_server_yields_a_live_url_and_stops_the_server(tmp_path):
    python = fake_python(tmp_path, _FAKE_SERVER)
    with vllm_server(python, tmp_path / "llm", tmp_path / "vllm.log", start_timeout_s=30) as url:
        assert answers(f"{url}/v1/models")
    assert not answers(f"{url}/v1/models", timeout_s=0.5)


def test_a_vllm_server_that_exits_is_an_engine_error_naming_the_log(tmp_path):
    python = fake_python(tmp_path, "import sys; print('no such model'); sys.exit(1)")
    with (pytest.raises(EngineError, match=r"the vLLM server exited with code 1; see .*vllm\.log"),
          vllm_server(python, tmp_path / "llm", tmp_path / "vllm.log", start_timeout_s=30)):
        pass
    assert "no such model" in (tmp_path / "vllm.log").read_text()
