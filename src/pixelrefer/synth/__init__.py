"""The synthetic object-referring world: seeded scenes and videos with exact masks, templated
instructions, datasets in the official JSON format, and the tokenizer of the small models."""

from __future__ import annotations

import importlib
from typing import Any

from pixelrefer.synth.build import build_dataset, encode_rle
from pixelrefer.synth.config import SynthConfig, Variety
from pixelrefer.synth.scenes import Scene, SceneObject, ScenePart, render_scene
from pixelrefer.synth.tasks import Instruction, Target, image_instruction, video_instruction
from pixelrefer.synth.videos import Track, Video, render_video

_LAZY = {"train_tokenizer": "pixelrefer.synth.tokenizer", "corpus_texts": "pixelrefer.synth.tokenizer"}

__all__ = [
    "Instruction",
    "Scene",
    "SceneObject",
    "ScenePart",
    "SynthConfig",
    "Target",
    "Track",
    "Variety",
    "Video",
    "build_dataset",
    "corpus_texts",
    "encode_rle",
    "image_instruction",
    "render_scene",
    "render_video",
    "train_tokenizer",
    "video_instruction",
]


def __getattr__(name: str) -> Any:
    """The tokenizer helpers import transformers; load them only when asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
