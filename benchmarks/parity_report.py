"""Max |diff| per stage between this package and the official code's recorded outputs, on every official fixture.

    python benchmarks/parity_report.py [--json OUT]

Fixtures: tests/data/official-* (each README says how the official code produced them). CPU, fp32.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pixelrefer.parity import (
    encode,
    expected_ids,
    fixture_cases,
    forward,
    kmeans_generator,
    load_case,
    logits_to_compare,
    max_abs,
)

DATA = Path(__file__).resolve().parents[1] / "tests/data"
FIXTURES = tuple(sorted(p.name for p in DATA.glob("official-*")))


def report(fixture: str, name: str) -> dict:
    case = load_case(fixture, name)
    run = encode(case)
    stages = forward(run)
    exp = case.expected
    out = run.model.generate(**run.inputs.as_kwargs(), kmeans_generator=kmeans_generator(case),
        max_new_tokens=len(exp["generated_ids"]), do_sample=False,
        pad_token_id=run.tokenizer.pad_token_id, eos_token_id=run.tokenizer.eos_token_id)
    return {
        "case": f"{Path(fixture).name}/{name}",
        "ids_equal": bool(np.array_equal(np.array(run.sample.input_ids), expected_ids(case))),
        "object_tokens": max_abs(stages.object_tokens, exp["region_tokens_post_mlp"]),
        "inputs_embeds": max_abs(stages.inputs_embeds, exp["inputs_embeds"]),
        "logits": max_abs(logits_to_compare(case, stages.logits), exp["logits"]),
        "greedy_equal": bool(np.array_equal(out[0, run.inputs.input_ids.shape[1]:].numpy(), exp["generated_ids"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [report(f, c) for f, c in fixture_cases(DATA, FIXTURES)]
    print(f"{'case':40s} ids   object_tokens inputs_embeds logits    greedy")
    for r in rows:
        print(f"{r['case']:40s} {'same' if r['ids_equal'] else 'DIFF'}  {r['object_tokens']:.2e}      "
              f"{r['inputs_embeds']:.2e}      {r['logits']:.2e}  {'same' if r['greedy_equal'] else 'DIFF'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
