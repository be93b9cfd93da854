"""Parity with the official code's recorded outputs: turn a recorded official call into this package's inputs.

Each official fixture folder (the repository's ``tests/data/official-*``) holds tiny checkpoints in the official format, inputs, and the
official code's outputs in ``expected/`` (its README describes how they were recorded). A *case* is one official
``mm_infer`` call. This module turns a case into this package's inputs, runs it, and measures every stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from pixelrefer.inference.resolve import resolve_regions
from pixelrefer.media import Media
from pixelrefer.model.loading import load_checkpoint
from pixelrefer.model.modeling import region_grids
from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS
from pixelrefer.regions import Region

CASE_NAMES = ("pixelrefer_image", "pixelrefer_video", "pixelreferlite_image", "pixelreferlite_video")
DEFAULT_KMEANS_SEED = 1234  # torch.manual_seed before each official mm_infer call; k-means is the only RNG consumer

_TINY_VIDEO = [f"video_frame_{t}.png" for t in range(4)]
# official-tiny predates the "call" record in expected/*.json; these are the calls of its README section 4
_TINY_CALLS: dict[str, dict[str, Any]] = {
    "pixelrefer_image": dict(checkpoint="pixelrefer-tiny", modal="image", frames=["image.png"], masks=["small", "large"],
                             mask_ids=[0, 0], question="<image>\nThere are two regions in the image: <region>, <region>. Which is larger?"),
    "pixelrefer_video": dict(checkpoint="pixelrefer-tiny", modal="video", frames=_TINY_VIDEO, timestamps=[0.0, 1.0, 2.0, 3.0],
                             additional_frames=[0], masks=["disc0"], mask_ids=[0],
                             question="<video>\n" + BENCHMARK_PROMPTS["videorefer_d"]),
    "pixelreferlite_image": dict(checkpoint="pixelreferlite-tiny", modal="image", frames=["image.png"], masks=["small", "large"],
                                 mask_ids=[0, 0], question="There are two regions in the image: <region>, <region>. Which is larger?"),
    "pixelreferlite_video": dict(checkpoint="pixelreferlite-tiny", modal="video", frames=_TINY_VIDEO, timestamps=[0.0, 1.0, 2.0, 3.0],
                                 additional_frames=[0, 1, 2, 3], masks=["disc0", "disc1", "disc2", "disc3"], mask_ids=[0, 1, 2, 3],
                                 mask_ids_raw=[[0, 1, 2, 3]],
                                 question=BENCHMARK_PROMPTS["videorefer_d_lite"]),
}


@dataclass
class Case:
    fixture: str
    name: str
    root: Path
    call: dict[str, Any]  # the official mm_infer arguments, as recorded
    meta: dict[str, Any]  # expected/<case>.json
    expected: dict[str, np.ndarray]  # expected/<case>.npz

    @property
    def lite(self) -> bool:
        return self.call["checkpoint"].startswith("pixelreferlite")

    @property
    def video(self) -> bool:
        return self.call["modal"] == "video"


def fixture_cases(data_dir: str | Path, fixtures: tuple[str, ...]) -> list[tuple[str, str]]:
    """(fixture folder, case name) for every case of the named fixture folders under ``data_dir``."""
    return [(str(Path(data_dir) / f), c) for f in fixtures for c in CASE_NAMES]


@cache
def load_case(fixture: str, name: str) -> Case:
    """Case ``name`` of the fixture folder ``fixture`` (a path)."""
    root = Path(fixture)
    meta = json.loads((root / "expected" / f"{name}.json").read_text())
    call = meta.get("call") or _TINY_CALLS[name]
    expected = dict(np.load(root / "expected" / f"{name}.npz"))
    return Case(fixture, name, root, call, meta, expected)


def read_rgb(path: Path) -> np.ndarray:
    """The official loader: OpenCV read, BGR -> RGB."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@cache
def _mask_rles(root: Path) -> dict[str, Any]:
    """Mask name -> COCO RLE; official-tiny nests its masks by modality, the varied fixtures store them flat."""
    rles = json.loads((root / "inputs/masks_rle.json").read_text())
    if "image" in rles and "masks" in rles.get("image", {}):
        flat = dict(rles["image"]["masks"])
        flat.update({f"disc{k}": v for k, v in rles["video"]["object_masks_per_frame"].items()})
        return flat
    return rles


def polygons(root: Path) -> dict[str, Any]:
    path = root / "inputs/polygons.json"
    return json.loads(path.read_text()) if path.exists() else {}


def recorded_mask(case: Case, name: str) -> np.ndarray:
    return mask_utils.decode(_mask_rles(case.root)[name])


def media(case: Case) -> Media:
    frames = [read_rgb(case.root / "inputs" / f) for f in case.call["frames"]]
    return Media(frames=frames, timestamps=list(case.call["timestamps"]) if case.video else None)


def _prompt(case: Case, name: str, frame: int):
    """A region prompt as a user would give it: the polygon where the fixture drew one, else the recorded mask."""
    poly = polygons(case.root).get(name)
    if poly is not None:
        return {frame: ("polygon", poly)}
    return {frame: ("mask", recorded_mask(case, name))}


def regions(case: Case) -> list[Region]:
    """The official call's masks as this package's regions: one per ``<region>``, each on the frame it was drawn on.

    The official call indexes masks into ``additional_frames``; Lite video groups its masks per object with
    ``mask_ids_raw``."""
    call = case.call
    frame_of = [call.get("additional_frames", [0])[i] if case.video else 0 for i in call["mask_ids"]]
    names = call["masks"]
    groups = call.get("mask_ids_raw") if (case.lite and case.video) else [[k] for k in range(len(names))]
    out, k = [], 0
    for group in groups:
        prompts: dict[int, Any] = {}
        for _ in group:
            prompts.update(_prompt(case, names[k], frame_of[k]))
            k += 1
        out.append(_region(prompts))
    return out


def _region(prompts: dict[int, tuple[str, Any]]) -> Region:
    if len(prompts) == 1:
        (frame, (kind, value)), = prompts.items()
        if kind == "polygon":
            return Region.from_polygon(value["polygon_xy"], size=(value["height"], value["width"]), frame=frame)
        return Region.from_mask(value, frame=frame)
    if any(kind == "polygon" for kind, _ in prompts.values()):
        raise NotImplementedError("multi-frame polygon regions are not used by the fixtures")
    return Region.from_frames({f: v for f, (_, v) in prompts.items()})


@cache
def load_model(fixture: str, checkpoint: str):
    """(model, tokenizer) of a fixture checkpoint, loaded once per process and shared: treat both as read-only."""
    return load_checkpoint(Path(fixture) / checkpoint, torch.device("cpu"), torch.float32)


@dataclass
class Run:
    case: Case
    model: Any
    tokenizer: Any
    sample: Any
    inputs: Any


def encode(case: Case) -> Run:
    model, tokenizer = load_model(case.fixture, case.call["checkpoint"])
    processor = PixelReferProcessor(tokenizer, model.config)
    clip = media(case)
    sample = processor.encode(clip, resolve_regions(clip, regions(case), model.config),
                              [{"role": "user", "content": case.call["question"]}],
                              official_local_view_cache=True, official_crop_budget=True)
    return Run(case, model, tokenizer, sample, processor.collate([sample]))


def expected_ids(case: Case) -> np.ndarray:
    """Token ids the LLM sees: after the official video compressor drops image tokens (PixelRefer video)."""
    e = case.expected
    return e["input_ids_after_compression"] if "input_ids_after_compression" in e else e["input_ids"]


def kmeans_generator(case: Case) -> torch.Generator:
    """The generator that draws the official k-means permutations (torch CPU ``randperm`` after the recorded seed)."""
    return torch.Generator().manual_seed(case.call.get("seed", DEFAULT_KMEANS_SEED))


def max_abs(a: Any, b: Any) -> float:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double()
    b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).double()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def lite_view_ids(case: Case) -> tuple[list[int], list[int]]:
    """(image id of each region, image ids whose global/local views are stored)."""
    ids = case.meta.get("lite_view_image_ids", case.call["mask_ids"])
    stored = case.meta.get("lite_view_stored_image_ids", list(dict.fromkeys(ids))[:1])
    return ids, stored


@dataclass
class Stages:
    """This package's output at each stage the official fixtures record."""

    features: dict[str, Any]  # vision features by input kind (media, crops, Lite views)
    pooled: list[torch.Tensor]  # per region: masked tokens or k-means centroids, before the MLP
    object_tokens: torch.Tensor  # after the MLP: the rows written at the <REGION> positions
    inputs_embeds: torch.Tensor
    logits: torch.Tensor


def forward(run: Run) -> Stages:
    """Every recorded stage for one case, each k-means drawn from the case's recorded seed as the official run did."""
    model, v = run.model, run.inputs.visual
    with torch.no_grad():
        feats = model.encode_vision(v)
        positions, masks = region_grids(v)
        pooled = model.object_tokenizer(feats["crop"], positions, masks, generator=kmeans_generator(run.case))
        tokens = model.object_features(v, feats, kmeans_generator(run.case))
        embeds = model.embed(run.inputs.input_ids, v, kmeans_generator(run.case))
        logits = model(inputs_embeds=embeds, attention_mask=run.inputs.attention_mask).logits[0]
    return Stages(feats, pooled, tokens, embeds[0], logits)


def logits_to_compare(case: Case, logits: torch.Tensor) -> torch.Tensor:
    """The rows of ``logits`` the fixture recorded (some fixtures keep only a few positions)."""
    if "logits_positions" in case.expected:
        return logits[torch.from_numpy(case.expected["logits_positions"])]
    return logits
