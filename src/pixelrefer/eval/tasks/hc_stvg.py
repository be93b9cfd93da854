"""HC-STVG human-centric video region captions (``hc_stvg_val.json``), COCO caption metrics.

PixelRefer protocol: one SAM-extracted RLE mask on ``frame_idx``, video at 1 fps (≤ 768 frames).
Lite protocol (``hc-stvg-val-allframe.json``): ``video[0]``, ``masks[obj]{frame: rle}`` on all annotated
frames, the reference in ``conversations[1].value``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.masks import decode_segmentation, require_file
from pixelrefer.eval.tasks.base import (
    EntryTask,
    Record,
    ScoreContext,
    TaskResult,
    require,
    resolve_media,
)
from pixelrefer.eval.tasks.captioning import score_captions
from pixelrefer.eval.types import BadItem, EvalRequest
from pixelrefer.media import OFFICIAL_EVAL_SAMPLING
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

PROMPT = BENCHMARK_PROMPTS["hc_stvg"]
LITE_PROMPT = BENCHMARK_PROMPTS["hc_stvg_lite"]


def _reference(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    if "caption" in entry:
        return str(entry["caption"])
    conversations = entry.get("conversations") or []
    return str(conversations[1].get("value", "")) if len(conversations) > 1 else ""


def _reference_fields(entry: Any) -> dict[str, Any]:
    video = entry.get("video") if isinstance(entry, dict) else None
    return {"video": video[0] if isinstance(video, list) and video else video, "Answer": _reference(entry)}


class HCSTVG(EntryTask):
    name = "hc_stvg"
    title = "HC-STVG video region captioning"
    modality = "video"
    anchor_key = "hc_stvg"

    def reference_fields(self, entry: Any) -> dict[str, Any]:
        return _reference_fields(entry)

    def builder(self, item_id: str, entry: dict[str, Any], media_root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            if "masks" in entry:
                return self._build_allframe(item_id, entry, media_root)
            video, frame_idx, rle = require(entry, "video", "frame_idx", "mask")
            mask = decode_segmentation(rle)
            path = require_file(resolve_media(media_root, str(video)))
            question = LITE_PROMPT if self.variant == "lite" else PROMPT
            return EvalRequest(item_id, path, question, [{int(frame_idx): mask}], OFFICIAL_EVAL_SAMPLING)

        return build

    def _build_allframe(self, item_id: str, entry: dict[str, Any], media_root: Path) -> EvalRequest:
        video = entry.get("video")
        name = video[0] if isinstance(video, list) and video else video
        objects = entry["masks"]
        if not isinstance(name, str) or not isinstance(objects, list) or not objects:
            raise BadItem("all-frame entry needs video[0] and a non-empty masks list")
        frames = {int(frame): decode_segmentation(rle) for frame, rle in objects[0].items() if rle}
        if not frames:
            raise BadItem("the object has no annotated frame")
        path = require_file(resolve_media(media_root, name))
        question = LITE_PROMPT if self.variant == "lite" else PROMPT
        return EvalRequest(item_id, path, question, [frames], OFFICIAL_EVAL_SAMPLING)

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        return score_captions(records, ctx)
