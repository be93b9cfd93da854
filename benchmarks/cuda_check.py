"""CUDA checks (run on a GPU machine): official-tiny parity on CUDA, and every API path in fp32 / bf16 / fp16."""

from pathlib import Path

import numpy as np
import torch

from pixelrefer import GenerationConfig, PixelRefer, Region
from pixelrefer.parity import encode, fixture_cases, kmeans_generator, load_case, logits_to_compare, max_abs

dev = torch.device("cuda")
data = Path(__file__).resolve().parents[1] / "tests/data"
for fixture, name in fixture_cases(data, tuple(sorted(p.name for p in data.glob("official-*")))):
    case = load_case(fixture, name)
    run = encode(case)
    model = run.model.to(dev)
    inputs = run.inputs.to(dev, torch.float32)
    with torch.no_grad():
        logits = model(**inputs.as_kwargs(), kmeans_generator=kmeans_generator(case)).logits[0].float().cpu()
    model.to("cpu")
    diff = max_abs(logits_to_compare(case, logits), case.expected["logits"])
    print(f"cuda fp32 {Path(fixture).name}/{name:22s} max|logits diff| = {diff:.2e}")

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
