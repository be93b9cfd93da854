"""Predictors: anything that turns a batch of :class:`EvalRequest` into answer strings.

:class:`PixelReferPredictor` adapts :meth:`pixelrefer.PixelRefer.ask_batch`; tests use fakes with the
same :class:`Predictor` protocol.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import numpy as np

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


def _clip_from_frames(paths: list[str], timestamps: tuple[float, ...] | None) -> Any:
    from pixelrefer.media import VideoClip, load_image

    frames = [load_image(p) for p in paths]
    times = list(timestamps) if timestamps is not None else [float(i) for i in range(len(frames))]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    fps = (len(times) - 1) / span if span > 0 else 1.0
    return VideoClip(
        frames=frames,
        timestamps=times,
        frame_indices=list(range(len(frames))),
        fps=fps,
        source_num_frames=len(frames),
    )


def to_media_and_regions(request: EvalRequest) -> tuple[Any, list[Any]]:
    """Turn an EvalRequest into (media for ``AskRequest``, list of ``Region``), mapping video frames."""
    from pixelrefer.media import map_frames, read_video
    from pixelrefer.regions import Region

    if request.video is None:
        return request.media, [Region.from_frames(dict(r)) for r in request.regions]
    v = request.video
    if isinstance(request.media, list):
        clip = _clip_from_frames(request.media, v.timestamps)
    else:
        clip = read_video(
            request.media,
            fps=v.fps,
            num_frames=v.num_frames,
            max_frames=v.max_frames,
            start=v.start,
            end=v.end,
            folder_fps=v.folder_fps,
        )
    annotated = sorted({f for region in request.regions for f in region})
    mapping = map_frames(annotated, clip) if annotated else {}
    regions = []
    for region in request.regions:
        masks: dict[int, np.ndarray] = {}
        for frame, mask in sorted(region.items()):
            masks.setdefault(mapping[frame], mask)
        regions.append(Region.from_frames(masks))
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
