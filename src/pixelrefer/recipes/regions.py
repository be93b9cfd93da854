"""The vision pretraining's data: every object and named part of freshly rendered synthetic scenes as a
(Scale-Adaptive crop, label, object size, facts) region, an endless seeded stream of them, and
:class:`RegionStream`, its batches as a resumable :class:`~pixelrefer.train.objective.BatchStream` for the
trainer loop.

A region's *facts* are what a world-agnostic encoder should keep besides the label, measured on the rendered
pixels rather than named: the mean RGB inside the mask, the box (both as fractions in [0, 1]) and the pattern
index (:data:`NO_PATTERN` for parts). None of them names a colour, so training on them shows no held-out
(category, colour) combination."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pixelrefer.processing.crops import CropSpec, RegionCrop, plan_crop
from pixelrefer.processing.processor import EncodedSample, collate_visual
from pixelrefer.train.objective import BatchStream
from pixelrefer.types import VisualInputs

TRAIN_STREAM, VAL_STREAM, HELDOUT_STREAM = 0, 1, 2  # seed-stream tags of the rendered scenes

FACTS = ("red", "green", "blue", "x0", "y0", "x1", "y1")  # continuous facts of a region, each in [0, 1]
NO_PATTERN = -1  # the pattern index of a part (its object's pattern is not the part's)

Region = tuple[RegionCrop, int, str, np.ndarray]  # crop, label index, object size, facts (FACTS + pattern index)
Batch = tuple[VisualInputs, torch.Tensor, list[str], torch.Tensor]  # ..., facts (N, len(FACTS) + 1)


def region_facts(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], pattern: int) -> np.ndarray:
    """Mean RGB inside ``mask`` and ``box`` (x0, y0, x1, y1), as fractions of 255 and of the image's sides, then
    the pattern index."""
    h, w = mask.shape
    rgb = image[mask].mean(0) / 255.0
    x0, y0, x1, y1 = box
    return np.array([*rgb, x0 / w, y0 / h, x1 / w, y1 / h, pattern], dtype=np.float32)


class SyntheticRegions(IterableDataset):
    """An endless stream of (crop, label index, object size, facts) over every object and named part of rendered scenes.

    Scene ``i`` is drawn from ``numpy.random.default_rng([seed, stream, i])``; worker ``w`` of ``n`` renders scenes
    ``w, w + n, ...``, so the stream is fixed by the seed and the worker count. ``held_out="require"`` keeps only
    the objects of held-out (category, colour) combinations (for measuring, with ``palette=True``).
    """

    def __init__(self, spec: CropSpec, labels: tuple[str, ...], seed: int, stream: int, image_size: int,
                 min_part_pixels: int, palette: bool = False, held_out: str = "exclude") -> None:
        self.spec = spec
        self.index = {label: i for i, label in enumerate(labels)}
        self.seed, self.stream, self.image_size, self.min_part_pixels = seed, stream, image_size, min_part_pixels
        self.palette, self.held_out = palette, held_out

    def regions(self, scene_index: int) -> list[Region]:
        from pixelrefer.synth import world
        from pixelrefer.synth.scenes import render_scene

        rng = np.random.default_rng([self.seed, self.stream, scene_index])
        scene = render_scene(rng, (self.image_size, self.image_size), held_out=self.held_out, palette=self.palette)
        out = []
        for obj in scene.objects:
            if self.held_out == "require" and not obj.spec.held_out:
                continue
            label = self.index[world.part_label(obj.category, None)]
            facts = region_facts(scene.image, obj.mask, obj.box, world.PATTERNS.index(obj.pattern))
            out.append((plan_crop(scene.image, obj.mask, self.spec), label, obj.size, facts))
            for part in obj.parts:
                if part.area >= self.min_part_pixels:
                    facts = region_facts(scene.image, part.mask, part.box, NO_PATTERN)
                    out.append((plan_crop(scene.image, part.mask, self.spec), self.index[part.label], obj.size,
                                facts))
        return out

    def __iter__(self) -> Iterator[Region]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for scene_index in itertools.count(worker, workers):
            yield from self.regions(scene_index)

    def batches(self, batch_size: int, scene: int = 0, offset: int = 0, every: int = 1
                ) -> Iterator[tuple[list[Region], tuple[int, int]]]:
        """Consecutive ``batch_size`` regions of scenes ``scene, scene + every, ...`` (from region ``offset`` of the
        first), each with the (scene, region) where the next batch starts."""
        items: list[Region] = []
        while True:
            regions = self.regions(scene)
            for k in range(offset, len(regions)):
                items.append(regions[k])
                if len(items) == batch_size:
                    yield items, ((scene, k + 1) if k + 1 < len(regions) else (scene + every, 0))
                    items = []
            scene, offset = scene + every, 0


def collate_regions(items: list[Region]) -> Batch:
    visual = collate_visual([EncodedSample(input_ids=[], labels=None, crops=[item[0] for item in items])])
    assert visual is not None
    labels = torch.tensor([item[1] for item in items], dtype=torch.long)
    return visual, labels, [item[2] for item in items], torch.from_numpy(np.stack([item[3] for item in items]))


class _WorkerBatches(IterableDataset):
    """DataLoader worker ``w`` of ``n`` renders the batches of stream role ``(w + turn) % n`` from its saved
    start, so the loader's round-robin over workers continues the stream where it stopped."""

    def __init__(self, regions: SyntheticRegions, batch_size: int, position: dict[str, Any]) -> None:
        self.regions, self.batch_size, self.position = regions, batch_size, position

    def __iter__(self) -> Iterator[tuple[Batch, int, tuple[int, int]]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        roles = len(self.position["next"])
        role = (worker + self.position["turn"]) % roles
        scene, offset = self.position["next"][role]
        for items, after in self.regions.batches(self.batch_size, scene, offset, roles):
            yield collate_regions(items), role, after


def _as_is(item: Any) -> Any:
    return item


class RegionStream(BatchStream):
    """Batches of ``batch_size`` consecutive regions of a :class:`SyntheticRegions` stream, rendered by ``workers``
    DataLoader workers (worker ``w`` batches scenes ``w, w + n, ...``; the loader takes one batch from each in
    turn), exactly as a ``DataLoader(regions, batch_size, num_workers=workers)``. The position is each
    worker's next (scene, region) and whose turn it is."""

    def __init__(self, regions: SyntheticRegions, batch_size: int, workers: int) -> None:
        self.regions, self.batch_size, self.workers = regions, batch_size, workers

    def start(self) -> dict[str, Any]:
        roles = max(1, self.workers)
        return {"turn": 0, "next": [[role, 0] for role in range(roles)]}

    def batches(self, position: dict[str, Any] | None) -> Iterator[tuple[Batch, int, dict[str, Any]]]:
        position = copy.deepcopy(position) if position is not None else self.start()
        if len(position["next"]) != max(1, self.workers):
            raise ValueError(f"the saved stream position is for {len(position['next'])} worker(s), this run has "
                             f"{self.workers}; resume with the same vision_pretrain.workers")
        loader = DataLoader(_WorkerBatches(self.regions, self.batch_size, position), batch_size=None,
                            collate_fn=_as_is, num_workers=self.workers)
        for batch, role, after in loader:
            position["next"][role] = list(after)
            position["turn"] = (role + 1) % len(position["next"])
            yield batch, len(batch[1]), copy.deepcopy(position)


def eval_batches(dataset: SyntheticRegions, batch_size: int, regions: int) -> list[Batch]:
    """The first ``regions`` regions of a stream (rounded up to whole batches), collated once."""
    first = itertools.islice(dataset.batches(batch_size), math.ceil(regions / batch_size))
    return [collate_regions(items) for items, _ in first]
