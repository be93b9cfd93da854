"""CUDA checks (run on a GPU machine): official-tiny parity on CUDA, and every API path in fp32 / bf16 / fp16."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from parity.test_official_tiny import CASES, _run
from pixelrefer import GenerationConfig, PixelRefer, Region
from pixelrefer.model.loading import load_checkpoint

dev = torch.device("cuda")
root = Path(__file__).resolve().parents[1] / "tests/data/official-tiny"
models = {d: load_checkpoint(root / d, dev, torch.float32) for d in ("pixelrefer-tiny", "pixelreferlite-tiny")}
for case in CASES:
    model, tok, sample, inputs, exp = _run(models, root, case)
    inputs = inputs.to(dev, torch.float32)
    with torch.no_grad():
        logits = model(**inputs.as_kwargs(), kmeans_generator=torch.Generator().manual_seed(1234)).logits[0].float().cpu()
    print(f"cuda fp32 {case:22s} max|logits diff| = {float((logits - torch.from_numpy(exp['logits'])).abs().max()):.2e}")

rng = np.random.default_rng(0)
img = (rng.random((224, 280, 3)) * 255).astype(np.uint8)
m = np.zeros((224, 280), bool)
m[40:120, 60:170] = True
for preset in ("tiny", "tiny-lite"):
    for dtype in ("float32", "bfloat16", "float16"):
        pr = PixelRefer.from_pretrained(preset, device="cuda", dtype=dtype, segmenter=None)
        g = GenerationConfig(max_new_tokens=4)
        a = pr.ask(img, [Region.from_mask(m)], "What is <region>?", g)
        e = pr.describe_each(img, [m, m], question="What is <region>?", generation=g)
        s = pr.chat(img, [m])
        s.ask("What is <region>?", generation=g)
        s.ask("And then?", generation=g)
        print(f"{preset:9s} {dtype:9s} ok: ask {len(a.token_ids)} tokens, describe_each {len(e)}, chat 2 turns, "
              f"param dtype {pr.model.dtype}")
