"""LLM judges through any OpenAI-compatible chat-completions endpoint, pinned and recorded.

Configuration comes from flags or the environment (flags win):

* base URL: ``--judge-base-url`` / ``PIXELREFER_JUDGE_BASE_URL`` / ``OPENAI_BASE_URL`` / ``BASE_URL``
* model:    ``--judge-model``    / ``PIXELREFER_JUDGE_MODEL``
* key:      ``--judge-api-key``  / ``PIXELREFER_JUDGE_API_KEY`` / ``OPENAI_API_KEY`` / ``API_KEY``

(``API_KEY``/``BASE_URL`` are the names the official scripts read.) Every call is cached in a JSONL
file keyed by (item id, purpose), so an interrupted scoring run resumes without paying twice; the
results record the judge's base URL, the requested and the answering model strings, the hash of each
prompt template, and the date.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelrefer.eval.io import JsonlAppender, read_jsonl

logger = logging.getLogger(__name__)

_BASE_URL_ENV = ("PIXELREFER_JUDGE_BASE_URL", "OPENAI_BASE_URL", "BASE_URL")
_MODEL_ENV = ("PIXELREFER_JUDGE_MODEL",)
MAX_BACKOFF_S = 30.0
_KEY_ENV = ("PIXELREFER_JUDGE_API_KEY", "OPENAI_API_KEY", "API_KEY")


class JudgeNotConfigured(RuntimeError):
    """Raised when a benchmark needs an LLM judge and no endpoint/model was given."""


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def prompt_hash(*templates: str) -> str:
    """Short sha256 of the prompt template(s) a score depends on."""
    digest = hashlib.sha256("\n\x00\n".join(templates).encode("utf-8")).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = "EMPTY"
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    workers: int = 8

    @classmethod
    def resolve(
        cls,
        benchmark: str,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> JudgeConfig:
        """Flags first, then environment; raise :class:`JudgeNotConfigured` with a clear message."""
        url = base_url or _first_env(_BASE_URL_ENV)
        name = model or _first_env(_MODEL_ENV)
        key = api_key or _first_env(_KEY_ENV) or "EMPTY"
        missing = [label for label, value in (("base URL", url), ("model", name)) if not value]
        if missing:
            raise JudgeNotConfigured(
                f"benchmark '{benchmark}' is scored by an LLM judge, but no judge {' and no '.join(missing)} "
                "is configured. Pass --judge-base-url and --judge-model (and --judge-api-key if the "
                "endpoint needs one), or set PIXELREFER_JUDGE_BASE_URL / PIXELREFER_JUDGE_MODEL / "
                "PIXELREFER_JUDGE_API_KEY. Any OpenAI-compatible endpoint works (OpenAI, vLLM, ...)."
            )
        return cls(base_url=str(url), model=str(name), api_key=key, **options)


@dataclass
class Judge:
    """A pinned judge: one endpoint, one model string, a call cache, and a record of what answered."""

    config: JudgeConfig
    cache_path: Path | None = None
    answered_by: set[str] = field(default_factory=set)
    prompts: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    cached_calls: int = 0

    def __post_init__(self) -> None:
        from openai import OpenAI

        self._client = OpenAI(
            base_url=self.config.base_url,
            api_key=self.config.api_key,
            timeout=self.config.timeout_s,
            max_retries=0,
        )
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if self.cache_path is not None:
            for record in read_jsonl(self.cache_path):
                if (
                    record.get("model") == self.config.model
                    and record.get("base_url") == self.config.base_url
                ):
                    self._cache[record["key"]] = record
            self._appender: JsonlAppender | None = JsonlAppender(self.cache_path)
        else:
            self._appender = None

    def register_prompt(self, name: str, template: str) -> None:
        self.prompts[name] = prompt_hash(template)

    def complete(self, key: str, messages: list[dict[str, Any]]) -> str:
        """The judge's reply to ``messages``, cached under ``key`` (item id + purpose) and the messages' hash.

        A changed prediction therefore gets a new judgement instead of a stale cached one.
        """
        key = f"{key}#{prompt_hash(json.dumps(messages, sort_keys=True, ensure_ascii=False))}"
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self.cached_calls += 1
                self.answered_by.add(cached.get("answered_by", self.config.model))
                return str(cached["content"])
        content, answered_by = self._call(messages)
        record = {
            "key": key,
            "base_url": self.config.base_url,
            "model": self.config.model,
            "answered_by": answered_by,
            "content": content,
        }
        with self._lock:
            self.calls += 1
            self.answered_by.add(answered_by)
            self._cache[key] = record
            if self._appender is not None:
                self._appender.write(record)
        return content

    def complete_many(self, requests: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
        """Replies to ``(key, messages)`` pairs, in order, with ``config.workers`` calls in flight."""
        if self.config.workers <= 1 or len(requests) <= 1:
            return [self.complete(key, messages) for key, messages in requests]
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            return list(pool.map(lambda request: self.complete(*request), requests))

    def _call(self, messages: list[dict[str, Any]]) -> tuple[str, str]:
        extra: dict[str, Any] = {}
        if self.config.temperature is not None:
            extra["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            extra["max_tokens"] = self.config.max_tokens
        last: Exception | None = None
        for attempt in range(self.config.max_retries):
            try:
                response = self._client.chat.completions.create(
                    model=self.config.model, messages=messages, **extra
                )
                return response.choices[0].message.content or "", str(response.model or self.config.model)
            except Exception as exc:  # noqa: BLE001 - network errors, rate limits, 5xx: retried, then re-raised
                last = exc
                logger.warning(
                    "judge call failed (attempt %d/%d): %s", attempt + 1, self.config.max_retries, exc
                )
                time.sleep(min(2.0**attempt, MAX_BACKOFF_S))
        raise RuntimeError(f"judge {self.config.model} at {self.config.base_url} failed: {last}") from last

    def identity(self) -> dict[str, Any]:
        return {
            "base_url": self.config.base_url,
            "model": self.config.model,
            "answered_by": sorted(self.answered_by),
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "workers": self.config.workers,
            "prompt_sha256_16": dict(self.prompts),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "calls": self.calls,
            "cached_calls": self.cached_calls,
        }

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
