"""A small Qwen2-style byte-level BPE tokenizer trained on the synthetic world's text.

Qwen2's pre-tokenisation by default (its split regex, then byte-level without a prefix space), the official
special tokens appended right after the BPE vocabulary in the order of
:data:`pixelrefer.constants.SPECIAL_TOKENS`, and the official chat template. Saved as a transformers
tokenizer directory, so ``AutoTokenizer.from_pretrained(out_dir)`` reloads it with the same ids.

Qwen2's regex makes "pink" after a space (`` (A) pink``, an option) a different token from "pink" at the start of
an answer, and a model trained from scratch must then learn that the two mean the same before it can answer a
multiple-choice question by its option (docs/training.md, experiments 11 and 12). The other rules of
:data:`~pixelrefer.synth.config.PRETOKENIZERS` split that space off: ``"options"`` only after an option's letter,
``"words"`` everywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from pixelrefer.constants import END_OF_TEXT, IM_END, SPECIAL_TOKENS
from pixelrefer.errors import ConfigError
from pixelrefer.processing.prompts import CHAT_TEMPLATE
from pixelrefer.synth.config import (
    DEFAULT_PRETOKENIZER,
    DEFAULT_VOCAB_SIZE,
    PRETOKENIZERS,
    check_pretokenizer,
)

logger = logging.getLogger(__name__)

MAX_TEMPLATE_SECONDS = 64  # timestamps rendered into the extra corpus ("Time 3.0s:")
TEMPLATE_REPEAT = 16  # template text is rare in a corpus but present in every sequence: weight it up
SPLIT_FILES = ("train.json", "val.json", "test.json", "heldout.json")


def template_texts() -> list[str]:
    """Text the chat template and the region expansion produce around the data (without special tokens)."""
    out = ["user\n", "assistant\n", "system\n"]
    for t in range(MAX_TEMPLATE_SECONDS):
        out += [f"Time {t:.1f}s:", f"[Time {t:.1f}:", f",Time {t:.1f}:"]
    out += ["[", "]", ",", "\n"]
    return out


def corpus_texts(dataset_dir: str | Path, splits: Iterable[str] = SPLIT_FILES) -> Iterator[str]:
    """Every conversation turn of a built dataset (the given split files that exist), in file order."""
    root = Path(dataset_dir)
    for name in splits:
        path = root / name
        if not path.exists():
            continue
        for sample in json.loads(path.read_text(encoding="utf-8")):
            for turn in sample["conversations"]:
                yield turn["value"]


def _base_tokenizer(pretokenizer: str) -> Tokenizer:
    tok = Tokenizer(models.BPE(byte_fallback=False, ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZERS[pretokenizer]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def check_vocab_size(vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size must exceed the 256 byte symbols plus {len(SPECIAL_TOKENS)} specials, "
                          f"got {vocab_size!r}")


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = DEFAULT_VOCAB_SIZE,
                    min_frequency: int = 2, pretokenizer: str = DEFAULT_PRETOKENIZER) -> PreTrainedTokenizerFast:
    """Train, save to `out_dir` and return the tokenizer.

    `vocab_size` is the total size including the special tokens; a small corpus may stop the BPE merges
    earlier, giving a smaller vocabulary. Special tokens get ids ``n_bpe .. n_bpe + 6``. `pretokenizer` is a key
    of :data:`~pixelrefer.synth.config.PRETOKENIZERS`.
    """
    check_vocab_size(vocab_size)
    check_pretokenizer(pretokenizer)
    tok = _base_tokenizer(pretokenizer)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(_with_template(texts), trainer=trainer)
    n_bpe = tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    hf.chat_template = CHAT_TEMPLATE
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    logger.info("trained a tokenizer with %d BPE tokens + %d special tokens into %s", n_bpe,
                len(SPECIAL_TOKENS), out)
    return hf


def _with_template(texts: Iterable[str]) -> Iterator[str]:
    for _ in range(TEMPLATE_REPEAT):
        yield from template_texts()
    yield from texts
