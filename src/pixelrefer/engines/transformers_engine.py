"""The default engine: transformers ``generate`` on our model's LLM, in this process (today's generation path)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from pixelrefer.engines.base import EmbedsPrompt
from pixelrefer.engines.generation import CancelCriteria, GenerationConfig, cancel_checks
from pixelrefer.utils.rng import seeded

_END = object()


class _TokenQueue(BaseStreamer):
    """Hands new token ids to another thread (the first ``put`` is the prompt and is skipped)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(token)

    def end(self) -> None:
        self.queue.put(_END)


def left_pad(prompts: Sequence[EmbedsPrompt], pad_embed: torch.Tensor, pad_id: int):
    """Left-padded ``(embeds, attention_mask, input_ids or None)`` of a batch; ids only when every prompt has them."""
    width = max(p.embeds.shape[0] for p in prompts)
    embeds = pad_embed.expand(len(prompts), width, -1).clone()
    mask = torch.zeros(len(prompts), width, dtype=torch.long, device=embeds.device)
    with_ids = all(p.token_ids is not None for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=embeds.device) if with_ids else None
    for i, p in enumerate(prompts):
        n = p.embeds.shape[0]
        embeds[i, width - n :] = p.embeds.to(embeds.device, embeds.dtype)
        mask[i, width - n :] = 1
        if ids is not None:
            ids[i, width - n :] = torch.tensor(p.token_ids)
    return embeds, mask, ids


def cut(tokens: list[int], stop_ids: Sequence[int], pad_id: int) -> list[int]:
    """Tokens before the first stop id, without the padding ``generate`` puts after a finished row."""
    stops = set(stop_ids)
    for i, t in enumerate(tokens):
        if t in stops:
            tokens = tokens[:i]
            break
    return [t for t in tokens if t != pad_id]


class TransformersEngine:
    """``model.generate`` from input embeddings. ``lock`` serialises calls on the shared model (the pipeline's)."""

    name = "transformers"

    def __init__(self, model: Any, pad_id: int, lock: AbstractContextManager | None = None) -> None:
        self.model = model
        self.pad_id = pad_id
        self.lock = lock if lock is not None else nullcontext()

    def _pad_embed(self) -> torch.Tensor:
        table = self.model.get_input_embeddings()
        return table(torch.tensor([self.pad_id], device=table.weight.device))[0]

    def run(self, prompts: Sequence[EmbedsPrompt], generation: GenerationConfig, stop_ids: Sequence[int],
            cache: Any = None, streamer: BaseStreamer | None = None, extra_stop: Any = None) -> list[list[int]]:
        """One ``generate`` call over ``prompts`` (left-padded). ``cache``: a KV cache of a shared prefix already
        in the rows' leading positions (their embeds then cover only the uncached part, ids the full rows)."""
        with torch.inference_mode():
            embeds, mask, ids = left_pad(prompts, self._pad_embed(), self.pad_id)
        hf = generation.to_hf(list(stop_ids) if len(stop_ids) != 1 else stop_ids[0], self.pad_id)
        checks = cancel_checks([p.cancel for p in prompts])
        criteria = []
        if checks is not None:
            criteria.append(CancelCriteria(checks))
        if extra_stop is not None:
            criteria.append(CancelCriteria([extra_stop] * len(prompts)))
        kwargs: dict[str, Any] = {"attention_mask": mask, "generation_config": hf}
        if ids is not None:
            kwargs["input_ids"] = ids
        if criteria:
            kwargs["stopping_criteria"] = criteria
        if cache is not None:
            kwargs["cache"] = cache
        if streamer is not None:
            kwargs["streamer"] = streamer
        with self.lock, torch.inference_mode(), seeded(generation.seed, self.model.device):
            seqs = self.model.generate(inputs_embeds=embeds, **kwargs)
        new = seqs[:, ids.shape[1] :] if ids is not None else seqs
        return [cut(row, stop_ids, self.pad_id) for row in new.tolist()]

    def generate(self, prompts: Sequence[EmbedsPrompt], generation: GenerationConfig,
                 stop_ids: Sequence[int]) -> list[list[int]]:
        return self.run(prompts, generation, stop_ids)

    def stream(self, prompt: EmbedsPrompt, generation: GenerationConfig, stop_ids: Sequence[int]) -> Iterator[int]:
        tokens = _TokenQueue()
        abandoned = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.run([prompt], generation, stop_ids, streamer=tokens, extra_stop=abandoned.is_set)
            except BaseException as exc:  # noqa: BLE001 (surfaced to the consumer below, even KeyboardInterrupt)
                errors.append(exc)
                tokens.end()

        thread = threading.Thread(target=run, name="pixelrefer-stream", daemon=True)
        thread.start()
        stops = set(stop_ids)
        try:
            while (token := tokens.queue.get()) is not _END:
                if token in stops:
                    break
                yield token
        finally:  # also on close() / garbage collection of an unfinished iterator: stop and wait for the model
            abandoned.set()
            thread.join()
        if errors:
            raise errors[0]
