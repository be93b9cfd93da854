"""Does the recipe reproduce the bundled model's logged losses? Reruns the first steps of a bundled model's
recipe (``pixelrefer train --config NAME``) into a scratch folder and compares every logged training loss with
the bundled ``train_metrics.jsonl`` (and the vision pretraining's with ``vision_pretrain_metrics.jsonl``).

The recipe's data and pretrained tower must be on disk where the recipe puts them (``runs/synth-nano``,
``runs/vision-nano``): run ``pixelrefer train --config NAME`` once first; this script never builds them.
The first steps are enough: the schedule, the data order and every random draw are fixed by the recipe's seeds,
so a difference shows at the first logged step that sees it.

    python benchmarks/check_reproduction.py --model nano --steps 50 --vision-steps 20
    # a run of the recipe with overrides, against its own logs instead of the bundled ones:
    python benchmarks/check_reproduction.py --model nano --override vision_pretrain.fact_loss=1 \
        --reference-train runs/nano/metrics.jsonl --reference-vision runs/vision-nano/metrics.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from pixelrefer.presets import BUNDLED
from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.recipes.vision import pretrain_vision
from pixelrefer.train.loop import METRICS_FILE
from pixelrefer.train.run import build_model, build_trainer, load_tokenizer, set_threads

RESULTS = Path(__file__).resolve().parent / "results"


def train_losses(path: Path, steps: int) -> dict[int, float]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in records if r["type"] == "train" and r["step"] <= steps}


def compare(ours: dict[int, float], reference: dict[int, float]) -> dict[str, object]:
    steps = sorted(set(ours) & set(reference))
    diffs = [abs(ours[s] - reference[s]) for s in steps]
    return {"steps": steps, "max_abs_diff": max(diffs) if diffs else None, "equal": bool(steps) and not any(diffs),
            "rows": [{"step": s, "rerun": ours[s], "reference": reference[s]} for s in steps]}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        return check(Path(scratch))


def check(scratch: Path) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="nano", choices=["nano", "nano-lite"])
    parser.add_argument("--steps", type=int, default=50, help="training steps to rerun")
    parser.add_argument("--vision-steps", type=int, default=20, help="vision pretraining steps to rerun (0: skip)")
    parser.add_argument("--override", action="append", default=[], help="a recipe override (key=value), repeatable")
    parser.add_argument("--reference-train", type=Path, default=None, help="default: the bundled train_metrics.jsonl")
    parser.add_argument("--reference-vision", type=Path, default=None,
                        help="default: the bundled vision_pretrain_metrics.jsonl")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = BUNDLED[args.model]
    cfg = load_recipe_config(args.model, [*args.override, f"output_dir={scratch / 'train'}", "progress=false"])
    reference_train = args.reference_train or folder / "train_metrics.jsonl"
    reference_vision = args.reference_vision or folder / "vision_pretrain_metrics.jsonl"
    missing = [p for p in (Path(cfg.data.root) / cfg.data.train_file, Path(cfg.model.vision_init)) if not p.exists()]
    if missing:
        print(f"missing {', '.join(map(str, missing))}: run `pixelrefer train --config {args.model}` first",
              file=sys.stderr)
        return 2
    set_threads(cfg)  # as the recipe does before any step
    result: dict[str, object] = {"model": args.model, "overrides": args.override,
                                 "reference": [str(reference_vision), str(reference_train)]}
    if args.vision_steps:
        model = build_model(replace(cfg, model=replace(cfg.model, vision_init=None)), load_tokenizer(cfg))
        pretrain_vision(model, cfg.vision_pretrain, scratch / "vision", torch.device("cpu"), progress=False,
                        stop_at=args.vision_steps)
        result["vision"] = compare(train_losses(scratch / "vision" / METRICS_FILE, args.vision_steps),
                                   train_losses(reference_vision, args.vision_steps))
    trainer, _ = build_trainer(cfg)
    trainer.fit(args.steps)
    result["train"] = compare(train_losses(scratch / "train" / METRICS_FILE, args.steps),
                              train_losses(reference_train, args.steps))
    for part in ("vision", "train"):
        if part in result:
            got = result[part]
            print(f"{part}: steps {got['steps']}, max |rerun - reference| = {got['max_abs_diff']}, "  # type: ignore[index]
                  f"equal: {got['equal']}")  # type: ignore[index]
    out = args.json or RESULTS / f"reproduce_{args.model}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"-> {out}")
    return 0 if all(result[p]["equal"] for p in ("vision", "train") if p in result) else 1  # type: ignore[index]


if __name__ == "__main__":
    sys.exit(main())
