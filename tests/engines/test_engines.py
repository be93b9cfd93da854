"""The engine layer: the transformers engine gives today's answers, cancels within one step, honours stop ids;
export-llm writes a Qwen2 folder with the same logits; bad engine options are one-line CLI errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from transformers import Qwen2ForCausalLM
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.engines import EmbedsPrompt, VLLMEngine, check_engine_options
from pixelrefer.engines.export_llm import export_llm
from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.engines.vllm_client import EngineError, encode_embeds, parse_token, sampling_fields
from pixelrefer.errors import ConfigError
from pixelrefer.inference.api import AskRequest, PixelRefer

QUESTION = "What is <region> doing?"


@pytest.fixture(scope="module")
def pipe() -> PixelRefer:
    return PixelRefer.from_pretrained("tiny-servable", device="cpu", dtype="float32", segmenter=None)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)


def _mask(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def _todays_answer(pipe: PixelRefer, requests: list[AskRequest], generation: GenerationConfig) -> list[list[int]]:
    """The generation path before engines: ``model.generate`` on input ids + pixels (``PixelRefer._generate``)."""
    from pixelrefer.media import load_media

    samples = []
    for r in requests:
        media = load_media(r.media)
        samples.append(pipe._encode(media, pipe.resolve_regions(media, r.regions), r.question))
    batch = pipe.processor.collate(samples, padding_side="left")
    seqs = pipe._generate(batch.input_ids, batch.attention_mask, batch.visual, generation)
    return pipe._new_tokens(seqs, batch.input_ids.shape[1])


def test_transformers_engine_gives_todays_answers(pipe: PixelRefer, image: np.ndarray) -> None:
    requests = [AskRequest(image, [_mask(64, 80, (5, 5, 40, 30))], QUESTION),
                AskRequest(image, [_mask(64, 80, (30, 20, 78, 60))], "Describe <region> in detail please.")]
    for generation in (GenerationConfig(max_new_tokens=12, min_new_tokens=12),
                       GenerationConfig(max_new_tokens=10, do_sample=True, temperature=1.0, top_k=20, seed=3),
                       GenerationConfig(max_new_tokens=10, min_new_tokens=10, repetition_penalty=1.3)):
        got = [a.token_ids for a in pipe.ask_batch(requests, generation)]
        assert got == _todays_answer(pipe, requests, generation)
        assert all(len(row) >= 1 for row in got)


def test_stream_text_equals_the_answer(pipe: PixelRefer, image: np.ndarray) -> None:
    regions = [_mask(64, 80, (5, 5, 40, 30))]
    generation = GenerationConfig(max_new_tokens=16, min_new_tokens=16)
    answer = pipe.ask(image, regions, QUESTION, generation)
    assert "".join(pipe.stream(image, regions, QUESTION, generation)).strip() == answer.text


def _prompt(pipe: PixelRefer, image: np.ndarray, cancel: threading.Event | None = None) -> EmbedsPrompt:
    from pixelrefer.media import load_media

    media = load_media(image)
    sample = pipe._encode(media, pipe.resolve_regions(media, [_mask(64, 80, (5, 5, 40, 30))]), QUESTION)
    (prompt,) = pipe._prompts(pipe.processor.collate([sample], padding_side="left"), [cancel])
    return prompt


class CountdownEvent(threading.Event):
    """Reports set from the ``n``-th check on, so the step a cancellation is seen at is known exactly."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.checks = n, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks >= self.n or super().is_set()


@pytest.mark.parametrize("steps", [1, 3])
def test_cancellation_stops_within_one_step(pipe: PixelRefer, image: np.ndarray, steps: int) -> None:
    generation = GenerationConfig(max_new_tokens=40, min_new_tokens=40)
    cancel = CountdownEvent(steps)
    (tokens,) = pipe.engine.generate([_prompt(pipe, image, cancel)], generation, pipe.stop_ids)
    assert len(tokens) == steps  # the token of the step that saw the cancellation, none after it
    streamed = list(pipe.engine.stream(_prompt(pipe, image, CountdownEvent(steps)), generation, pipe.stop_ids))
    assert streamed == tokens


def test_closing_a_stream_stops_generation(pipe: PixelRefer, image: np.ndarray) -> None:
    generation = GenerationConfig(max_new_tokens=200, min_new_tokens=200)
    tokens = pipe.engine.stream(_prompt(pipe, image), generation, pipe.stop_ids)
    assert next(tokens) >= 0
    tokens.close()  # joins the generation thread, which stops at its next step
    assert pipe._lock.acquire(timeout=5)  # the model is free again
    pipe._lock.release()


def test_stop_ids_end_the_answer(pipe: PixelRefer, image: np.ndarray) -> None:
    generation = GenerationConfig(max_new_tokens=24, min_new_tokens=24)
    (full,) = pipe.engine.generate([_prompt(pipe, image)], generation, pipe.stop_ids)
    stop = full[5]
    first = full.index(stop)
    free = GenerationConfig(max_new_tokens=24)
    (cut,) = pipe.engine.generate([_prompt(pipe, image)], free, [*pipe.stop_ids, stop])
    (reference,) = pipe.engine.generate([_prompt(pipe, image)], free, pipe.stop_ids)
    end = next((i for i, t in enumerate(reference) if t == stop), len(reference))
    assert cut == reference[:end]
    assert stop not in cut
    assert first <= 5
    assert list(pipe.engine.stream(_prompt(pipe, image), free, [*pipe.stop_ids, stop])) == cut


def test_embeds_prompt_checks_its_shape() -> None:
    with pytest.raises(ConfigError, match="length >= 1"):
        EmbedsPrompt(torch.zeros(0, 8))
    with pytest.raises(ConfigError, match="token ids"):
        EmbedsPrompt(torch.zeros(3, 8), token_ids=[1, 2])


@pytest.mark.parametrize("preset", ["tiny-servable", "tiny"])
def test_export_llm_round_trip_gives_identical_logits(preset: str, image: np.ndarray, tmp_path) -> None:
    pipe = PixelRefer.from_pretrained(preset, device="cpu", dtype="float32", segmenter=None)
    files = {f.name for f in export_llm(pipe.model, pipe.tokenizer, tmp_path / "llm")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= files
    llm = Qwen2ForCausalLM.from_pretrained(tmp_path / "llm", dtype=torch.float32).eval()
    prompt = _prompt(pipe, image)
    with torch.inference_mode():
        ours = pipe.model(inputs_embeds=prompt.embeds[None]).logits
        theirs = llm(inputs_embeds=prompt.embeds[None]).logits
    assert torch.equal(ours, theirs)
    assert llm.config.eos_token_id == pipe.eos_id
    with pytest.raises(Exception, match="not empty"):
        export_llm(pipe.model, pipe.tokenizer, tmp_path / "llm")


def test_vllm_request_fields() -> None:
    greedy = sampling_fields(GenerationConfig(max_new_tokens=7, min_new_tokens=2), [5, 9])
    assert greedy == {"max_tokens": 7, "min_tokens": 2, "stop_token_ids": [5, 9], "ignore_eos": True,
                      "skip_special_tokens": False, "temperature": 0.0}
    sampled = sampling_fields(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.8, top_k=4, seed=1,
                                               repetition_penalty=1.1), [5])
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["seed"],
            sampled["repetition_penalty"]) == (0.7, 0.8, 4, 1, 1.1)
    assert parse_token("token_id:42") == 42
    with pytest.raises(EngineError):
        parse_token("hello")
    import base64
    import io

    tensor = torch.randn(3, 4)
    back = torch.load(io.BytesIO(base64.b64decode(encode_embeds(tensor))), weights_only=True)
    assert torch.equal(back, tensor)


def test_vllm_engine_refuses_an_unreachable_server() -> None:
    with pytest.raises(EngineError, match="no vLLM server"):
        VLLMEngine("http://127.0.0.1:9")


@pytest.mark.parametrize(("engine", "url", "model", "message"), [
    ("onnx", None, None, "unknown engine"),
    ("vllm", None, None, "needs --vllm-url"),
    ("transformers", "http://127.0.0.1:8001", None, "only used with --engine vllm"),
    ("transformers", None, "m", "only used with --engine vllm"),
    ("vllm", "127.0.0.1:8001", None, "http"),
])
def test_bad_engine_options(engine: str, url: str | None, model: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_engine_options(engine, url, model)
    args = ["serve", "--model", "tiny", "--device", "cpu", "--port", "1", "--engine", engine]
    args += ["--vllm-url", url] if url else []
    args += ["--vllm-model", model] if model else []
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.startswith("error:")


def test_serve_with_an_unreachable_vllm_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["serve", "--model", "tiny", "--device", "cpu", "--port", "1",
                                      "--engine", "vllm", "--vllm-url", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and "no vLLM server" in result.stderr


def test_export_llm_cli(tmp_path) -> None:
    out = tmp_path / "llm"
    result = CliRunner().invoke(app, ["export-llm", "tiny-servable", str(out)])
    assert result.exit_code == 0, result.output
    assert "config.json" in result.stdout and (out / "model.safetensors").is_file()
    again = CliRunner().invoke(app, ["export-llm", "tiny-servable", str(out)])
    assert again.exit_code == 3 and "not empty" in again.stderr


def test_shared_prefix_cache_repeats_the_prefix_in_place() -> None:
    from transformers import DynamicCache, Qwen2Config

    from pixelrefer.engines.generation import shared_prefix_cache

    config = Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=64, vocab_size=50)
    prefix = DynamicCache(config=config)
    keys = [torch.randn(1, 2, 5, 8) for _ in range(2)]
    for layer, k in enumerate(keys):
        prefix.update(k, -k, layer)
    cache = shared_prefix_cache(prefix, config, batch=3, max_len=9)
    assert cache.get_seq_length() == 5
    for layer, k in enumerate(keys):
        stored = cache.layers[layer]
        assert stored.keys.shape == (3, 2, 9, 8)
        assert torch.equal(stored.keys[:, :, :5], k.expand(3, -1, -1, -1))
        assert torch.equal(stored.values[:, :, :5], -k.expand(3, -1, -1, -1))
        address = stored.keys.data_ptr()
        cache.update(torch.ones(3, 2, 1, 8), torch.ones(3, 2, 1, 8), layer)
        assert stored.keys.data_ptr() == address  # written in place, not concatenated
        assert torch.equal(stored.keys[:, :, 5], torch.ones(3, 2, 8))
