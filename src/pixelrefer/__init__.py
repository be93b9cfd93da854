"""pixelrefer: region-level understanding of images and videos (PixelRefer and PixelRefer-Lite).

The public names are imported on first use, so ``import pixelrefer`` (and the CLI's start) stays light. Using
``pixelrefer.PixelReferConfig`` registers the ``pixelrefer`` model type with transformers' ``AutoConfig``, using
``pixelrefer.PixelReferForConditionalGeneration`` also with ``AutoModel`` / ``AutoModelForImageTextToText`` /
``AutoModelForCausalLM`` (registration needs torch, which a bare ``import pixelrefer`` does not load).
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "PixelRefer": "pixelrefer.inference.api",
    "AskRequest": "pixelrefer.inference.api",
    "Answer": "pixelrefer.inference.api",
    "AnswerStream": "pixelrefer.inference.api",
    "ChatSession": "pixelrefer.inference.api",
    "GenerationConfig": "pixelrefer.engines.generation",
    "PixelReferConfig": "pixelrefer.config",
    "PixelReferForConditionalGeneration": "pixelrefer.model.modeling",
    "Region": "pixelrefer.regions",
}
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 (a sorted list of the lazy names)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pixelrefer' has no attribute {name!r}")
