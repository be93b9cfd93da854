"""The vLLM engine: a client of a running vLLM OpenAI-compatible server that serves our exported LLM.

Each prompt is one ``POST /v1/completions`` with ``prompt_embeds`` (``torch.save`` bytes, base64, as vLLM's docs
describe) streamed back as server-sent events; token ids come back through vLLM's ``return_tokens_as_token_ids``
(``"token_id:N"`` in the logprobs tokens). Prompts of a batch are sent concurrently, so vLLM's scheduler batches
them (continuous batching, paged KV cache). Cancelling a prompt closes its HTTP stream, which makes vLLM abort
the request. The server must run with ``--enable-prompt-embeds`` on the folder written by ``pixelrefer export-llm``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from pixelrefer.engines.base import EmbedsPrompt
from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.errors import ConfigError, PixelReferError

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "token_id:"


class EngineError(PixelReferError):
    """The generation engine (a remote vLLM server) failed or cannot be reached."""


def encode_embeds(embeds: torch.Tensor) -> str:
    """``prompt_embeds`` as vLLM reads them: base64 of ``torch.save`` of a ``(length, hidden)`` tensor."""
    buffer = io.BytesIO()
    torch.save(embeds.detach().to("cpu").contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def sampling_fields(generation: GenerationConfig, stop_ids: Sequence[int]) -> dict[str, Any]:
    """Our generation settings as vLLM completion fields. Only our ``stop_ids`` end an answer (``ignore_eos``:
    the tokenizer's own end token is not a stop unless listed); greedy is temperature 0."""
    fields: dict[str, Any] = {
        "max_tokens": generation.max_new_tokens,
        "min_tokens": generation.min_new_tokens,
        "stop_token_ids": list(stop_ids),
        "ignore_eos": True,
        "skip_special_tokens": False,
    }
    if generation.do_sample:
        fields.update(temperature=generation.temperature, top_p=generation.top_p)
        if generation.top_k is not None:
            fields["top_k"] = generation.top_k
    else:
        fields["temperature"] = 0.0
    if generation.repetition_penalty is not None:
        fields["repetition_penalty"] = generation.repetition_penalty
    if generation.seed is not None:
        fields["seed"] = generation.seed
    return fields


def parse_token(token: str) -> int:
    if not token.startswith(TOKEN_PREFIX):
        raise EngineError(f"vLLM returned token {token!r} without its id; is it a vLLM server?")
    return int(token[len(TOKEN_PREFIX) :])


class VLLMEngine:
    """Generates through the vLLM server at ``url`` (e.g. ``http://127.0.0.1:8001``). ``model``: the served model
    name (default: the first one the server lists)."""

    name = "vllm"

    def __init__(self, url: str, model: str | None = None, timeout_s: float = 600.0, max_concurrency: int = 256) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"vLLM url must be http(s), got {url!r}")
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s, connect=10.0),
                                   limits=httpx.Limits(max_connections=max_concurrency))
        self.model = model or self._served_model()
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="pixelrefer-vllm")

    def _served_model(self) -> str:
        import httpx

        try:
            response = self.client.get("/v1/models")
            response.raise_for_status()
            return response.json()["data"][0]["id"]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise EngineError(f"no vLLM server answers at {self.url}/v1/models: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _body(self, prompt: EmbedsPrompt, generation: GenerationConfig, stop_ids: Sequence[int]) -> dict[str, Any]:
        return {"model": self.model, "prompt_embeds": encode_embeds(prompt.embeds), "stream": True,
                "logprobs": 0, "return_tokens_as_token_ids": True, **sampling_fields(generation, stop_ids)}

    def stream(self, prompt: EmbedsPrompt, generation: GenerationConfig, stop_ids: Sequence[int]) -> Iterator[int]:
        import httpx

        if prompt.cancel is not None and prompt.cancel.is_set():
            return
        stops = set(stop_ids)
        body = self._body(prompt, generation, stop_ids)
        try:
            with self.client.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code != 200:
                    raise EngineError(f"vLLM answered {response.status_code}: {response.read().decode(errors='replace')[:500]}")
                for line in response.iter_lines():  # leaving this loop closes the stream: vLLM aborts the request
                    if not line.startswith("data: "):
                        continue
                    data = line[len("data: ") :]
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if "error" in event:
                        raise EngineError(f"vLLM error: {event['error']}")
                    for choice in event.get("choices", []):
                        for token in (choice.get("logprobs") or {}).get("tokens") or []:
                            token_id = parse_token(token)
                            if token_id in stops:
                                return
                            yield token_id
                    if prompt.cancel is not None and prompt.cancel.is_set():
                        return
        except httpx.HTTPError as exc:
            raise EngineError(f"vLLM request to {self.url} failed: {exc}") from exc

    def generate(self, prompts: Sequence[EmbedsPrompt], generation: GenerationConfig,
                 stop_ids: Sequence[int]) -> list[list[int]]:
        futures = [self._pool.submit(lambda p=p: list(self.stream(p, generation, stop_ids))) for p in prompts]
        return [f.result() for f in futures]
