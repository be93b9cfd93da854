"""``pixelrefer export-llm``: our model's LLM written once as a plain Qwen2 folder that vLLM (or transformers'
``Qwen2ForCausalLM``) loads: ``config.json`` (``Qwen2ForCausalLM``), safetensors, tokenizer, generation config.

The folder holds only the language model (embedding table, decoder, ``lm_head``); image and object tokens are
computed by our model and sent as prompt embeddings (:mod:`pixelrefer.engines`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig as HFGenerationConfig
from transformers import Qwen2Config, Qwen2ForCausalLM

from pixelrefer.constants import DEFAULT_MAX_SHARD_SIZE, IM_END
from pixelrefer.model.checkpoint import check_output_folder as check_out

logger = logging.getLogger(__name__)


def qwen2_config(model: Any, eos_id: int) -> Qwen2Config:
    """The LLM's config as a stand-alone ``Qwen2ForCausalLM`` config whose end token is ours (``<|im_end|>``)."""
    fields = model.config.text_config.to_dict()
    fields.update(architectures=["Qwen2ForCausalLM"], eos_token_id=eos_id, model_type="qwen2")
    fields.pop("transformers_version", None)
    return Qwen2Config(**fields)


def export_llm(model: Any, tokenizer: Any, out: str | Path, overwrite: bool = False,
               max_shard_size: str = DEFAULT_MAX_SHARD_SIZE) -> list[Path]:
    """Write ``model``'s LLM to ``out`` as a Qwen2 folder; returns the files written. The weights are shared with
    ``model`` (nothing is copied in memory)."""
    out = Path(out)
    check_out(out, overwrite)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = qwen2_config(model, eos_id)
    with torch.device("meta"):
        llm = Qwen2ForCausalLM(config)
    llm.model = model.language_model
    llm.lm_head = model.lm_head
    llm.generation_config = HFGenerationConfig(eos_token_id=eos_id, pad_token_id=config.pad_token_id)
    out.mkdir(parents=True, exist_ok=True)
    llm.save_pretrained(out, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out)
    files = sorted(p for p in out.iterdir() if p.is_file())
    logger.info("wrote the LLM of %s parameters to %s", sum(p.numel() for p in llm.parameters()), out)
    return files

