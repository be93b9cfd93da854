"""Library code leaves process-wide state alone: RNGs, environment variables, shared tokenizers."""

from __future__ import annotations

import os
import sys
import types

import pytest
import torch

from pixelrefer.model.tokenizer import byte_level_tokenizer
from pixelrefer.utils.rng import seeded


def test_each_byte_level_tokenizer_is_its_own():
    first = byte_level_tokenizer()
    first.padding_side = "right"
    first.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    second = byte_level_tokenizer()
    assert first is not second
    assert second.padding_side == "left"
    assert len(second) == 263 and "<extra>" not in second.get_vocab()


def test_seeded_restores_the_cpu_generator_and_repeats_draws():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.rand(4)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream continues where it was
    with seeded(7):
        b = torch.rand(4)
    assert torch.equal(a, b)


def test_seeded_none_draws_from_the_process_generator():
    torch.manual_seed(5)
    with seeded(None):
        inside = torch.rand(2)
    after = torch.rand(2)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(4), torch.cat([inside, after]))


def test_seeded_on_cpu_leaves_accelerator_generators_alone(monkeypatch):
    calls = []
    for name in ("manual_seed", "manual_seed_all", "set_rng_state", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, _n=name, **k: calls.append(_n))
    with seeded(3, "cpu"):
        torch.rand(1)
    assert calls == []


def test_load_embedder_reads_local_files_without_touching_the_environment(monkeypatch):
    from pixelrefer.eval.metrics import semantic

    seen = {}

    class Recorder:
        def __init__(self, path, **kwargs):
            seen.update(path=path, **kwargs)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=Recorder))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    semantic.load_embedder.__wrapped__("/models/minilm")
    assert seen == {"path": "/models/minilm", "device": "cpu", "local_files_only": True}
    assert "HF_HUB_OFFLINE" not in os.environ


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seeded_on_cuda_restores_that_device_generator_and_repeats_draws():
    torch.cuda.manual_seed(11)
    expected_next = torch.rand(3, device="cuda")
    torch.cuda.manual_seed(11)
    cpu_state = torch.get_rng_state()
    with seeded(4, "cuda"):
        a = torch.rand(5, device="cuda")
    assert torch.equal(torch.rand(3, device="cuda"), expected_next)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    with seeded(4, torch.device("cuda", torch.cuda.current_device())):
        b = torch.rand(5, device="cuda")
    assert torch.equal(a, b)
