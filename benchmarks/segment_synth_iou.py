"""IoU of the classical segmenter on the synthetic world of the bundled models, by prompt kind and object size.

For every image sample of a split written by ``pixelrefer synth`` (one region each), the ground-truth mask is
turned into a box prompt (its bounding box), a click (the point deepest inside the mask) and a scribble (a
stroke through the mask's widest row); each prompt is segmented by the weight-free fallback and compared with
the exact mask. For videos, freshly rendered clips of the same generator carry each object's first-frame mask
through the clip (flow/template tracking + GrabCut), scored against the exact mask on every later frame.

    python benchmarks/segment_synth_iou.py --data runs/synth-nano/test.json --limit 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pixelrefer.media import load_image
from pixelrefer.regions import Region
from pixelrefer.synth.scenes import mask_box
from pixelrefer.synth.videos import render_video
from pixelrefer.train.data import parse_sample, read_samples, sample_ref

BRUSH_PX = 2  # half-width of the scribble brush; the stroke is drawn where the brush stays inside the object


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def size_bucket(area: int, image_area: int) -> str:
    share = area / image_area
    return "tiny (<0.5%)" if share < 0.005 else "small (<2%)" if share < 0.02 else "medium (<8%)" if share < 0.08 else "large"


def longest_run(mask: np.ndarray) -> tuple[int, int, int]:
    """(row, start, stop) of the longest horizontal run of mask pixels: a stroke that stays inside the object."""
    best = (0, 0, 0)
    for row in np.flatnonzero(mask.any(axis=1)):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask[row].astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2]):
            if stop - start > best[2] - best[1]:
                best = (int(row), int(start), int(stop))
    return best


def prompts(mask: np.ndarray) -> dict[str, Region]:
    depth = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * BRUSH_PX + 1,) * 2, np.uint8)).astype(bool)
    row, start, stop = longest_run(inner if inner.any() else mask)
    stroke = [[int(c), row] for c in np.linspace(start, stop - 1, 5).round().astype(int)]
    return {"box": Region.from_box(list(mask_box(mask))), "click": Region.from_points([[int(x), int(y)]]),
            "scribble": Region.from_scribble(stroke, width=2 * BRUSH_PX)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a split JSON written by pixelrefer synth")
    parser.add_argument("--limit", type=int, default=200, help="image samples of the split")
    parser.add_argument("--videos", type=int, default=20, help="videos rendered by the generator (exact masks on every frame)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    count = 0
    for index, raw in enumerate(read_samples(args.data)):
        parsed = parse_sample(raw, sample_ref(raw, args.data, index), args.data.parent)
        if parsed.is_video or len(parsed.regions) != 1 or count >= args.limit:
            continue
        count += 1
        image = load_image(parsed.image)
        truth = next(iter(parsed.regions[0].values()))
        bucket = size_bucket(int(truth.sum()), truth.size)
        for name, region in prompts(truth).items():
            start = time.perf_counter()
            found = region.resolve(*truth.shape, frames=image).masks[0]
            seconds[name].append(time.perf_counter() - start)
            scores[(name, bucket)].append(iou(found, truth))
    for seed in range(args.videos):
        video = render_video(np.random.default_rng(10_000 + seed))
        for track in video.tracks:
            first = track.first_frame
            start = time.perf_counter()
            resolved = Region.from_mask(track.masks[first], frame=first).resolve(
                video.height, video.width, len(video.frames), frames=video.frames, propagate=True)
            seconds["video propagation"].append(time.perf_counter() - start)
            for t in track.present:
                if t == first or track.masks[t] is None or not track.masks[t].any():
                    continue
                found = resolved.masks.get(t, np.zeros_like(track.masks[t]))
                scores[(f"video, {track.motion}", "all")].append(iou(found, track.masks[t]))
    rows = []
    for (name, bucket), values in sorted(scores.items()):
        rows.append({"prompt": name, "size": bucket, "n": len(values), "mean_iou": statistics.fmean(values),
                     "worst_iou": min(values)})
    print(f"{'prompt':<18}{'object size':<16}{'n':>5}{'mean IoU':>10}{'worst':>8}")
    for r in rows:
        print(f"{r['prompt']:<18}{r['size']:<16}{r['n']:>5}{r['mean_iou']:>10.3f}{r['worst_iou']:>8.3f}")
    for name, values in seconds.items():
        print(f"{name}: {1000 * statistics.fmean(values):.1f} ms per region (mean of {len(values)})")
    if args.json:
        args.json.write_text(json.dumps({"data": str(args.data), "rows": rows,
                                         "ms": {k: 1000 * statistics.fmean(v) for k, v in seconds.items()}}, indent=2))


if __name__ == "__main__":
    main()
