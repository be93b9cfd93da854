"""The official code's CPU anchor (docs/official-cpu-profile.md), re-measured on this implementation.

Same setting: PixelRefer-2B shapes with random weights, fp32, 2 threads, a 640x480 image, elliptical masks of mixed
sizes, greedy decoding of 16 tokens (end-of-sequence suppressed so all 16 are generated). Prints our numbers beside
the official ones recorded in that document. Region encoding is bound by the vision tower, whose work grows with
the crop patches; our masks are not the official run's, so both patch counts and the time per patch are printed.

    python benchmarks/bench_cpu_anchor.py [--regions-only]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import psutil
import torch
from common import region_encoding, scene

from pixelrefer import GenerationConfig, PixelRefer, Region

OFFICIAL = {  # seconds, medians of docs/official-cpu-profile.md
    "region encoding, 1 region": 1.50,
    "region encoding, 8 regions": 37.95,
    "region encoding, 32 regions": 54.24,
    "time to first token, 1 image + 1 region": 78.9,
    "16 new tokens, 1 image + 1 region": 89.7,
}


OFFICIAL_PATCHES = {1: 130, 8: 3107, 32: 6326}  # crop patches of the official run's masks; ours differ


def crop_patches(pr: PixelRefer, img, masks) -> int:
    """Crop patches the processor makes for these masks (the vision tower's work grows with them)."""
    prompt = [{"role": "user", "content": "<region> " * len(masks)}]
    encoded = pr.processor.encode(img, [Region.from_mask(m) for m in masks], prompt, add_generation_prompt=True)
    return int(pr.processor.collate([encoded]).visual.crop_grid.prod(dim=1).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regions-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    pr = PixelRefer.from_pretrained("2b", device="cpu", dtype="float32", segmenter=None)
    print(f"built 2B-shape model in {time.perf_counter() - t0:.1f} s, RSS {psutil.Process().memory_info().rss / 2**30:.2f} GiB", flush=True)
    img, masks = scene(32)
    ours: dict[str, float] = {}
    patches = {n: crop_patches(pr, img, masks[:n]) for n in (1, 8, 32)}
    region_encoding(pr, img, masks[:1], True)  # warm-up
    for n, reps in ((1, 3), (8, 1), (32, 1)):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            region_encoding(pr, img, masks[:n], True)
            times.append(time.perf_counter() - t)
        ours[f"region encoding, {n} region{'s' if n > 1 else ''}"] = statistics.median(times)
        seconds = ours[list(ours)[-1]]
        print(f"region encoding, {n:2d} regions: {seconds:.2f} s for {patches[n]} crop patches "
              f"({1000 * seconds / patches[n]:.1f} ms per patch; official {OFFICIAL_PATCHES[n]} patches, "
              f"{1000 * OFFICIAL[list(ours)[-1]] / OFFICIAL_PATCHES[n]:.1f} ms per patch)", flush=True)
    if not args.regions_only:
        region = [Region.from_mask(masks[0])]
        for label, n in (("time to first token, 1 image + 1 region", 1), ("16 new tokens, 1 image + 1 region", 16)):
            t = time.perf_counter()
            answer = pr.ask(img, region, "Please describe <region> briefly.",
                            GenerationConfig(max_new_tokens=n, min_new_tokens=n))
            assert len(answer.token_ids) == n, len(answer.token_ids)
            ours[label] = time.perf_counter() - t
            print(f"{label}: {ours[label]:.1f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"\npeak RSS {peak:.2f} GiB, at the end {psutil.Process().memory_info().rss / 2**30:.2f} GiB "
          f"(official: 11.2 GB peak end to end)")
    print(f"{'case':45s} {'official s':>10s} {'ours s':>8s} {'speed-up':>8s}")
    for k, v in ours.items():
        print(f"{k:45s} {OFFICIAL[k]:10.2f} {v:8.2f} {OFFICIAL[k] / v:7.2f}x")


if __name__ == "__main__":
    main()
