"""Tokenizers built in code: a byte-level tokenizer with the official special tokens and chat template.

Random-weight presets (``tiny``, ``2b`` shapes, ...) use it, so they need no files. Trained models ship their own
tokenizer (see ``pixelrefer.synth.tokenizer``).
"""

from __future__ import annotations

from pixelrefer.constants import END_OF_TEXT, IM_END, SPECIAL_TOKENS
from pixelrefer.processing.prompts import CHAT_TEMPLATE


def byte_level_tokenizer():
    """256 byte tokens followed by the 7 official special tokens (ids 256..262); no merges.

    A new tokenizer each call (about 1 ms): callers may change theirs (special tokens, padding side) without
    changing anyone else's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (IM_END, END_OF_TEXT)],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
