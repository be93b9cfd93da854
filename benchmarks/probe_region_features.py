"""How fast can the vision tower learn what a region *is*, supervised directly rather than through the LLM?

A diagnostic for the small from-scratch models: the vision tower and the object tokenizer's box position
embedding of a freshly initialised model (a train config's architecture) are trained, with a linear head on the
mean of each region's masked crop features, to predict one attribute of the referred object (its colour or its
category) on the single-region category samples of a synthetic split. Held-out accuracy is printed as it goes.
If an attribute is learned here in a few hundred steps but not by the full model, the bottleneck is the LLM
learning to read its object tokens; if it is slow here too, it is the vision tower.

    python benchmarks/probe_region_features.py --target colour --steps 200
    python benchmarks/probe_region_features.py --target category --steps 400 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pixelrefer.model.modeling import region_grids
from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.train.config import load_train_config
from pixelrefer.train.dataset import SupervisedDataset, TaskFocus
from pixelrefer.train.recipe import build_model, prepare_tokenizer


def target_of(sample: dict, target: str) -> str:
    meta = sample["meta"]
    obj = next(o for o in meta["objects"] if o["index"] == meta["targets"][0]["object"])
    return str(obj[target])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="nano", help="train config whose architecture and data are used")
    parser.add_argument("--target", choices=["colour", "category"], default="category")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_train_config(args.config)
    tokenizer = prepare_tokenizer(cfg)
    model = build_model(cfg, tokenizer)
    processor = PixelReferProcessor(tokenizer, model.config)
    root = Path(cfg.data.root)
    focus = TaskFocus(("category",), 0.0)
    train = SupervisedDataset(root / cfg.data.train_file, processor, root, False, None, focus)
    heldout = SupervisedDataset(root / "heldout.json", processor, root, False, None, focus)
    names = sorted({target_of(s, args.target) for s in train.samples})
    head = torch.nn.Linear(model.config.vision_config.hidden_size, len(names))
    params = [*model.vision_model.parameters(), *model.object_tokenizer.pos_proj.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))

    def logits(dataset: SupervisedDataset, idx: list[int]) -> torch.Tensor:
        visual = processor.collate([dataset[i] for i in idx]).visual
        positions, masks = region_grids(visual)
        tokens = model.object_tokenizer.masked_tokens(model.encode_vision(visual)["crop"], positions, masks)
        return head(torch.stack([t.mean(0) for t in tokens]))

    def labels(dataset: SupervisedDataset, idx: list[int]) -> torch.Tensor:
        return torch.tensor([names.index(target_of(dataset.samples[i], args.target)) for i in idx])

    def heldout_accuracy() -> float:
        with torch.no_grad():
            idx = [i for i, s in enumerate(heldout.samples) if target_of(s, args.target) in names]
            return float((logits(heldout, idx).argmax(1) == labels(heldout, idx)).float().mean())

    generator = torch.Generator().manual_seed(0)
    history, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(train), (args.batch_size,), generator=generator).tolist()
        loss = torch.nn.functional.cross_entropy(logits(train, idx), labels(train, idx))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % args.eval_every == 0 or step == args.steps:
            acc = heldout_accuracy()
            history.append({"step": step, "samples": step * args.batch_size, "loss": loss.item(), "heldout_acc": acc})
            print(f"step {step:5d}  samples {step * args.batch_size:6d}  loss {loss.item():.3f}  held-out acc {acc:.3f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"{args.target}: {len(names)} classes (chance {1 / len(names):.3f})")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "classes": names,
                                         "history": history}, indent=2))


if __name__ == "__main__":
    main()
