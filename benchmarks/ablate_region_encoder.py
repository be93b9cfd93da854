"""Scale-adaptive object tokenizer vs plain mask pooling, per object size, at the level of region features.

For each region encoder (``PixelReferConfig.region_encoder``) a fresh nano vision tower is pretrained with the
nano recipe's vision pretraining (same steps, same seed, same rendered scenes) and its label head is measured on
unseen scenes (``val``, off-palette colours) and on the held-out (category, colour) combinations in their named
colours, overall and per object size. ``scale_adaptive`` encodes a zoomed crop around each region;
``mask_pooling`` encodes the whole frame at the same patch budget and pools its features inside the mask.

    python benchmarks/ablate_region_encoder.py --steps 600 --out runs/ablate-encoder \\
        --json benchmarks/results/ablation_region_encoder.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.recipes.vision import pretrain_vision
from pixelrefer.train.loop import METRICS_FILE
from pixelrefer.train.run import build_model, load_tokenizer

ENCODERS = ("scale_adaptive", "mask_pooling")
SIZES = ("tiny", "small", "medium", "large")


def run(encoder: str, steps: int, out: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    cfg = load_recipe_config("nano", ["model.vision_init=null", f"model.overrides.region_encoder={encoder}",
                                     f"vision_pretrain.steps={steps}", f"vision_pretrain.eval_every={steps}",
                                     "progress=false"])
    assert cfg.vision_pretrain is not None
    model = build_model(cfg, load_tokenizer(cfg))
    start = time.perf_counter()
    pretrain_vision(model, cfg.vision_pretrain, out / encoder, torch.device("cpu"), progress=False)
    elapsed = time.perf_counter() - start
    records = [json.loads(line) for line in (out / encoder / METRICS_FILE).read_text().splitlines()]
    final = [r for r in records if r["type"] == "eval"][-1]
    return {"encoder": encoder, "steps": steps, "seconds": round(elapsed, 1), **final["per_size"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/ablate-encoder"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [run(e, args.steps, args.out, args.threads) for e in args.encoders]
    print(f"| encoder | split | all | {' | '.join(SIZES)} |")
    print(f"|---|---|---|{'---|' * len(SIZES)}")
    for row in rows:
        for split in ("val", "heldout"):
            acc = row[split]
            cells = " | ".join(f"{100 * acc[s]:.1f}" if s in acc else "-" for s in SIZES)
            print(f"| {row['encoder']} | {split} | {100 * acc['all']:.1f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
