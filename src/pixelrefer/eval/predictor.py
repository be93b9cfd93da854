"""Predictors: anything that turns a batch of :class:`EvalRequest` into answer strings.

:class:`PixelReferPredictor` adapts :meth:`pixelrefer.PixelRefer.ask_batch`; tests use fakes with the
same :class:`Predictor` protocol.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from pixelrefer.eval.types import EvalRequest

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 1024


@runtime_checkable
class Predictor(Protocol):
    def predict(self, requests: list[EvalRequest]) -> list[str]:
        """One answer per request, in order. May raise; the harness then retries items one by one."""
        ...

    def describe(self) -> dict[str, Any]:
        """What produced the answers (model, variant, preset, dtype, device, generation settings)."""
        ...


def to_media_and_regions(request: EvalRequest) -> tuple[Any, list[Any]]:
    """Turn an EvalRequest into (media, list of ``Region``): a video as :class:`pixelrefer.media.Media` with the
    annotated source frames mapped onto its sampled frames; an image as given (the predictor loads it once)."""
    from pixelrefer.inference.resolve import on_sampled_frames
    from pixelrefer.media import clip_from_frames, read_video
    from pixelrefer.regions import Region

    if request.video is None:
        return request.media, [Region.from_frames(dict(r)) for r in request.regions]  # the predictor loads it
    if isinstance(request.media, list):
        clip = clip_from_frames(request.media, request.timestamps)
    else:
        clip = read_video(request.media, **request.video.read_kwargs())  # declared a video by its benchmark
    regions, _ = on_sampled_frames([Region.from_frames(dict(r)) for r in request.regions], clip)
    return clip, regions


class PixelReferPredictor:
    """Greedy decoding with a :class:`pixelrefer.PixelRefer` model (batch as given by the harness)."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        quantize: str | None = None,
        quantize_vision: bool = False,
    ) -> None:
        from pixelrefer import GenerationConfig, PixelRefer

        self.model_name = model
        self.device, self.dtype, self.quantize = device, dtype, quantize
        self.quantize_vision = quantize_vision
        self.model = PixelRefer.from_pretrained(model, device=device, dtype=dtype, quantize=quantize,
                                                quantize_vision=quantize_vision)
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False)

    def predict(self, requests: list[EvalRequest]) -> list[str]:
        from pixelrefer import AskRequest

        asks = []
        for request in requests:
            media, regions = to_media_and_regions(request)
            asks.append(AskRequest(media=media, regions=regions, question=request.question))
        return [answer.text for answer in self.model.ask_batch(asks, generation=self.generation)]

    def describe(self) -> dict[str, Any]:
        network = getattr(self.model, "model", None)
        config = getattr(network, "config", None)
        info: dict[str, Any] = {
            "model": self.model_name,
            "device": self.device,
            "dtype": self.dtype,
            "quantize": self.quantize,
            "quantize_vision": self.quantize_vision,
            "generation": {"max_new_tokens": self.generation.max_new_tokens, "do_sample": False},
        }
        if config is not None:
            info["variant"] = getattr(config, "variant", None)
            info["name_or_path"] = getattr(config, "_name_or_path", None) or None
        if network is not None and hasattr(network, "parameters"):
            info["parameters"] = int(sum(p.numel() for p in network.parameters()))
        try:
            from pixelrefer.presets import BUNDLED, RANDOM_PRESETS

            if self.model_name in RANDOM_PRESETS or self.model_name in BUNDLED:
                info["preset"] = self.model_name
        except ImportError:
            logger.debug("no preset registry; the model is recorded by path only")
        return info
