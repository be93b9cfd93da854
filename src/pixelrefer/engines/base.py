"""The engine protocol: prompt embeddings + generation settings + stop ids + a cancel event -> tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.errors import ConfigError

ENGINES = ("transformers", "vllm")


@dataclass
class EmbedsPrompt:
    """One prompt as LLM input embeddings ``(length, hidden)``, image and object tokens already written in.

    ``token_ids``: the prompt's token ids (placeholders included), used by engines that apply penalties over the
    prompt (transformers' ``repetition_penalty``); ``cancel``: once set, generation of this prompt stops at the
    next decoding step."""

    embeds: torch.Tensor
    token_ids: list[int] | None = None
    cancel: threading.Event | None = None

    def __post_init__(self) -> None:
        if self.embeds.ndim != 2 or self.embeds.shape[0] < 1:
            raise ConfigError(f"prompt embeds must be (length >= 1, hidden), got {tuple(self.embeds.shape)}")
        if self.token_ids is not None and len(self.token_ids) != self.embeds.shape[0]:
            raise ConfigError(f"{len(self.token_ids)} token ids for {self.embeds.shape[0]} embeddings")


class Engine(Protocol):
    """Generates from input embeddings. Every method returns the new tokens only, ending before the first of
    ``stop_ids`` (which is not returned); a cancelled prompt returns the tokens made before it stopped."""

    name: str

    def generate(self, prompts: Sequence[EmbedsPrompt], generation: GenerationConfig,
                 stop_ids: Sequence[int]) -> list[list[int]]:
        """New tokens of each prompt (answered together)."""
        ...

    def stream(self, prompt: EmbedsPrompt, generation: GenerationConfig, stop_ids: Sequence[int]) -> Iterator[int]:
        """New tokens one by one. Closing (or dropping) the iterator stops generation within one step."""
        ...


def check_engine_options(engine: str, vllm_url: str | None, vllm_model: str | None = None) -> None:
    """Refuse a bad engine choice before any model is loaded."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "vllm" and not vllm_url:
        raise ConfigError("--engine vllm needs --vllm-url (the vLLM OpenAI-compatible server, e.g. http://127.0.0.1:8001)")
    if engine != "vllm" and (vllm_url or vllm_model):
        raise ConfigError("--vllm-url and --vllm-model are only used with --engine vllm")
    if vllm_url and not vllm_url.startswith(("http://", "https://")):
        raise ConfigError(f"--vllm-url must be an http(s) URL, got {vllm_url!r}")
