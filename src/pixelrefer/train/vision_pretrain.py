"""Region-label pretraining of the vision tower on the synthetic world.

The released PixelRefer models start from a SigLIP encoder that contrastive pretraining on billions of
image-text pairs has already taught what things look like; the LLM-side training of the paper never has to
teach the encoder shapes. A small model trained from scratch has no such encoder, and learning shapes through
the next-token loss alone, a few category answers per batch, is far too slow for a CPU budget. This module is
our stand-in for that pretraining: the vision tower (and the object tokenizer's box position embedding) learn
to name every region of freshly rendered synthetic scenes, supervised directly.

Per region the features are exactly those the object tokenizer sees at inference: the Scale-Adaptive crop
(:func:`pixelrefer.processing.crops.plan_crop` with the model's crop rules), one vision call over the batch,
the box position embedding, the cells inside the mask; their mean goes through a linear head over the labels of
the world (categories and ``object:part`` labels). Scenes are rendered on the fly in DataLoader workers, so
every step sees new images. Objects are painted in random colours at least
:data:`pixelrefer.synth.scenes.OFF_PALETTE_DISTANCE` away from every named colour of the world
(``off_palette_colours``): like a real-world encoder the tower sees every shape in many colours, so it learns
shapes apart from colours, yet it never sees any named colour on any shape, so the held-out split's (category,
colour) combinations stay unseen. With ``off_palette_colours=False`` it sees the instruction data's palette minus
the held-out combinations, and its features then tie shape to colour (see docs/training.md for what that costs).
Validation uses scenes of another seed stream.

The output folder holds ``vision.safetensors`` (the ``vision_model.*`` and ``object_tokenizer.pos_proj.*``
tensors under their model names; written last and atomically), ``head.safetensors`` (the label head, labels in
its metadata), ``metrics.jsonl`` and the resolved section as ``vision_pretrain.yaml``; runs sharing the folder
take turns (:func:`folder_lock`), so it is trained once. :func:`load_vision_weights` puts the weights into a
freshly built model. The run is short (minutes), so it has no
resume: an interrupted run starts again.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from pixelrefer.config import DOWNSCALE_THRESHOLD
from pixelrefer.model.checkpoint import load_strict
from pixelrefer.model.convert import CheckpointError
from pixelrefer.model.modeling import PixelReferForConditionalGeneration, region_grids
from pixelrefer.processing.crops import CropSpec, RegionCrop, plan_crop
from pixelrefer.processing.processor import EncodedSample, collate_visual
from pixelrefer.train.config import VisionPretrainSection
from pixelrefer.train.loop import JsonlLogger, seed_everything
from pixelrefer.types import VisualInputs

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "vision.safetensors"
LOCK_FILE = ".lock"
HEAD_FILE = "head.safetensors"  # the linear head over the labels (for diagnostics; the model does not use it)
CONFIG_FILE = "vision_pretrain.yaml"
METRICS_FILE = "metrics.jsonl"
PREFIXES = ("vision_model.", "object_tokenizer.pos_proj.")
TRAIN_STREAM, VAL_STREAM, HELDOUT_STREAM = 0, 1, 2  # seed-stream tags of the rendered scenes


def crop_spec(model: PixelReferForConditionalGeneration) -> CropSpec:
    """PixelRefer's crop rules (full variant, its shrink threshold) with the model's geometry and budgets: the same
    tower is shared by both variants, so a Lite model pretrains exactly the tower a full one would."""
    spec = CropSpec.from_config(model.config)
    threshold = DOWNSCALE_THRESHOLD["full"] if model.config.is_lite else spec.downscale_threshold_patches
    return replace(spec, variant="full", downscale_threshold_patches=threshold)


class SyntheticRegions(IterableDataset):
    """An endless stream of (crop, label index, object size) over every object and named part of rendered scenes.

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

    def regions(self, scene_index: int) -> list[tuple[RegionCrop, int, str]]:
        from pixelrefer.synth import world
        from pixelrefer.synth.scenes import render_scene

        rng = np.random.default_rng([self.seed, self.stream, scene_index])
        scene = render_scene(rng, (self.image_size, self.image_size), held_out=self.held_out, palette=self.palette)
        out = []
        for obj in scene.objects:
            if self.held_out == "require" and not obj.spec.held_out:
                continue
            label = self.index[world.part_label(obj.category, None)]
            out.append((plan_crop(scene.image, obj.mask, self.spec), label, obj.size))
            for part in obj.parts:
                if part.area >= self.min_part_pixels:
                    out.append((plan_crop(scene.image, part.mask, self.spec), self.index[part.label], obj.size))
        return out

    def __iter__(self) -> Iterator[tuple[RegionCrop, int, str]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for scene_index in itertools.count(worker, workers):
            yield from self.regions(scene_index)


def collate_regions(items: list[tuple[RegionCrop, int, str]]) -> tuple[VisualInputs, torch.Tensor, list[str]]:
    visual = collate_visual([EncodedSample(input_ids=[], labels=None, crops=[item[0] for item in items])])
    assert visual is not None
    return visual, torch.tensor([item[1] for item in items], dtype=torch.long), [item[2] for item in items]


class RegionClassifier(nn.Module):
    """The model's vision tower and box position embedding, plus a linear head on each region's mean feature."""

    def __init__(self, model: PixelReferForConditionalGeneration, num_labels: int) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.pos_proj = model.object_tokenizer.pos_proj
        self._model = [model]  # not a submodule: only the two modules above train
        self.head = nn.Linear(model.config.vision_config.hidden_size, num_labels)

    def forward(self, visual: VisualInputs) -> torch.Tensor:
        model = self._model[0]
        positions, masks = region_grids(visual)
        tokens = model.object_tokenizer.masked_tokens(model.encode_vision(visual)["crop"], positions, masks)
        return self.head(torch.stack([t.mean(0) for t in tokens]))


def _lr_factor(step: int, cfg: VisionPretrainSection) -> float:
    # pixelrefer.train.optim.warmup_cosine with a warmup of (step + 1) / warmup_steps instead of / (warmup_steps + 1):
    # the bundled tower was trained with this schedule, and switching would change its reproduced losses.
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _loader(dataset: SyntheticRegions, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_regions, num_workers=workers,
                      persistent_workers=workers > 0)


def eval_batches(dataset: SyntheticRegions, batch_size: int, regions: int) -> list[tuple[VisualInputs, torch.Tensor, list[str]]]:
    """The first ``regions`` regions of a stream (rounded up to whole batches), collated once."""
    return list(itertools.islice(_loader(dataset, batch_size, 0), math.ceil(regions / batch_size)))


@torch.no_grad()
def accuracy(classifier: RegionClassifier, batches: list[tuple[VisualInputs, torch.Tensor, list[str]]],
             device: torch.device) -> dict[str, float]:
    """Accuracy overall (``all``) and per object size."""
    classifier.eval()
    hits: dict[str, list[bool]] = {}
    for visual, labels, sizes in batches:
        right = (classifier(visual.to(device)).argmax(1).cpu() == labels).tolist()
        for size, ok in zip(sizes, right):
            hits.setdefault("all", []).append(ok)
            hits.setdefault(size, []).append(ok)
    classifier.train()
    return {k: sum(v) / len(v) for k, v in hits.items()}


def pretrain_vision(model: PixelReferForConditionalGeneration, cfg: VisionPretrainSection, out_dir: str | Path,
                    device: torch.device, progress: bool = True) -> RegionClassifier:
    """Train ``model``'s vision tower and box position embedding in place; write them to ``out_dir``.

    Logged evaluations: ``val`` (regions of the training distribution, unseen scenes) and ``heldout`` (objects
    of the held-out (category, colour) combinations in their named colours, which training never shows), each
    overall and per object size. Returns the classifier (tower + head)."""
    from pixelrefer.synth import world
    from pixelrefer.synth.scenes import MIN_PART_PIXELS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = world.category_labels()
    seed_everything(cfg.seed)
    spec = crop_spec(model)
    settings = {**asdict(cfg), "crop_spec": asdict(spec)}
    (out / CONFIG_FILE).write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    classifier = RegionClassifier(model, len(labels)).to(device)
    params = list(classifier.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg))
    palette = not cfg.off_palette_colours
    stream = SyntheticRegions(spec, labels, cfg.seed, TRAIN_STREAM, cfg.image_size, MIN_PART_PIXELS, palette)
    evals = {
        "val": eval_batches(SyntheticRegions(spec, labels, cfg.seed, VAL_STREAM, cfg.image_size, MIN_PART_PIXELS,
                                             palette), cfg.batch_size, cfg.val_regions),
        "heldout": eval_batches(SyntheticRegions(spec, labels, cfg.seed, HELDOUT_STREAM, cfg.image_size,
                                                 MIN_PART_PIXELS, palette=True, held_out="require"),
                                cfg.batch_size, cfg.val_regions),
    }
    metrics = JsonlLogger(out / METRICS_FILE, fresh=True)
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="vision pretraining", disable=not progress)
    for step, (visual, target, _) in enumerate(_loader(stream, cfg.batch_size, cfg.workers)):
        if step == cfg.steps:
            break
        loss = nn.functional.cross_entropy(classifier(visual.to(device)), target.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        bar.update(1)
        done = step + 1
        if done % cfg.log_every == 0:
            metrics.log({"type": "train", "step": done, "regions": done * cfg.batch_size,
                         "elapsed_s": round(time.perf_counter() - start, 2), "loss": loss.item(),
                         "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if done % cfg.eval_every == 0 or done == cfg.steps:
            acc = {name: accuracy(classifier, batches, device) for name, batches in evals.items()}
            metrics.log({"type": "eval", "step": done, "val_accuracy": acc["val"]["all"],
                         "heldout_accuracy": acc["heldout"]["all"], "per_size": acc,
                         "elapsed_s": round(time.perf_counter() - start, 2)})
            logger.info("vision pretraining step %d: loss %.3f, accuracy: validation %.3f, held-out combinations %.3f",
                        done, loss.item(), acc["val"]["all"], acc["heldout"]["all"])
    bar.close()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(PREFIXES)}
    head = {k: v.detach().cpu().contiguous() for k, v in classifier.head.state_dict().items()}
    _save_atomic(head, out / HEAD_FILE, {"labels": json.dumps(list(labels))})
    path = out / WEIGHTS_FILE
    _save_atomic(state, path)  # written last: its presence means the folder is complete
    logger.info("vision pretraining: %d steps in %.0f s -> %s", cfg.steps, time.perf_counter() - start, path)
    return classifier


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``FOLDER/.lock`` (POSIX ``flock``: released even if the process dies), so that
    runs sharing one pretraining folder train it once; a run that has to wait says so."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent runs would each pretrain
        yield
        return
    with open(folder / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another run is pretraining into %s; waiting for it", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_vision_weights(model: PixelReferForConditionalGeneration, directory: str | Path) -> None:
    """Load a :func:`pretrain_vision` output into ``model`` (every pretrained tensor must fit)."""
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_FILE
    state = {k.replace("object_tokenizer.", "", 1): v for k, v in load_file(str(path)).items()}
    sub = nn.ModuleDict({"vision_model": model.vision_model, "pos_proj": model.object_tokenizer.pos_proj})
    try:
        load_strict(sub, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
