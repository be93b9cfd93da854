"""Visual Genome short region captions (``vg_val_5000.json``): box filled as a mask, COCO metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.masks import box_mask, require_file
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
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

PROMPT = BENCHMARK_PROMPTS["vg"]


def _reference_fields(entry: Any) -> dict[str, Any]:
    image = entry.get("image") if isinstance(entry, dict) else None
    return {"image": image[0] if isinstance(image, list) and image else image,
            "Answer": str(entry.get("caption", "")) if isinstance(entry, dict) else ""}


class VG(EntryTask):
    name = "vg"
    title = "Visual Genome region captioning"
    anchor_key = "vg"

    def reference_fields(self, entry: Any) -> dict[str, Any]:
        return _reference_fields(entry)

    def builder(self, item_id: str, entry: dict[str, Any], media_root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            image, height, width, boxes = require(entry, "image", "height", "width", "boxes")
            name = image[0] if isinstance(image, list) and image else image
            if not isinstance(name, str) or not isinstance(boxes, list) or not boxes:
                raise BadItem("entry needs an image name and at least one box")
            mask = box_mask(boxes[0], height, width)
            path = require_file(resolve_media(media_root, name))
            return EvalRequest(id=item_id, media=path, question=PROMPT, regions=[{0: mask}])

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        return score_captions(records, ctx)
