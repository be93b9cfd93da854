"""Training step time with and without the frozen-tower cache (``data.cache_vision``), side by side in one run.

Builds the recipe's trainer twice on the same data (``runs/synth-nano`` and ``runs/vision-nano`` must be on disk:
run ``pixelrefer train --config nano`` once first), then times ``--steps`` micro-batches of the same samples
three ways: from pixels (read, crop, encode with the tower, LLM forward and backward: every epoch today without
the cache), the cache's first epoch (the same, plus keeping the tower's output) and a later epoch (from the
cache). Each batch's loss is compared between the pixel and the cached pass. Prints seconds per step and the
ratio; ``--json`` saves them.

    python benchmarks/bench_vision_cache.py --model nano --steps 20
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.train.run import build_trainer


def timed_steps(trainer, batches: list[list[int]]) -> tuple[float, list[float]]:
    """Mean seconds per micro-batch (collate + forward + backward) and the losses, with a fixed k-means seed."""
    model, data, collate = trainer.module, trainer.train_set, trainer.collator
    model.train()
    losses, start = [], time.perf_counter()
    for indices in batches:
        batch = collate([data[i] for i in indices])
        loss = model(**batch.as_kwargs(), kmeans_generator=torch.Generator().manual_seed(0)).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return (time.perf_counter() - start) / len(batches), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nano", help="recipe config (nano, nano-lite)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the recipe trains on 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        def trainer(*overrides: str):
            cfg = load_recipe_config(args.model, [f"output_dir={scratch}", "progress=false", "data.validate=false",
                                                  f"num_threads={args.threads}", *overrides])
            return build_trainer(cfg)[0], cfg.batch_size

        plain, batch_size = trainer()
        cached, _ = trainer("data.cache_vision=true")
        picked = random.Random(0).sample(range(len(plain.train_set)), (args.steps + 1) * batch_size)
        batches = [picked[i:i + batch_size] for i in range(0, len(picked), batch_size)]
        warm, batches, picked = batches[0], batches[1:], picked[batch_size:]
        timed_steps(plain, [warm])  # first-call costs out of the timings; its samples are not timed
        timed_steps(cached, [warm])
        pixels_s, pixel_losses = timed_steps(plain, batches)
        warm_bytes = cached.train_set.cached_bytes
        first_s, first_losses = timed_steps(cached, batches)
        per_sample = (cached.train_set.cached_bytes - warm_bytes) / len(picked)
        later_s, later_losses = timed_steps(cached, batches)
    differ = max(abs(a - b) for a, b in zip(pixel_losses + pixel_losses, first_losses + later_losses))
    row = {"model": args.model, "steps": args.steps, "batch_size": batch_size, "threads": args.threads,
           "pixels_s_per_step": round(pixels_s, 4), "cache_first_epoch_s_per_step": round(first_s, 4),
           "cache_later_epoch_s_per_step": round(later_s, 4), "speedup_later_epoch": round(pixels_s / later_s, 2),
           "max_loss_difference": differ, "cached_mb_per_sample": round(per_sample / 2**20, 4)}
    print(f"{args.model}: pixels {pixels_s:.3f} s/step | cache, first epoch {first_s:.3f} | cache, later epochs "
          f"{later_s:.3f} -> {pixels_s / later_s:.2f}x; largest loss difference {differ:.2e}; "
          f"{row['cached_mb_per_sample'] * 1024:.0f} KB cached per sample")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
