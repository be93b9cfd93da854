"""Write a synthetic dataset to disk in the official training-data JSON format.

Layout of `out_dir`::

    dataset_info.json            seed, arguments, world vocabulary, per-split counts
    train.json val.json test.json heldout.json
    images/<split>/<scene>.png
    videos/<split>/<scene>/<frame>.png

Every scene is rendered from its own generator seeded by ``(seed, split, scene index)``, so a build is
byte-identical for the same arguments, whatever the number of worker processes.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from pixelrefer.constants import IMAGE_TOKEN, VIDEO_TAG
from pixelrefer.errors import ConfigError
from pixelrefer.synth import world
from pixelrefer.synth.config import SynthConfig
from pixelrefer.synth.scenes import Scene, render_scene
from pixelrefer.synth.tasks import (
    IMAGE_FOLLOW_UP_TASKS,
    MCQ_TASK,
    OFF_PALETTE_TASKS,
    VIDEO_FOLLOW_UP_TASKS,
    Instruction,
    image_instruction,
    rephrase,
    video_instruction,
    with_share,
)
from pixelrefer.synth.videos import Video, render_video

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test", "heldout")
FORMAT_VERSION = 1
MAX_RENDER_ATTEMPTS = 20
PNG_COMPRESS_LEVEL = 3  # zlib level: 3 is ~3x faster than 6 for ~15% more bytes
UNSEEN_PHRASING_SPLITS = ("test", "heldout")  # with paraphrases, the splits that also ask held-out wordings
PHRASING_STREAM = 0  # tag of the wording generator's seed, apart from the instruction's (its answers stay the same)
OFF_PALETTE_STREAM = 0  # tag of the generator that picks off-palette scenes (off_palette_categories)
FOLLOW_UP_STREAM = 1  # tag of the follow-up turns' generators (follow_ups), apart from the first turn's


def encode_rle(mask: np.ndarray) -> dict[str, object]:
    """COCO RLE with a compressed `counts` string, as in the official data."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def off_palette_scene(cfg: SynthConfig, split: str, scene_idx: int, is_video: bool) -> bool:
    """Whether this train-split image scene is painted off-palette (``cfg.off_palette_categories``); drawn from its
    own generator, so the other scenes are the same as without the option."""
    if split != "train" or is_video or not cfg.off_palette_categories:
        return False
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), scene_idx, OFF_PALETTE_STREAM])
    return bool(rng.random() < cfg.off_palette_categories)


def _render(cfg: SynthConfig, split: str, scene_idx: int) -> tuple[Scene | Video, list[int], bool]:
    """Render a scene or video, the indices allowed as primary targets (held-out objects if heldout) and whether
    it is painted off-palette."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), scene_idx])
    is_video = bool(rng.random() < cfg.video_fraction)
    off_palette = off_palette_scene(cfg, split, scene_idx, is_video)
    mode = "require" if split == "heldout" else "exclude"
    for _ in range(MAX_RENDER_ATTEMPTS):
        media: Scene | Video
        if is_video:
            media = render_video(rng, cfg.image_size, cfg.num_frames, cfg.video_objects, mode, cfg.fps)
            items = [(t.index, t.spec.held_out) for t in media.tracks]
        else:
            media = render_scene(rng, cfg.image_size, cfg.n_objects, mode, variety=cfg.variety, palette=not off_palette)
            items = [(o.index, o.spec.held_out) for o in media.objects]
        primary = [i for i, held in items if held] if mode == "require" else [i for i, _ in items]
        if primary:
            return media, primary, off_palette
    raise RuntimeError(f"could not render a usable scene for {split}/{scene_idx}")


def _image_sample(scene: Scene, rel: str, sid: str, turns: list[Instruction], split: str) -> dict[str, object]:
    masks = []
    for t in (t for ins in turns for t in ins.targets):
        obj = scene.objects[t.obj]
        mask = obj.mask if t.part is None else next(p.mask for p in obj.parts if p.name == t.part)
        masks.append(encode_rle(mask))
    return _sample(sid, {"image": rel}, IMAGE_TOKEN, turns, masks, scene.height, scene.width, split, "image")


def _video_sample(video: Video, frames: list[str], sid: str, turns: list[Instruction], split: str,
                  video_masks: str) -> dict[str, object]:
    masks = []
    for t in (t for ins in turns for t in ins.targets):
        track = video.tracks[t.obj]
        keep = track.present[:1] if video_masks == "first" else track.present
        masks.append({str(f): encode_rle(track.masks[f]) for f in keep})  # type: ignore[arg-type]
    # The official loader reads the frames that carry masks from `masked_video`, ordered by first use.
    mask_frames = list(dict.fromkeys(int(k) for m in masks for k in m))
    media = {"video": frames, "timestamps": video.timestamps, "masked_video": [frames[f] for f in mask_frames]}
    return _sample(sid, media, VIDEO_TAG, turns, masks, video.height, video.width, split, "video")


def _sample(sid: str, media: dict[str, object], tag: str, turns: list[Instruction], masks: list[dict[str, object]],
            height: int, width: int, split: str, kind: str) -> dict[str, object]:
    """One sample: the media tag opens the first question; ``meta`` describes the first turn (the one evaluation
    asks), with the follow-up turns' tasks and answers under ``follow_ups``."""
    first = turns[0]
    meta = {"task": first.task, "split": split, "media": kind, "answer": first.answer,
            "targets": [{"object": t.obj, "part": t.part} for t in first.targets]} | first.meta
    if len(turns) > 1:
        meta["follow_ups"] = [{"task": ins.task, "answer": ins.answer, "phrasing": ins.meta.get("phrasing")}
                              for ins in turns[1:]]
    conversations = []
    for i, ins in enumerate(turns):
        human = f"{tag}\n{ins.question}" if i == 0 else ins.question
        conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": ins.answer}]
    return {"id": sid, **media, "conversations": conversations, "masks": masks, "height": height, "width": width,
            "meta": meta}


def _worded(cfg: SynthConfig, split: str, scene_idx: int, j: int, ins: Instruction) -> Instruction:
    """The instruction in a wording drawn from its own generator (``cfg.paraphrases``), else as generated."""
    if not cfg.paraphrases:
        return ins
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), scene_idx, 1 + j, PHRASING_STREAM])
    return rephrase(ins, rng, unseen=split in UNSEEN_PHRASING_SPLITS, phrasing_set=cfg.phrasing_set)


def _follow_ups(cfg: SynthConfig, split: str, scene_idx: int, j: int, media: Scene | Video, primary: list[int],
                off_palette: bool) -> list[Instruction]:
    """The ``cfg.follow_ups`` extra turns of a train-split sample, each from its own generator (none elsewhere)."""
    if split != "train":
        return []
    turns = []
    image_tasks = with_share(IMAGE_FOLLOW_UP_TASKS, MCQ_TASK, cfg.follow_up_mcq)
    video_tasks = with_share(VIDEO_FOLLOW_UP_TASKS, MCQ_TASK, cfg.follow_up_mcq)
    for t in range(cfg.follow_ups):
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split), scene_idx, 1 + j, FOLLOW_UP_STREAM, t])
        if isinstance(media, Video):
            ins = video_instruction(media, rng, primary, weights=video_tasks)
        else:
            ins = image_instruction(media, rng, primary, weights=OFF_PALETTE_TASKS if off_palette else image_tasks)
        turns.append(rephrase(ins, rng, unseen=False, phrasing_set=cfg.phrasing_set) if cfg.paraphrases else ins)
    return turns


def build_scene(args: tuple[SynthConfig, str, int, str]) -> list[dict[str, object]]:
    """Render one scene, write its media under `out_dir` and return its samples (worker entry point)."""
    cfg, split, scene_idx, out_dir = args
    root = Path(out_dir)
    media, primary, off_palette = _render(cfg, split, scene_idx)
    start = scene_idx * cfg.samples_per_scene
    count = min(cfg.samples_per_scene, cfg.count(split) - start)
    samples = []
    if isinstance(media, Video):
        frames = [f"videos/{split}/{scene_idx:06d}/{t:02d}.png" for t in range(len(media.frames))]
        for rel, frame in zip(frames, media.frames):
            _save_png(frame, root / rel)
    else:
        rel = f"images/{split}/{scene_idx:06d}.png"
        _save_png(media.image, root / rel)
    for j in range(count):
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split), scene_idx, 1 + j])
        sid = f"{split}-{scene_idx:06d}-{j}"
        follow_ups = _follow_ups(cfg, split, scene_idx, j, media, primary, off_palette)
        if isinstance(media, Video):
            ins = _worded(cfg, split, scene_idx, j, video_instruction(media, rng, primary))
            samples.append(_video_sample(media, frames, sid, [ins, *follow_ups], split, cfg.video_masks))
        else:
            weights = OFF_PALETTE_TASKS if off_palette else None
            ins = _worded(cfg, split, scene_idx, j, image_instruction(media, rng, primary, weights=weights))
            if off_palette:
                ins.meta["off_palette"] = True
            samples.append(_image_sample(media, rel, sid, [ins, *follow_ups], split))
    return samples


def write_json_list(samples: list[dict[str, object]], path: Path) -> None:
    """A JSON list with one sample per line: valid JSON, diff-friendly, byte-stable."""
    body = ",\n".join(json.dumps(s, ensure_ascii=False, sort_keys=False) for s in samples)
    path.write_text(f"[\n{body}\n]\n" if samples else "[]\n", encoding="utf-8")


def _jobs(cfg: SynthConfig, split: str, out_dir: Path) -> Iterator[tuple[SynthConfig, str, int, str]]:
    for s in range(math.ceil(cfg.count(split) / cfg.samples_per_scene)):
        yield (cfg, split, s, str(out_dir))


def _world_info() -> dict[str, object]:
    return {"categories": list(world.category_labels()), "colours": list(world.COLOURS),
            "sizes": list(world.SIZE_ORDER), "patterns": list(world.PATTERNS),
            "held_out": [list(c) for c in sorted(world.HELD_OUT)]}


def build_dataset(out_dir: str | Path, config: SynthConfig | None = None, *, workers: int = 1,
                  progress: bool = True, **fields: object) -> dict[str, object]:
    """Build all splits under ``out_dir`` per ``config`` (default :class:`SynthConfig`; keyword ``fields``
    override its values, e.g. ``n_train=100``) and return the content of ``dataset_info.json``."""
    cfg = replace(config or SynthConfig(), **fields)  # type: ignore[arg-type]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(math.ceil(cfg.count(s) / cfg.samples_per_scene) for s in SPLITS)
    splits_info: dict[str, object] = {}
    with tqdm(total=total, desc="synth scenes", disable=not progress, unit="scene") as bar:
        for split in SPLITS:
            samples = _build_split(cfg, split, out, workers, bar)
            write_json_list(samples, out / f"{split}.json")
            splits_info[split] = _split_summary(samples)
            logger.info("wrote %d %s samples to %s", len(samples), split, out / f"{split}.json")
    info = {"name": "pixelrefer-synth", "format_version": FORMAT_VERSION, "seed": cfg.seed,
            "arguments": asdict(cfg), "splits": splits_info, "world": _world_info()}
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _build_split(cfg: SynthConfig, split: str, out: Path, workers: int, bar: tqdm) -> list[dict[str, object]]:
    samples: list[dict[str, object]] = []
    jobs = _jobs(cfg, split, out)
    if workers <= 1:
        for job in jobs:
            samples.extend(build_scene(job))
            bar.update(1)
        return samples
    # fork skips re-importing the package (torch) in every worker; workers only use numpy, PIL and zlib.
    method = "fork" if sys.platform == "linux" else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for part in pool.imap(build_scene, jobs, chunksize=8):
            samples.extend(part)
            bar.update(1)
    return samples


def _split_summary(samples: list[dict[str, object]]) -> dict[str, object]:
    metas = [s["meta"] for s in samples]
    tasks = Counter(f"{m['media']}/{m['task']}" for m in metas)  # type: ignore[index]
    summary: dict[str, object] = {"samples": len(samples), "tasks": dict(sorted(tasks.items()))}
    follow = Counter(f"{m['media']}/{f['task']}" for m in metas for f in m.get("follow_ups", ()))  # type: ignore[index, union-attr]
    if follow:
        summary["follow_up_tasks"] = dict(sorted(follow.items()))
    return summary
