"""Print the max abs difference per stage between this package and the official code on official-tiny."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from parity.test_official_tiny import CASES, _run
from pixelrefer.model.loading import load_checkpoint

root = Path(__file__).resolve().parents[1] / "tests/data/official-tiny"
models = {d: load_checkpoint(root / d, torch.device("cpu"), torch.float32) for d in ("pixelrefer-tiny", "pixelreferlite-tiny")}
for case in CASES:
    model, tok, sample, inputs, exp = _run(models, root, case)
    with torch.no_grad():
        v = inputs.visual
        tokens = model.object_features(v, model.encode_vision(v), torch.Generator().manual_seed(1234))
        embeds = model.embed(inputs.input_ids, v, torch.Generator().manual_seed(1234))
        logits = model(inputs_embeds=embeds).logits[0]
    d = lambda a, b: float((a - torch.from_numpy(b)).abs().max())
    print(f"{case:22s} ids_equal={np.array_equal(sample.input_ids, exp['input_ids_after_compression' if case == 'pixelrefer_video' else 'input_ids'])} "
          f"object_tokens={d(tokens, exp['region_tokens_post_mlp']):.2e} inputs_embeds={d(embeds[0], exp['inputs_embeds']):.2e} "
          f"logits={d(logits, exp['logits']):.2e}")
