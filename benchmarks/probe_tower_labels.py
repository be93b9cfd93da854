"""Where a vision tower fails, label by label, and how fast a small CNN learns the same labels.

``probe``: a linear readout (L-BFGS, standardised features) on a model's frozen tower, fitted on the mean masked
crop features of 4,096 regions of fresh synthetic scenes (off-palette colours, as the vision pretraining renders
them) and scored per label on 1,024 regions of unseen scenes; the same features the object tokenizer pools.

``cnn``: the yardstick. A 4-layer CNN (3x3 convolutions, stride 2, 32-64-96-128 channels; 0.2M parameters) learns
the same labels from the same region stream with the same optimiser settings as the recipe's pretraining (AdamW,
lr 2e-3, weight decay 0.01, batches of 64). ``--protocol tight`` feeds it the region's box plus 4 px, resized to
48x48 (no mask channel, so it must find the object itself) and pools globally; ``--protocol crop`` feeds it the
tower's own Scale-Adaptive crop (the 28 px margin, the zoom and the 100-patch budget) at 8 px per patch and pools
the cells inside the mask, exactly as the tower's readout does. Accuracy on 512 regions of unseen scenes, overall
and on the ten plain shapes, every ``--eval-every`` steps.

    python benchmarks/probe_tower_labels.py probe --model nano
    python benchmarks/probe_tower_labels.py cnn --protocol tight --steps 600
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from common import save_rows
from torch import nn

from pixelrefer.model.loading import load_checkpoint
from pixelrefer.presets import BUNDLED
from pixelrefer.recipes.regions import TRAIN_STREAM, VAL_STREAM, SyntheticRegions, collate_regions
from pixelrefer.recipes.vision import RegionClassifier, crop_spec
from pixelrefer.synth import world
from pixelrefer.synth.scenes import MIN_PART_PIXELS

LABELS = world.category_labels()
SHAPES = {LABELS.index(s) for s in world.SHAPES}
SCENE_SIZE = 224
TIGHT_SIDE, TIGHT_MARGIN = 48, 4
CELL_PX = 8  # pixels per crop patch in the CNN's "crop" protocol


def region_stream(model, stream: int) -> SyntheticRegions:
    return SyntheticRegions(crop_spec(model), LABELS, 0, stream, SCENE_SIZE, MIN_PART_PIXELS)


def probe(args: argparse.Namespace) -> dict:
    model, _ = load_checkpoint(BUNDLED.get(args.model, args.model), torch.device("cpu"), torch.float32)
    classifier = RegionClassifier(model, len(LABELS)).eval()

    def features(stream: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for items, _ in region_stream(model, stream).batches(64):
            visual, target, *_ = collate_regions(items)
            with torch.no_grad():
                xs.append(torch.stack([t.mean(0) for t in classifier.region_tokens(visual)]))
            ys.append(target)
            if sum(len(y) for y in ys) >= n:
                return torch.cat(xs), torch.cat(ys)
        raise AssertionError("the region stream is endless")

    x_train, y_train = features(TRAIN_STREAM, args.train_regions)
    x_val, y_val = features(VAL_STREAM, args.val_regions)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-5
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    weight = torch.zeros(x_train.shape[1], len(LABELS), requires_grad=True)
    bias = torch.zeros(len(LABELS), requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=300)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x_train @ weight + bias, y_train) + 1e-3 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (x_val @ weight + bias).argmax(1)
    confusion: dict[str, Counter] = defaultdict(Counter)
    for p, t in zip(pred.tolist(), y_val.tolist()):
        confusion[LABELS[t]][LABELS[p]] += 1
    per_label = {}
    for label, counts in confusion.items():
        n = sum(counts.values())
        wrong = [(k, v) for k, v in counts.most_common() if k != label][:3]
        per_label[label] = {"n": n, "accuracy": counts[label] / n, "most_confused_with": wrong}
    plain = [p == t for p, t in zip(pred.tolist(), y_val.tolist()) if t in SHAPES]
    return {"model": args.model, "val_accuracy": float((pred == y_val).float().mean()),
            "plain_shapes": sum(plain) / len(plain), "per_label": per_label}


def tight_input(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    r0, c0 = max(0, rows.min() - TIGHT_MARGIN), max(0, cols.min() - TIGHT_MARGIN)
    r1, c1 = min(mask.shape[0], rows.max() + 1 + TIGHT_MARGIN), min(mask.shape[1], cols.max() + 1 + TIGHT_MARGIN)
    crop = cv2.resize(image[r0:r1, c0:c1], (TIGHT_SIDE, TIGHT_SIDE), interpolation=cv2.INTER_LINEAR)
    return (crop.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)


class TightRegions:
    """(48x48 image around the region's box, label) over every object and part of the scenes of one stream."""

    def __init__(self, stream: int) -> None:
        self.stream = stream

    def __iter__(self):
        from pixelrefer.synth.scenes import render_scene

        scene_index = 0
        while True:
            rng = np.random.default_rng([0, self.stream, scene_index])
            scene = render_scene(rng, (SCENE_SIZE, SCENE_SIZE), held_out="exclude", palette=False)
            for obj in scene.objects:
                yield tight_input(scene.image, obj.mask), LABELS.index(obj.category)
                for part in obj.parts:
                    if part.area >= MIN_PART_PIXELS:
                        yield tight_input(scene.image, part.mask), LABELS.index(part.label)
            scene_index += 1


def conv_stack(strides: tuple[int, ...], channels: tuple[int, ...]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c_in, c_out, stride in zip((3, *channels[:-1]), channels, strides):
        layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GELU()]
    return layers


class TightCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*conv_stack((2, 2, 2, 2), (32, 64, 96, 128)), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(128, len(LABELS)))

    def forward(self, batch: list) -> torch.Tensor:
        return self.net(torch.from_numpy(np.stack([x for x, _ in batch])))


class CropCNN(nn.Module):
    """Cells at the crop's patch grid (8 px per patch, strides 1-2-2-2), mean over the mask cells, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*conv_stack((1, 2, 2, 2, 1), (32, 64, 96, 128, 128)), nn.Conv2d(128, 128, 3, 1, 1))
        self.head = nn.Linear(128, len(LABELS))

    def forward(self, batch: list) -> torch.Tensor:
        crops = [crop for crop, *_ in batch]
        height, width = max(c.grid[1] for c in crops), max(c.grid[2] for c in crops)
        images = torch.zeros(len(crops), 3, height * CELL_PX, width * CELL_PX)
        for k, crop in enumerate(crops):
            _, gh, gw = crop.grid
            pixels = torch.from_numpy(crop.patches).reshape(gh, gw, 3, 14, 14).permute(2, 0, 3, 1, 4)
            images[k, :, : gh * CELL_PX, : gw * CELL_PX] = F.interpolate(
                pixels.reshape(1, 3, gh * 14, gw * 14), size=(gh * CELL_PX, gw * CELL_PX), mode="area")[0]
        cells = self.net(images)
        pooled = []
        for k, crop in enumerate(crops):
            feat = cells[k, :, : crop.grid[1], : crop.grid[2]]
            mask = torch.from_numpy(crop.mask_grid) > 0
            if feat.shape[1:] != mask.shape:
                feat = F.interpolate(feat[None], size=tuple(mask.shape), mode="bilinear", align_corners=False)[0]
            pooled.append(feat.permute(1, 2, 0)[mask].mean(0))
        return self.head(torch.stack(pooled))


def cnn(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    if args.protocol == "tight":
        net: nn.Module = TightCNN()
        train_items, val_items = iter(TightRegions(TRAIN_STREAM)), iter(TightRegions(VAL_STREAM))
    else:
        model, _ = load_checkpoint(BUNDLED["nano"], torch.device("cpu"), torch.float32)
        net = CropCNN()
        train_items, val_items = iter(region_stream(model, TRAIN_STREAM)), iter(region_stream(model, VAL_STREAM))
    val = [next(val_items) for _ in range(args.val_regions)]
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=0.01)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))))
    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = [next(train_items) for _ in range(64)]
        loss = F.cross_entropy(net(batch), torch.tensor([item[1] for item in batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            net.eval()
            with torch.no_grad():
                pred = torch.cat([net(val[k:k + 64]).argmax(1) for k in range(0, len(val), 64)]).tolist()
            net.train()
            target = [item[1] for item in val]
            plain = [p == t for p, t in zip(pred, target) if t in SHAPES]
            curve.append({"step": step, "loss": round(loss.item(), 3),
                          "val": sum(p == t for p, t in zip(pred, target)) / len(target),
                          "plain_shapes": sum(plain) / len(plain), "seconds": round(time.perf_counter() - start)})
            print(json.dumps(curve[-1]), flush=True)
    return {"protocol": args.protocol, "parameters": sum(p.numel() for p in net.parameters()), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--model", default="nano", help="a bundled name or a checkpoint folder")
    p.add_argument("--train-regions", type=int, default=4096)
    p.add_argument("--val-regions", type=int, default=1024)
    c = sub.add_parser("cnn")
    c.add_argument("--protocol", choices=("tight", "crop"), default="tight")
    c.add_argument("--steps", type=int, default=600)
    c.add_argument("--eval-every", type=int, default=200)
    c.add_argument("--val-regions", type=int, default=512)
    for s in (p, c):
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    row = probe(args) if args.command == "probe" else cnn(args)
    if args.command == "probe":
        print(f"val {100 * row['val_accuracy']:.1f} %, plain shapes {100 * row['plain_shapes']:.1f} %")
        print("| label | n | accuracy | most often taken for |\n|---|---|---|---|")
        for label in LABELS:
            if label in row["per_label"]:
                r = row["per_label"][label]
                wrong = ", ".join(f"{k} ({v})" for k, v in r["most_confused_with"])
                print(f"| {label} | {r['n']} | {100 * r['accuracy']:.0f} % | {wrong} |")
    save_rows(args.json, args, [row])


if __name__ == "__main__":
    main()
