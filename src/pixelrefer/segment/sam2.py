"""SAM2 through transformers' native ``Sam2Model`` (images) and ``Sam2VideoModel`` (videos).

The transformers image/video processors need torchvision, which cannot be used here, so this module
does their small job itself: resize to the model's square input, ImageNet normalisation, prompt
coordinates scaled to that square, and low-resolution logits resized back to the frame size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pixelrefer.segment.base import ProgressFn, SegmentPrompt, SegmentResult

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SCRIBBLE_POINTS = 8  # points sampled along a scribble to prompt SAM2
OBJECT_ID = 1


def _image_size(config: Any) -> int:
    size = getattr(config, "image_size", None) or config.vision_config.backbone_config.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def sample_points(mask: np.ndarray | None, count: int) -> np.ndarray:
    """Up to ``count`` ``x, y`` points spread evenly over a brush mask (in raster order)."""
    if mask is None or not mask.any():
        return np.zeros((0, 2))
    ys, xs = np.nonzero(mask)
    picks = np.linspace(0, len(xs) - 1, min(count, len(xs))).round().astype(int)
    return np.stack([xs[picks], ys[picks]], axis=1).astype(np.float64)


class Sam2Segmenter:
    """SAM2 segmenter. ``image_model``: ``Sam2Model``; ``video_model``: ``Sam2VideoModel`` (for propagation)."""

    name = "sam2"

    def __init__(self, image_model: Any, video_model: Any = None, device: Any = "cpu", dtype: Any = None) -> None:
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.image_model = image_model.to(self.device, self.dtype).eval() if image_model is not None else None
        self.video_model = video_model.to(self.device, self.dtype).eval() if video_model is not None else None
        if self.image_model is None and self.video_model is None:
            raise ValueError("Sam2Segmenter needs an image model, a video model or both")
        self.image_size = _image_size((self.image_model or self.video_model).config)

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike, device: Any = "cpu", dtype: Any = None) -> Sam2Segmenter:
        """Load both models from one SAM2 checkpoint (a local folder or a hub id)."""
        from transformers import Sam2Model, Sam2VideoModel

        models: list[Any] = []
        for model_cls in (Sam2Model, Sam2VideoModel):
            try:
                model, info = model_cls.from_pretrained(str(weights), output_loading_info=True)
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot load SAM2 weights from {weights!s}: {exc}") from exc
            if info.get("missing_keys"):
                logger.warning("%s: %d weights are missing from %s; not using it", model_cls.__name__,
                               len(info["missing_keys"]), weights)
                model = None
            models.append(model)
        if models[0] is None:
            raise ValueError(f"{weights!s} does not hold a complete SAM2 image model")
        return cls(models[0], models[1], device=device, dtype=dtype)

    def _pixels(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """``(N, 3, S, S)`` normalised input on the model's device and dtype."""
        batch = torch.from_numpy(np.stack([np.asarray(f)[:, :, :3] for f in frames])).permute(0, 3, 1, 2)
        batch = batch.to(self.device, torch.float32) / 255.0
        batch = F.interpolate(batch, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return ((batch - mean) / std).to(self.dtype)

    def _to_frame(self, logits: torch.Tensor, height: int, width: int) -> np.ndarray:
        full = F.interpolate(logits.float().reshape(1, 1, *logits.shape[-2:]), size=(height, width),
                             mode="bilinear", align_corners=False)
        return (full[0, 0] > 0).cpu().numpy()

    def _prompt_tensors(self, prompt: SegmentPrompt, height: int, width: int) -> dict[str, torch.Tensor]:
        scale = torch.tensor([self.image_size / width, self.image_size / height], dtype=torch.float32)
        points = [prompt.positive_points(), sample_points(prompt.scribble, MAX_SCRIBBLE_POINTS),
                  prompt.negative_points(), sample_points(prompt.negative_scribble, MAX_SCRIBBLE_POINTS // 2)]
        labels = np.concatenate([np.full(len(p), lab) for p, lab in zip(points, (1, 1, 0, 0))])
        xy = np.concatenate(points).astype(np.float32)
        out: dict[str, torch.Tensor] = {}
        if len(xy):
            out["input_points"] = (torch.from_numpy(xy) * scale).view(1, 1, -1, 2).to(self.device, self.dtype)
            out["input_labels"] = torch.from_numpy(labels).view(1, 1, -1).to(self.device, torch.long)
        if prompt.box is not None:
            box = torch.from_numpy(prompt.box.astype(np.float32)).view(2, 2) * scale
            out["input_boxes"] = box.view(1, 1, 4).to(self.device, self.dtype)
        if not out:
            raise ValueError("a segment prompt needs points, a box or a scribble")
        return out

    @torch.inference_mode()
    def segment(self, image: np.ndarray, prompt: SegmentPrompt) -> SegmentResult:
        """Multi-mask prediction; the mask with the highest predicted IoU is kept."""
        if self.image_model is None:
            raise ValueError("this SAM2 segmenter has no image model")
        height, width = image.shape[:2]
        inputs = self._prompt_tensors(prompt, height, width)
        out = self.image_model(pixel_values=self._pixels([image]), multimask_output=True, **inputs)
        scores = out.iou_scores[0, 0].float()
        best = int(torch.argmax(scores))
        mask = self._to_frame(out.pred_masks[0, 0, best], height, width)
        return SegmentResult(mask, float(scores[best].clamp(0, 1)))

    def _session(self, frames: Sequence[np.ndarray]) -> Any:
        from transformers import Sam2VideoInferenceSession

        height, width = frames[0].shape[:2]
        return Sam2VideoInferenceSession(video=self._pixels(frames), video_height=height, video_width=width,
                                         inference_device=self.device, inference_state_device=self.device,
                                         video_storage_device=self.device, dtype=self.dtype)

    def _add_mask(self, session: Any, frame: int, mask: np.ndarray) -> None:
        """What ``Sam2VideoProcessor.process_new_mask_for_video_frame`` does, without its torchvision parts."""
        tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None].to(self.device)
        tensor = F.interpolate(tensor, size=(self.image_size, self.image_size), mode="bilinear",
                               align_corners=False, antialias=True)
        obj_idx = session.obj_id_to_idx(OBJECT_ID)
        session.add_mask_inputs(obj_idx, frame, (tensor >= 0.5).float())
        session.remove_point_inputs(obj_idx, frame)
        session.obj_with_new_inputs = [OBJECT_ID]
        self.video_model(inference_session=session, frame_idx=frame)

    @torch.inference_mode()
    def propagate(
        self, frames: Sequence[np.ndarray], masks: dict[int, np.ndarray], progress: ProgressFn | None = None
    ) -> dict[int, np.ndarray]:
        """Track the annotated masks forward from the first annotated frame and backward to frame 0."""
        if self.video_model is None:
            from pixelrefer.segment.flow import propagate_with_flow

            logger.warning("no SAM2 video model loaded; propagating with optical flow instead")
            return propagate_with_flow(frames, masks, progress)
        if not masks:
            raise ValueError("propagation needs at least one annotated mask")
        height, width = frames[0].shape[:2]
        session = self._session(frames)
        for frame, mask in sorted(masks.items()):
            self._add_mask(session, frame, mask)
        first = min(masks)
        out: dict[int, np.ndarray] = {}
        passes = [False, True] if first > 0 else [False]
        for reverse in passes:
            for result in self.video_model.propagate_in_video_iterator(
                inference_session=session, start_frame_idx=first, reverse=reverse
            ):
                index = int(result.frame_idx)
                if index not in out:
                    out[index] = self._to_frame(result.pred_masks[0], height, width)
                    if progress is not None and index not in masks:
                        progress(1)
        out.update({f: np.asarray(m, dtype=bool) for f, m in masks.items()})
        return dict(sorted(out.items()))
