"""One loadable model folder from a training checkpoint of any strategy, offline, in one process:
``single``/``ddp`` checkpoints hold plain safetensors, ``fsdp2`` ones a DCP folder (read without a process
group), DeepSpeed ones DeepSpeed's ZeRO shards (gathered by its ``zero_to_fp32``).

DeepSpeed's checkpoint files are ``torch.save`` pickles that DeepSpeed unpickles in full:
consolidate (and resume) only checkpoints your own runs wrote.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from pixelrefer.config import PixelReferConfig
from pixelrefer.errors import CheckpointError
from pixelrefer.model.checkpoint import load_strict, read_state_dict
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.train.config import RESOLVED_NAME, read_resolved
from pixelrefer.train.engines import DCP_DIR, DEEPSPEED_TAG, tied_keys
from pixelrefer.train.loop import STATE_FILE, latest_checkpoint

logger = logging.getLogger(__name__)

def checkpoint_state(checkpoint: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of ``checkpoint`` under the model's names, whatever strategy wrote it."""
    try:
        strategy = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")).get("strategy", "single")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: no readable {STATE_FILE}: {exc}") from exc
    if strategy in ("single", "ddp"):
        return read_state_dict(checkpoint)
    if strategy == "fsdp2":
        import torch.distributed.checkpoint as dcp

        state = {k: v for k, v in model.state_dict().items()}
        dcp.load({"model": state}, checkpoint_id=str(checkpoint / DCP_DIR))
        return state
    if strategy.startswith("deepspeed"):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        if not (checkpoint / DEEPSPEED_TAG).is_dir():
            raise CheckpointError(f"{checkpoint} has no {DEEPSPEED_TAG}/ folder")
        return dict(get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag=DEEPSPEED_TAG))
    raise CheckpointError(f"{checkpoint}: unknown strategy {strategy!r} in {STATE_FILE}")


def consolidate(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Write the weights of ``checkpoint`` (default: the run's latest) with config and tokenizer to ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    found = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if found is None or not (found / STATE_FILE).is_file():
        raise CheckpointError(f"{run_dir} holds no complete training checkpoint")
    config = PixelReferConfig.from_pretrained(found)
    model = PixelReferForConditionalGeneration(config)
    state = checkpoint_state(found, model)
    tied = tied_keys(model)
    load_strict(model, {k: v for k, v in state.items() if k not in tied}, ignore_missing=tuple(tied))
    model.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    copy_tokenizer(run_dir, out)
    logger.info("consolidated %s into %s", found, out)
    return out


def copy_tokenizer(run_dir: Path, out: Path) -> None:
    """The run's tokenizer (its resolved config names the folder) saved next to the weights."""
    from transformers import AutoTokenizer

    resolved = run_dir / RESOLVED_NAME
    if not resolved.is_file():
        raise CheckpointError(f"{run_dir} has no {RESOLVED_NAME}; cannot find the run's tokenizer")
    cfg = read_resolved(resolved)
    source = Path(cfg.model.init_from) if cfg.model.init_from else cfg.data.tokenizer_dir
    if not (source / "tokenizer.json").is_file() and not (source / "tokenizer_config.json").is_file():
        raise CheckpointError(f"no tokenizer in {source} (the tokenizer of {run_dir})")
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
