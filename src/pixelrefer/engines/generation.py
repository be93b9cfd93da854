"""Generation settings, cancellation, and the shared-prefix batched decoding used by multi-region and follow-up
queries."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import transformers

from pixelrefer.errors import ConfigError


@dataclass
class GenerationConfig:
    """Decoding settings. Greedy by default (the official inference setting)."""

    max_new_tokens: int = 256
    min_new_tokens: int = 0  # end-of-sequence is suppressed before this many tokens (benchmarks use it)
    do_sample: bool = False
    temperature: float = 0.2
    top_p: float = 0.9
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ConfigError(f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ConfigError("temperature must be > 0 when sampling")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_hf(self, eos_token_id: int | list[int], pad_token_id: int) -> transformers.GenerationConfig:
        fields = asdict(self)
        fields.pop("seed")
        if not self.do_sample:
            fields.update(temperature=None, top_p=None, top_k=None)
        if fields["repetition_penalty"] is None:
            fields.pop("repetition_penalty")
        return transformers.GenerationConfig(**fields, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


def stop_token_ids(tokenizer, generation_defaults: transformers.GenerationConfig | None, turn_end: int) -> list[int]:
    """Where an answer ends: the end of the assistant turn, the tokenizer's ``eos_token`` (the official stopping
    keyword) and the checkpoint's ``generation_config.json`` ``eos_token_id`` (one id or a list)."""
    ids = [turn_end, tokenizer.eos_token_id]
    eos = getattr(generation_defaults, "eos_token_id", None)
    ids += eos if isinstance(eos, list) else [eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


class CancelCriteria(transformers.StoppingCriteria):
    """Stops row ``i`` of a batch at the next decoding step once ``checks[i]()`` is true (its request was
    cancelled: the consumer closed the stream, the client went away, the request timed out). A stopped row is
    padded while the others go on; ``generate`` returns when every row is done."""

    def __init__(self, checks: Sequence[Callable[[], bool]]) -> None:
        self.checks = list(checks)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        return torch.tensor([check() for check in self.checks], dtype=torch.bool, device=input_ids.device)


def cancel_checks(events: Sequence[threading.Event | None]) -> list[Callable[[], bool]] | None:
    """One check per row from optional events (``None``: that row is never cancelled); ``None`` when no row
    can be cancelled, so plain calls add no stopping criterion."""
    if all(e is None for e in events):
        return None
    return [e.is_set if e is not None else (lambda: False) for e in events]


def common_prefix_length(rows: list[list[int]], stop_ids: set[int]) -> int:
    """Length of the prefix shared by all rows, cut before the first token in ``stop_ids``."""
    n = min(len(r) for r in rows)
    for i in range(n):
        tok = rows[0][i]
        if tok in stop_ids or any(r[i] != tok for r in rows[1:]):
            return i
    return n


def join_prefix_and_suffixes(prefix: list[int], suffixes: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``prefix + pads + suffix``: padding sits between the cached prefix and each suffix.

    Positions come from the attention mask (cumulative sum), so every row continues the prefix contiguously.
    """
    width = max(len(s) for s in suffixes)
    ids = torch.full((len(suffixes), len(prefix) + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[:, : len(prefix)] = torch.tensor(prefix)
    mask[:, : len(prefix)] = 1
    for i, s in enumerate(suffixes):
        ids[i, ids.shape[1] - len(s) :] = torch.tensor(s)
        mask[i, ids.shape[1] - len(s) :] = 1
    return ids, mask


def shared_prefix_cache(prefix: transformers.Cache, config: transformers.PreTrainedConfig, batch: int,
                        max_len: int) -> transformers.StaticCache:
    """The KV cache of one prefix, repeated for ``batch`` rows in preallocated buffers of ``max_len`` positions.

    Decoding then writes each new position in place; a dynamic cache would concatenate (copy) all ``batch`` copies
    of the prefix at every step, which at the 2B shape costs as much as the step's matrix products."""
    static = transformers.StaticCache(config=config, max_cache_len=max_len)
    for index, layer in enumerate(prefix.layers):
        static.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1), index)
    return static
