"""Cut a training split of ``pixelrefer synth`` to N shuffled samples of one turn each, for ``pixelrefer eval synthetic``.

Training samples built with ``data.synth.follow_ups`` have several turns and the masks of all of them, in the
order their ``<region>`` placeholders appear; the benchmark asks the first turn (its answer is ``meta.answer``).
This keeps the first turn and its masks, so that a model can be scored on questions it was trained on:

    python benchmarks/synth_first_turns.py runs/synth-nano-f3/train.json --out runs/synth-nano-f3/train-sample400.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def first_turns(samples: list[dict], n: int, seed: int) -> list[dict]:
    picked = list(samples)
    random.Random(seed).shuffle(picked)
    out = []
    for s in picked[:n]:
        k = s["conversations"][0]["value"].count("<region>")
        out.append({**s, "conversations": s["conversations"][:2], "masks": s["masks"][:k]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a train.json written by pixelrefer synth")
    parser.add_argument("--out", type=Path, required=True, help="written beside the media (same folder as data)")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    samples = first_turns(json.loads(args.data.read_text()), args.n, args.seed)
    args.out.write_text(json.dumps(samples))
    print(f"{len(samples)} samples -> {args.out}")


if __name__ == "__main__":
    main()
