"""The small models' tokenizer: special-token ids, chat template, reload with identical ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from pixelrefer.constants import SPECIAL_TOKENS
from pixelrefer.errors import ConfigError
from pixelrefer.processing.prompts import CHAT_TEMPLATE
from pixelrefer.recipes.config import RecipeData
from pixelrefer.synth.build import build_dataset
from pixelrefer.synth.scenes import render_scene
from pixelrefer.synth.tasks import image_instruction
from pixelrefer.synth.tokenizer import corpus_texts, train_tokenizer


def _texts(n: int = 60) -> list[str]:
    out = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        ins = image_instruction(render_scene(rng, size=(96, 96)), rng)
        out += [ins.question, ins.answer]
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(_texts(), out, vocab_size=600)
    return out


def test_special_tokens_follow_the_bpe_vocab_in_official_order(tokenizer_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    n = len(tok)
    assert ids == list(range(n - len(SPECIAL_TOKENS), n))
    assert n <= 600
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.chat_template == CHAT_TEMPLATE


def test_reload_gives_identical_ids_and_exact_round_trip(tokenizer_dir: Path) -> None:
    fresh = train_tokenizer(_texts(), tokenizer_dir.parent / "again", vocab_size=600)
    loaded = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = ("<|im_start|>user\nTime 0.0s:<image>,Time 1.0s:<image>\nWhat is the category of [<REGION><REGION>]? "
            "Using only one word or phrase.<|im_end|>\n<|im_start|>assistant\nhouse:roof<|im_end|>\n")
    ids = loaded.encode(text, add_special_tokens=False)
    assert ids == fresh.encode(text, add_special_tokens=False)
    assert loaded.decode(ids) == text
    assert ids.count(loaded.convert_tokens_to_ids("<REGION>")) == 2
    assert ids.count(loaded.convert_tokens_to_ids("<image>")) == 2
    odd = "Ünïcode 😀 — never seen"
    assert loaded.decode(loaded.encode(odd, add_special_tokens=False)) == odd


def test_chat_template_renders_the_official_prompt(tokenizer_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi <region>"}]}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\n<image>\nHi <region><|im_end|>\n<|im_start|>assistant\n"


def test_corpus_texts_reads_every_turn_of_a_built_dataset(tmp_path: Path) -> None:
    build_dataset(tmp_path, n_train=6, n_val=2, n_test=0, n_heldout=2, seed=0, image_size=96, progress=False)
    texts = list(corpus_texts(tmp_path))
    n_turns = sum(len(s["conversations"]) for split in ("train", "val", "test", "heldout")
                  for s in json.loads((tmp_path / f"{split}.json").read_text()))
    assert len(texts) == n_turns == 20
    assert list(corpus_texts(tmp_path, ("train.json",)))[:2] == texts[:2]


@pytest.mark.parametrize("pretokenizer, same", [("qwen2", False), ("words", True), ("options", True)])
def test_words_and_options_pretokenizers_give_an_option_the_tokens_of_an_answer(tmp_path: Path, pretokenizer: str,
                                                                     same: bool) -> None:
    tok = train_tokenizer(_texts(), tmp_path, vocab_size=600, pretokenizer=pretokenizer)
    question = tok.tokenize("What colour is <region>? (A) red (B) pink.")
    answer = tok.tokenize("pink")
    assert (question[-len(answer) - 1:-1] == answer) is same
    text = "Ünïcode 😀 — a pink  disc\n\n(A) red"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    if pretokenizer == "options":  # elsewhere a space stays with its word, as in qwen2
        assert "Ġ" not in tok.tokenize("a pink disc (in the box)")


def test_unknown_pretokenizer_is_rejected_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pretokenizer must be one of qwen2, words, options"):
        train_tokenizer(iter(()), tmp_path, pretokenizer="bytes")
    with pytest.raises(ConfigError, match="pretokenizer"):
        RecipeData(pretokenizer="bytes")
