"""Memory per device and step time of each training strategy for the paper's 2B and 7B recipes, with the
``pixelrefer train --dry-run`` estimate (``pixelrefer.train.plan.plan_run``) of the same config beside each
measurement.

Every row is a real run of the project's trainer (``pixelrefer.train.run.build_trainer``, then
``Trainer.train_step``) on the recipe config ``paper-pixelrefer-{2b,7b}-stage1`` (stage 1: vision tower frozen, LLM,
projector and region encoder trained, batch 2 per device) with a random model of the recipe's widths and a reduced
depth (``--llm-layers`` decoder layers, ``--vision-layers`` vision layers; the real vocabulary unless ``--vocab``
cuts it, e.g. to fit the 7B embedding and head in CPU memory). The dry-run estimate is planned on that same
reduced config, so the two are comparable; the full-depth estimate of the recipe is listed beside them.
Strategies: single, ddp, fsdp2, zero2, zero3 (DeepSpeed), each with gradient checkpointing off and on; the
distributed ones run ``--nproc`` processes under ``torchrun`` (gloo on CPU, NCCL on CUDA).

Measured per process, after the model and engine are built (so the full-model copy every process makes before
sharding is not counted as steady state):
  * CPU: the peak resident set (``VmHWM``, reset with ``/proc/self/clear_refs`` after the build) minus the resident
    set before the model was built; glibc is told to return large freed blocks to the system
    (``MALLOC_MMAP_THRESHOLD_``) so sharding's frees show;
  * CUDA: ``torch.cuda.max_memory_allocated`` (peak reset after the build).
The largest process's figure is reported. The estimate leaves out activations (see plan.py), so a ratio above 1
is expected, most of all with checkpointing off. Step time: the median of ``--steps`` optimizer steps after
``--warmup`` warm-up steps (all processes synchronised around each step).

    python benchmarks/bench_train_strategies.py                               # CPU, fp32, 2 processes
    python benchmarks/bench_train_strategies.py --recipes 2b --strategies single,fsdp2 --gc off
    # on a lent GPU (needs 2 devices for the 2-process rows; name the results file apart):
    python benchmarks/bench_train_strategies.py --device cuda --dtype bfloat16 --llm-layers 4 --vision-layers 4 \\
        --steps 5 --name bench_train_strategies_cuda

Writes benchmarks/results/NAME.json and NAME.png (default NAME bench_train_strategies_cpu; the plot needs
matplotlib) and prints a markdown table. DeepSpeed may compile C++ ops at first use (minutes; cached in
~/.cache/torch_extensions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import save_rows

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"2b": "paper-pixelrefer-2b-stage1", "7b": "paper-pixelrefer-7b-stage1"}
STRATEGIES = {"single": "single", "ddp": "ddp", "fsdp2": "fsdp2", "zero2": "deepspeed_zero2",
              "zero3": "deepspeed_zero3"}
DTYPES = {"float32": "fp32", "bfloat16": "bf16"}  # --dtype -> the config's precision
MMAP_THRESHOLD = str(1 << 20)  # bytes: larger blocks are mmapped, so freeing them lowers the resident set
IMAGE_SIZE, N_SAMPLES = 112, 8
WORKER_TIMEOUT_S = 1800
GIB = 2**30


# ---------------------------------------------------------------------------------------------- pure helpers
def reduced_overrides(preset: str, tokenizer: Any, llm_layers: int, vision_layers: int,
                      vocab: int | None = None) -> dict[str, Any]:
    """``model.overrides`` giving ``preset``'s widths at ``llm_layers`` / ``vision_layers`` depth (and ``vocab``
    tokens if given), with ``tokenizer``'s special-token ids as ``preset_config`` sets them."""
    from pixelrefer.presets import RANDOM_PRESETS

    if llm_layers < 1 or vision_layers < 1:
        raise ValueError(f"layers must be >= 1, got llm {llm_layers}, vision {vision_layers}")
    spec = RANDOM_PRESETS[preset]
    text = {**spec["text"], "num_hidden_layers": llm_layers, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None}
    text.setdefault("tie_word_embeddings", True)
    if vocab is not None:
        if vocab < len(tokenizer):
            raise ValueError(f"vocab {vocab} is smaller than the tokenizer's {len(tokenizer)} tokens")
        text["vocab_size"] = vocab
    text.setdefault("vocab_size", len(tokenizer))
    return {"text_config": text, "vision_config": {**spec["vision"], "num_hidden_layers": vision_layers}}


def ratio(measured: float | None, estimate: float | None) -> float | None:
    """measured / estimate (``None`` when either is missing or the estimate is 0)."""
    if measured is None or not estimate:
        return None
    return measured / estimate


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table: measurement, dry-run estimate at the same depth, their ratio, step time,
    the full-depth estimate; a failed row shows its error instead of numbers."""
    head = ("| recipe | strategy | procs | grad ckpt | peak GiB / process | dry-run GiB (same depth) | measured / "
            "dry-run | step s (median) | dry-run GiB (full depth) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        first = f"| {r['recipe']} | {r['strategy']} | {r['processes']} | {'on' if r['grad_ckpt'] else 'off'} |"
        if r.get("error"):
            lines.append(f"{first} failed: {r['error']} | {_cell(r.get('estimate_gib'), '.2f')} | - | - | "
                         f"{_cell(r.get('full_estimate_gib'), '.1f')} |")
            continue
        lines.append(f"{first} {_cell(r['peak_gib'], '.2f')} | {_cell(r['estimate_gib'], '.2f')} | "
                     f"{_cell(ratio(r['peak_gib'], r['estimate_gib']), '.2f')} | {_cell(r['step_s'], '.2f')} | "
                     f"{_cell(r['full_estimate_gib'], '.1f')} |")
    return "\n".join(lines)


def worst_process(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the per-process results: the largest peak, the slowest median step."""
    return {"peak_gib": max(r["peak_gib"] for r in results), "after_build_gib": max(r["after_build_gib"] for r in results),
            "step_s": max(r["step_s"] for r in results), "steps_s": [r["steps_s"] for r in results],
            "loss": results[0]["loss"]}


# ---------------------------------------------------------------------------------------------- setup
def write_data(root: Path, n: int = N_SAMPLES, size: int = IMAGE_SIZE) -> None:
    """``n`` random images, each with one elliptical mask and a one-word answer, in the official JSON format,
    and a small BPE tokenizer for them (the model's vocabulary is the preset's, not this tokenizer's)."""
    from PIL import Image

    from pixelrefer.synth.build import encode_rle
    from pixelrefer.synth.tokenizer import train_tokenizer

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    (root / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        cy, cx, r = (int(v) for v in rng.integers(size // 3, 2 * size // 3, 3) // (1, 1, 3))
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        rel = f"images/{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / rel)
        samples.append({"id": f"img-{i}", "image": rel, "height": size, "width": size, "masks": [encode_rle(mask)],
                        "conversations": [{"from": "human", "value": "<image>\nWhat is <region>? One word."},
                                          {"from": "gpt", "value": ("circle", "disc", "blob")[i % 3]}]})
    (root / "train.json").write_text(json.dumps(samples))
    texts = [t["value"] for s in samples for t in s["conversations"]]
    train_tokenizer(texts * 8, root / "tokenizer", vocab_size=320)


def row_config(recipe: str, strategy: str, grad_ckpt: bool, args: argparse.Namespace, data: Path, out: Path):
    """The recipe's train config, changed only where a benchmark row must: reduced depth, our data and
    tokenizer, no accumulation, ``warmup + steps`` steps, no checkpoints or evaluation."""
    from pixelrefer.train.config import load_train_config
    from pixelrefer.train.run import load_tokenizer

    base = load_train_config(RECIPES[recipe], [f"data.tokenizer={data / 'tokenizer'}"])
    overrides = reduced_overrides(base.model.preset, load_tokenizer(base), args.llm_layers, args.vision_layers,
                                  args.vocab.get(recipe))
    cfg = load_train_config(RECIPES[recipe], [
        "model.init_from=null", f"data.root={data}", "data.train_file=train.json", f"data.tokenizer={data / 'tokenizer'}",
        f"strategy={strategy}", f"gradient_checkpointing={str(grad_ckpt).lower()}", f"device={args.device}",
        f"precision={DTYPES[args.dtype]}", "global_batch_size=null", "grad_accum=1", "num_workers=0",
        f"max_steps={args.warmup + args.steps}", "save_every=0", "progress=false", "num_threads=1",
        f"output_dir={out}"])
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, overrides=overrides))  # floats stay floats


def full_estimate(recipe: str, strategy: str, processes: int, precision: str) -> float:
    """The dry-run's device GiB of the recipe itself (full depth, real vocabulary, preset shapes)."""
    from pixelrefer.train.config import load_train_config
    from pixelrefer.train.plan import plan_run

    cfg = load_train_config(RECIPES[recipe], ["model.init_from=null", f"strategy={strategy}",
                                              f"precision={precision}", "global_batch_size=null", "grad_accum=1",
                                              "data.tokenizer=/nonexistent"])
    return plan_run(cfg, processes).memory_gib["device"]


# ---------------------------------------------------------------------------------------------- worker
def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def worker(config_path: Path, result_path: Path, warmup: int, steps: int) -> None:
    """One process of a row: build the trainer, run ``warmup + steps`` steps, write this process's figures."""
    torch.set_num_threads(1)
    from pixelrefer.train.config import read_resolved
    from pixelrefer.train.run import build_trainer

    cfg = read_resolved(config_path)
    cuda = cfg.device.startswith("cuda")
    base = torch.cuda.memory_allocated() if cuda else _rss_bytes("VmRSS")
    trainer, _ = build_trainer(cfg)
    procs = trainer.procs
    if cuda:
        torch.cuda.synchronize()
        after_build = torch.cuda.memory_allocated() - base
        torch.cuda.reset_peak_memory_stats()
    else:
        after_build = _rss_bytes("VmRSS") - base
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    batches = trainer.micro_batches()
    times, loss = [], float("nan")
    for _ in range(warmup + steps):
        procs.barrier()
        start = time.perf_counter()
        loss = trainer.train_step(batches)["loss"]
        if cuda:
            torch.cuda.synchronize()
        procs.barrier()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base if cuda else _rss_bytes("VmHWM") - base
    result = {"rank": procs.rank, "peak_gib": peak / GIB, "after_build_gib": after_build / GIB,
              "steps_s": times, "step_s": statistics.median(times[warmup:]), "loss": loss}
    result_path.with_name(f"{result_path.stem}-rank{procs.rank}.json").write_text(json.dumps(result))
    from pixelrefer.train.distributed import close_processes

    close_processes()


# ---------------------------------------------------------------------------------------------- driver
def run_row(cfg, processes: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    config_path = cfg.save(work)
    result = work / "result.json"
    me = [str(Path(__file__).resolve()), "--worker", str(config_path), "--result", str(result),
          "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if processes == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), *me]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False)
    wall = time.perf_counter() - start
    found = sorted(work.glob("result-rank*.json"))
    if done.returncode != 0 or len(found) != processes:
        (work / "log.txt").write_text(done.stdout + done.stderr)
        return {"error": last_error(done.stdout + done.stderr), "wall_s": wall, "log": str(work / "log.txt")}
    return {**worst_process([json.loads(p.read_text()) for p in found]), "wall_s": wall}


def last_error(log: str) -> str:
    """The last line of a failed run's log that names an error (else its last line), shortened for a table."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "error" in line]
    text = (named or lines or ["no output"])[-1]
    return text.replace("|", "/")[:160]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(13, 4.8))
    labels = [f"{r['recipe']} {r['strategy']}\n{'ckpt' if r['grad_ckpt'] else 'no ckpt'}" for r in rows]
    x = np.arange(len(rows))
    measured = [r.get("peak_gib") or 0.0 for r in rows]
    estimate = [r.get("estimate_gib") or 0.0 for r in rows]
    ax_mem.bar(x - 0.2, measured, 0.4, label="measured peak / process")
    ax_mem.bar(x + 0.2, estimate, 0.4, label="dry-run estimate (same depth)")
    for i, r in enumerate(rows):
        if r.get("error"):
            ax_mem.text(i, 0, "failed", rotation=90, ha="center", va="bottom", color="red")
    ax_mem.set_ylabel("GiB per process")
    ax_time.bar(x, [r.get("step_s") or 0.0 for r in rows], 0.6, color="tab:green")
    ax_time.set_ylabel("median step time, s")
    for ax in (ax_mem, ax_time):
        ax.set_xticks(x, labels, rotation=70, fontsize=7)
    ax_mem.legend(fontsize=8)
    device = rows[0]["device"] if rows else ""
    fig.suptitle(f"Training strategies, paper recipes at reduced depth ({device})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def row_key(recipe: str, strategy: str, grad_ckpt: bool) -> tuple[str, str, bool]:
    return recipe, strategy, grad_ckpt


def kept_rows(path: Path, planned: set[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """The rows of ``path`` (a previous run's JSON) that this run will not measure again (none if no file)."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [r for r in rows if row_key(r["recipe"], r["strategy"], r["grad_ckpt"]) not in planned]


def parse_vocab(text: str) -> dict[str, int]:
    """``7b=32768,2b=151669`` -> ``{"7b": 32768, "2b": 151669}`` (recipes left out keep their real vocabulary)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        recipe, sep, value = part.partition("=")
        if not sep or recipe not in RECIPES or not value.isdigit():
            raise argparse.ArgumentTypeError(f"--vocab wants RECIPE=N pairs with RECIPE in {list(RECIPES)}, "
                                             f"got {part!r}")
        out[recipe] = int(value)
    return out


def _choices(text: str, known: Any, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad}; use {list(known)}")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="2b,7b", type=lambda t: _choices(t, RECIPES, "recipes"))
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        type=lambda t: _choices(t, STRATEGIES, "strategies"))
    parser.add_argument("--gc", default="off,on", type=lambda t: _choices(t, ("off", "on"), "--gc values"),
                        help="gradient checkpointing settings to run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES))
    parser.add_argument("--llm-layers", type=int, default=1)
    parser.add_argument("--vision-layers", type=int, default=1)
    parser.add_argument("--vocab", type=parse_vocab, default={}, help="e.g. 7b=32768: a smaller vocabulary")
    parser.add_argument("--nproc", type=int, default=2, help="processes of the distributed rows")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--name", default="bench_train_strategies_cpu")
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of NAME.json this run does not measure again (a run split in parts)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.result, args.warmup, args.steps)
        return
    torch.set_num_threads(1)
    from pixelrefer.train.plan import plan_run

    out = ROOT / "benchmarks" / "results" / args.name
    planned = {row_key(r, s, g == "on") for r in args.recipes for s in args.strategies for g in args.gc}
    rows = kept_rows(out.with_suffix(".json"), planned) if args.append else []
    args.host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = Path(tmp) / "data"
        write_data(data)
        for recipe in args.recipes:
            for short in args.strategies:
                processes = 1 if short == "single" else args.nproc
                full = full_estimate(recipe, STRATEGIES[short], processes, DTYPES[args.dtype])
                for gc_flag in args.gc:
                    work = Path(tmp) / f"{recipe}-{short}-{gc_flag}"
                    cfg = row_config(recipe, STRATEGIES[short], gc_flag == "on", args, data, work)
                    plan = plan_run(cfg, processes)
                    row = {"recipe": recipe, "strategy": short, "processes": processes, "grad_ckpt": gc_flag == "on",
                           "device": args.device, "dtype": args.dtype, "llm_layers": args.llm_layers,
                           "vision_layers": args.vision_layers, "vocab": cfg.model.overrides["text_config"]["vocab_size"],
                           "params": sum(plan.params.values()), "trainable": sum(plan.trainable.values()),
                           "estimate_gib": plan.memory_gib["device"], "full_estimate_gib": full}
                    row.update(run_row(cfg, processes, work, args))
                    row["ratio"] = ratio(row.get("peak_gib"), row["estimate_gib"])
                    rows.append(row)
                    print(markdown_table([row]).splitlines()[-1], flush=True)
                    save_rows(out.with_suffix(".json"), args, rows)  # after every row: a late failure keeps these
    print()
    print(markdown_table(rows))
    try:
        plot(rows, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot")
    print(f"wrote {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
