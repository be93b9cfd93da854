"""Where a cold ``pixelrefer ask`` on the bundled nano model spends its time: fresh processes, side by side.

Each round starts one fresh interpreter per stage, in turn (so every stage sees the same load): bare Python, the
cumulative import sets that make up the floor (torch; the torch and third-party modules that transformers'
``modeling_utils`` imports unconditionally; transformers' model stack that our model is built on; everything the
ask path imports), one in-process ask timed by phase (imports, ``from_pretrained``, the ask itself), and the real
CLI command on the README's sample scene. Medians over the rounds.

``--base-python`` also times the ask path's imports and the CLI with the interpreter of an install of the base
dependencies only (the README's ``pip install "torch==2.13.0" -e .``: no scipy, accelerate, deepspeed, peft, which
transformers imports whenever they are installed, as the ``train``/``photos``/``eval`` extras do).

    python benchmarks/bench_coldstart.py                # 5 rounds, about 5 minutes on 2 idle CPU cores
    python benchmarks/bench_coldstart.py --rounds 7 --base-python .venv-min/bin/python

Writes benchmarks/results/NAME.json and .png (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOX = "313,224,441,342"  # the README's first command: the sample scene's mushroom
QUESTION = "What is the category of <region>? Using only one word or phrase."
TRANSFORMERS_STACK = ("transformers.modeling_utils, transformers.generation.utils, "
                      "transformers.models.qwen2.modeling_qwen2, transformers.models.video_llama_3.modeling_video_llama_3")
# name -> the code a fresh interpreter runs; each import set contains the previous one
IMPORT_STAGES = {
    "python": "pass",
    "torch": "import torch",
    "+ torch._dynamo": "import torch, torch._dynamo",
    "+ torch.distributed.tensor": "import torch, torch._dynamo, torch.distributed.tensor",
    "+ scipy.optimize, accelerate": "import torch, torch._dynamo, torch.distributed.tensor, scipy.optimize, accelerate",
    "transformers model stack": f"import {TRANSFORMERS_STACK}",
    "ask path imports": "import pixelrefer.cli.ask, pixelrefer.inference.api",
}
PHASES = """
import json, sys, time
t0 = time.perf_counter()
import pixelrefer.cli.ask, pixelrefer.inference.api
from pixelrefer import PixelRefer, Region
from pixelrefer.processing.prompts import compose_question
t1 = time.perf_counter()
model = PixelRefer.from_pretrained("nano")
t2 = time.perf_counter()
text = model.ask(sys.argv[1], [Region.from_box([float(v) for v in sys.argv[2].split(",")])],
                 compose_question(sys.argv[3], 1)).text
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "from_pretrained": t2 - t1, "ask": t3 - t2, "text": text}))
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="coldstart_cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--base-python", type=Path, default=None,
                        help="python of a venv with only the base dependencies installed (see above)")
    args = parser.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pixelrefer", "synth", "--sample", "--out", tmp], check=True,
                       capture_output=True, env=env)
        image = str(Path(tmp) / "scene.png")
        cli = [sys.executable, "-m", "pixelrefer", "ask", image, "--box", BOX, QUESTION]
        base = [] if args.base_python is None else ["ask path imports (base install)", "pixelrefer ask (CLI, base install)"]
        walls: dict[str, list[float]] = {name: [] for name in [*IMPORT_STAGES, "in-process ask", "pixelrefer ask (CLI)",
                                                               *base]}
        phases: list[dict] = []
        answers = set()
        for round_index in range(args.rounds):
            for name, code in IMPORT_STAGES.items():
                walls[name].append(run([sys.executable, "-c", code], env)[0])
            wall, out = run([sys.executable, "-c", PHASES, image, BOX, QUESTION], env)
            walls["in-process ask"].append(wall)
            phases.append(json.loads(out))
            wall, out = run(cli, env)
            walls["pixelrefer ask (CLI)"].append(wall)
            answers |= {out.strip(), phases[-1].pop("text")}
            if base:
                walls[base[0]].append(run([str(args.base_python), "-c", IMPORT_STAGES["ask path imports"]], env)[0])
                wall_base, out = run([str(args.base_python), *cli[1:]], env)
                walls[base[1]].append(wall_base)
                answers.add(out.strip())
            print(f"round {round_index + 1}/{args.rounds}: CLI {wall:.2f} s, load {os.getloadavg()[0]:.2f}", flush=True)

    medians = {name: statistics.median(values) for name, values in walls.items()}
    phase_medians = {key: statistics.median(p[key] for p in phases) for key in phases[0]}
    for name, value in medians.items():
        print(f"{name:32s} {value:6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in walls[name])})")
    print("in-process phases (median s):", {k: round(v, 3) for k, v in phase_medians.items()})
    result = {
        "command": " ".join(["python", "-m", "pixelrefer", "ask", "sample/scene.png", "--box", BOX, repr(QUESTION)]),
        "rounds": args.rounds, "omp_num_threads": 1, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "load_average_end": os.getloadavg(), "answers": sorted(answers), "base_python": bool(base),
        "median_s": medians, "runs_s": walls, "in_process_phases_median_s": phase_medians,
        "cli_over_torch": medians["pixelrefer ask (CLI)"] / medians["torch"],
        "transformers_stack_share_of_cli": medians["transformers model stack"] / medians["pixelrefer ask (CLI)"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(medians)[::-1]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, [medians[n] for n in names],
            color=["C2" if "base install" in n else "C1" if "ask" in n else "C0" for n in names])
    for y, n in enumerate(names):
        ax.text(medians[n], y, f" {medians[n]:.2f} s", va="center")
    ax.set_xlabel(f"median wall time of a fresh process, s ({args.rounds} rounds, OMP_NUM_THREADS=1)")
    ax.set_title("cold start of `pixelrefer ask` (nano): cumulative import sets, then the command")
    fig.tight_layout()
    fig.savefig(args.out / f"{args.name}.png", dpi=120)


if __name__ == "__main__":
    main()
