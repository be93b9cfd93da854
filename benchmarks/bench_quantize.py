"""Quantised inference vs fp32 on CPU: speed, memory and logit agreement at the 2B LLM shape, and the accuracy
change on the synthetic benchmark with the bundled trained models.

Part 1 (2B shape, random weights): the PixelRefer-2B Qwen2 (hidden 1536, intermediate 8960, 12 heads / 2 KV heads,
head 128, vocabulary 151,669, tied embeddings) with ``--layers`` of its 28 layers. Every mode is a copy of the same
fp32 model, measured side by side in one process: the modes take turns within each repeat, and medians are
reported. Prefill = one forward over ``--prompt`` tokens (logits of the last one only, as ``generate`` does);
decode = ``--new-tokens`` greedy steps with the KV cache. Logit error over every prompt position; greedy agreement
= each mode's own greedy continuation vs fp32's. Random weights give near-flat logits, so top-1 agreement is a
harsh test here; the accuracy that matters is part 2.

Part 2 (trained): ``pixelrefer eval synthetic`` (in process, the harness and predictor the CLI uses; greedy,
exact match) on the held-out split of ``pixelrefer synth --seed 0``, for ``nano`` and ``nano-lite`` in each mode.
Paired standard errors: every item is answered by both fp32 and the quantised model.

Modes: ``fp32``; ``int8`` (the library's ``Int8Linear``: per-token int8 activations x per-channel int8 weights
on fbgemm's prepacked kernel, every LLM linear and lm_head); ``int8+vision`` (the vision tower too; part 2 only:
part 1 has no vision tower); ``int8, lm_head fp32`` and ``torch.ao dynamic`` (``quantize_dynamic``: per-tensor
7-bit activations), part 1 only, to show what the choices cost. Part 1 also gives the logit error (not the speed)
of ``int8, torch._int_mm``, the library's previous kernel (the same per-token scheme with 8-bit weights, exact
int32 products, but it packs the weight on every call: 0.03-0.05x of fp32 on an AVX2 CPU,
``benchmarks/bench_int8_kernels.py``). Part 1 runs every mode at each of ``--threads`` in every repeat.

    python benchmarks/bench_quantize.py                 # ~65 min on 2 heavily shared cores (6 synthetic runs: 50)
    python benchmarks/bench_quantize.py --layers 2 --repeats 3 --limit 100

Writes benchmarks/results/bench_quantize_cpu.json and .png (needs matplotlib).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_int8_kernels import int_mm
from torch import nn

from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.model.quantize import linear_targets, model_bytes, quantize_model, replace_linears
from pixelrefer.model.tokenizer import byte_level_tokenizer
from pixelrefer.presets import RANDOM_PRESETS, preset_config

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
FULL_LAYERS = RANDOM_PRESETS["2b"]["text"]["num_hidden_layers"]
EXACT_MATCH = ("category acc", "attribute acc", "relation acc", "mcq acc")


# ---------------------------------------------------------------------------------------------- part 1: 2B shape
def llm_2b(layers: int) -> PixelReferForConditionalGeneration:
    """The 2B preset with ``layers`` LLM layers and a 1-layer vision tower (unused here), random fp32 weights."""
    tokenizer = byte_level_tokenizer()
    preset = RANDOM_PRESETS["2b"]
    text = dict(preset["text"], num_hidden_layers=layers, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    config = preset_config("2b", tokenizer, text_config=text, vision_config=dict(preset["vision"], num_hidden_layers=1))
    torch.manual_seed(0)
    return PixelReferForConditionalGeneration(config).eval()


def _int8_fp32_head(model: nn.Module) -> nn.Module:
    quantize_model(model, "int8", CPU)
    head = nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=False)
    head.weight = model.get_input_embeddings().weight  # tied, as in fp32
    model.lm_head = head
    return model


def _torch_ao_dynamic(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    model.language_model = quantize_dynamic(model.language_model, {nn.Linear}, dtype=torch.qint8)
    model.lm_head = quantize_dynamic(nn.Sequential(model.lm_head), {nn.Linear}, dtype=torch.qint8)[0]
    return model


class IntMMLinear(nn.Module):
    """The library's previous CPU int8 linear (``torch._int_mm``, per-token x per-channel): accuracy reference."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.product = int_mm(linear.weight.detach().float())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.product(x.reshape(-1, x.shape[-1]).float()).reshape(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def _int_mm_model(model: nn.Module) -> nn.Module:
    replace_linears(model, linear_targets(model, vision=False), IntMMLinear)
    return model


SHAPE_MODES = {
    "fp32": lambda m: m,
    "int8": lambda m: (quantize_model(m, "int8", CPU), m)[1],
    "int8, lm_head fp32": _int8_fp32_head,
    "torch.ao dynamic": _torch_ao_dynamic,
}
REFERENCE_MODES = {"int8, torch._int_mm": _int_mm_model}  # logit error and greedy agreement only, not timed


def llm_bytes(model: nn.Module, packed: bool) -> int:
    """Bytes of the LLM's weights (layers, embeddings, lm_head; tied weights once), with the packed int8 weights
    torch.ao keeps outside parameters and buffers when ``packed``."""
    llm = nn.ModuleList([model.language_model, model.lm_head])
    return _torch_ao_bytes(llm) if packed else model_bytes(llm)


def _torch_ao_bytes(model: nn.Module) -> int:
    extra = 0
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(module, "weight"):
            weight = module.weight()
            extra += weight.numel() * weight.element_size() + 4 * weight.shape[0]
    return model_bytes(model) + extra


@torch.no_grad()
def prefill(model: nn.Module, embeds: torch.Tensor) -> tuple[float, Any]:
    start = time.perf_counter()
    out = model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    return time.perf_counter() - start, out


@torch.no_grad()
def greedy(model: nn.Module, embeds: torch.Tensor, steps: int) -> tuple[float, list[int]]:
    """Seconds per decoding step after the prefill, and the greedy tokens (the first from the prefill)."""
    _, out = prefill(model, embeds)
    tokens = [int(out.logits[0, -1].argmax())]
    cache = out.cache
    start = time.perf_counter()
    for _ in range(steps - 1):
        out = model(input_ids=torch.tensor([[tokens[-1]]]), cache=cache, use_cache=True)
        cache = out.cache
        tokens.append(int(out.logits[0, -1].argmax()))
    return (time.perf_counter() - start) / max(steps - 1, 1), tokens


def shape_benchmark(layers: int, prompt: int, new_tokens: int, repeats: int, threads: list[int]) -> dict[str, Any]:
    base = llm_2b(layers)
    models = {name: make(copy.deepcopy(base)) for name, make in SHAPE_MODES.items()}
    torch.manual_seed(1)
    embeds = torch.randn(1, prompt, models["fp32"].config.text_config.hidden_size) * 0.02
    times = {n: {t: {"prefill": [], "decode": []} for t in threads} for n in models}
    tokens: dict[str, list[int]] = {}
    for name, model in models.items():  # warm-up
        prefill(model, embeds[:, :8])
    for r in range(repeats):
        for t in threads:
            torch.set_num_threads(t)
            for name, model in models.items():  # interleaved: every mode sees the same machine load
                times[name][t]["prefill"].append(prefill(model, embeds)[0])
                step, tokens[name] = greedy(model, embeds, new_tokens)
                times[name][t]["decode"].append(step)
        last = {n: " / ".join(f"{by[t]['prefill'][-1]:.2f}" for t in threads) for n, by in times.items()}
        print(f"repeat {r + 1}/{repeats}, load average {os.getloadavg()[0]:.1f}, prefill s at {threads} threads: "
              + ", ".join(f"{n} {v}" for n, v in last.items()), flush=True)
    for name, make in REFERENCE_MODES.items():
        models[name] = make(copy.deepcopy(base))
        tokens[name] = greedy(models[name], embeds, new_tokens)[1]
    del base
    with torch.no_grad():
        ref = models["fp32"](inputs_embeds=embeds).logits[0]
    results: dict[str, Any] = {}
    for name, model in models.items():
        with torch.no_grad():
            logits = model(inputs_embeds=embeds).logits[0]
        err = (logits - ref).abs()
        same = [a == b for a, b in zip(tokens[name], tokens["fp32"])]
        packed = name == "torch.ao dynamic"
        if name in REFERENCE_MODES:  # its int8 weights live in closures: no byte count
            weights = layer_bytes = None
        else:
            weights = llm_bytes(model, packed)
            layers_module = model.language_model.layers
            layer_bytes = (_torch_ao_bytes(layers_module) if packed else model_bytes(layers_module)) / layers
        results[name] = {
            "threads": ({str(t): timing(times["fp32"][t], times[name][t]) for t in threads}  # JSON's keys
                        if name in times else None),
            "weights_bytes": weights,
            "layer_bytes": layer_bytes,
            "logit_max_abs_err": float(err.max()),
            "logit_mean_abs_err": float(err.mean()),
            "logit_mean_abs_fp32": float(ref.abs().mean()),
            "top1_agreement": float((logits.argmax(-1) == ref.argmax(-1)).float().mean()),
            "greedy_agreement": sum(same) / len(same),
            "greedy_identical_prefix": next((i for i, s in enumerate(same) if not s), len(same)),
        }
    other = results["fp32"]["weights_bytes"] - results["fp32"]["layer_bytes"] * layers  # embeddings, final norm
    for name, row in results.items():
        if row["weights_bytes"] is None:
            row["memory_ratio"] = row["memory_ratio_28_layers"] = None
            continue
        row["memory_ratio"] = row["weights_bytes"] / results["fp32"]["weights_bytes"]
        full = row["weights_bytes"] - row["layer_bytes"] * layers + row["layer_bytes"] * FULL_LAYERS
        row["memory_ratio_28_layers"] = full / (other + results["fp32"]["layer_bytes"] * FULL_LAYERS)
    return results


def timing(fp32: dict[str, list[float]], mode: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, the ratio of medians vs fp32, and the median of the per-repeat ratios (the same repeat's fp32 and
    quantised runs are seconds apart: their ratio sees the least load change)."""
    row: dict[str, Any] = {}
    for part in ("prefill", "decode"):
        row[f"{part}_s"] = statistics.median(mode[part])
        row[f"{part}_speedup"] = statistics.median(fp32[part]) / statistics.median(mode[part])
        row[f"{part}_speedup_paired"] = statistics.median(a / b for a, b in zip(fp32[part], mode[part]))
        row[f"{part}_s_all"] = mode[part]
    return row


# ------------------------------------------------------------------------------------ part 2: synthetic benchmark
ACCURACY_MODES = {"fp32": dict(quantize=None), "int8": dict(quantize="int8"),
                  "int8+vision": dict(quantize="int8", quantize_vision=True)}


def synthetic_split(folder: Path, n: int) -> Path:
    from pixelrefer.synth.build import build_dataset

    build_dataset(folder, n_train=1, n_val=1, n_test=1, n_heldout=n, seed=0, progress=False)
    return folder / "heldout.json"


def run_eval(model: str, data: Path, out: Path, limit: int | None, **quant: Any) -> tuple[dict, dict[str, bool], list]:
    from pixelrefer.eval.harness import predict, score
    from pixelrefer.eval.predictor import PixelReferPredictor
    from pixelrefer.eval.tasks import ScoreContext, get_task

    task = get_task("synthetic")
    items = task.load(data, data.parent)[:limit]
    predictor = PixelReferPredictor(model, device="cpu", dtype="float32", max_new_tokens=64, **quant)
    start = time.perf_counter()
    predict(task, items, predictor, out, run_info={"model": model, "predictor": predictor.describe()})
    seconds = time.perf_counter() - start
    report = score(task, out, ScoreContext(out_dir=out, options={"meteor": False}))
    correct = {}
    for line in (out / "item_scores.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "correct" in row:
            correct[row["id"]] = bool(row["correct"])
    answers = [json.loads(line)["pred"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {"metrics": report["metrics"], "items": len(items), "predict_s": seconds}, correct, answers


def paired(base: dict[str, bool], other: dict[str, bool]) -> dict[str, float]:
    """Exact-match accuracy of both (percent), the difference and its paired standard error."""
    ids = sorted(base)
    diffs = [float(other[i]) - float(base[i]) for i in ids]
    n = len(ids)
    p = sum(base.values()) / n
    sd = statistics.pstdev(diffs) if n > 1 else 0.0
    return {"n": n, "fp32_acc": 100 * p, "acc": 100 * sum(other[i] for i in ids) / n,
            "delta": 100 * sum(diffs) / n, "delta_se": 100 * sd / math.sqrt(n),
            "fp32_acc_se": 100 * math.sqrt(p * (1 - p) / n), "items_changed": sum(d != 0 for d in diffs)}


def accuracy_benchmark(models: list[str], n: int, limit: int | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_split(Path(tmp) / "synth", n)
        for model in models:
            runs = {mode: run_eval(model, data, Path(tmp) / f"{model}-{mode}", limit, **kw)
                    for mode, kw in ACCURACY_MODES.items()}
            base_summary, base_correct, base_answers = runs["fp32"]
            results[model] = {}
            for mode, (summary, correct, answers) in runs.items():
                results[model][mode] = {
                    **summary,
                    "metric_delta": {k: v - base_summary["metrics"][k] for k, v in summary["metrics"].items()},
                    "exact_match": paired(base_correct, correct),
                    "answers_identical": sum(a == b for a, b in zip(answers, base_answers)) / len(answers),
                }
                print(f"{model} {mode}: {summary['metrics']}", flush=True)
    return results


# --------------------------------------------------------------------------------------------------- plot, main
def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = results["shape_2b"]
    threads = results["setup"]["threads"]
    timed = [n for n in shape if shape[n]["threads"] is not None]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    bars = [(f"{part} {t} thr", lambda n, part=part, t=t: shape[n]["threads"][str(t)][f"{part}_speedup_paired"])
            for part in ("prefill", "decode") for t in threads]
    bars.append(("LLM weights (28 layers)", lambda n: shape[n]["memory_ratio_28_layers"]))
    width = 0.8 / len(bars)
    for j, (label, value) in enumerate(bars):
        axes[0].bar([i - 0.4 + width * (j + 0.5) for i in range(len(timed))], [value(n) for n in timed],
                    width=width, label=label)
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_xticks(range(len(timed)), timed, rotation=15)
    axes[0].set_title(f"2B LLM shape, {results['setup']['layers']} layers: vs fp32 (median per-repeat ratio)",
                      fontsize=9)
    axes[0].legend(fontsize=7)
    names = list(shape)
    axes[1].bar(names, [shape[n]["logit_mean_abs_err"] / shape[n]["logit_mean_abs_fp32"] for n in names])
    axes[1].set_title("2B shape: mean |logit error| / mean |fp32 logit|")
    axes[1].tick_params(axis="x", rotation=15)
    acc = results["synthetic"]
    labels, deltas, errors = [], [], []
    for model, modes in acc.items():
        for mode, row in modes.items():
            if mode != "fp32":
                labels.append(f"{model}\n{mode}")
                deltas.append(row["exact_match"]["delta"])
                errors.append(row["exact_match"]["delta_se"])
    axes[2].bar(labels, deltas, yerr=errors, capsize=4)
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].set_title("synthetic held-out: exact match vs fp32 (points, ±1 SE)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4, help="LLM layers of the 2B shape (28 in the real model)")
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens of the prefill")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="thread counts of part 1, each in every repeat (part 2: "
                        "the last)")
    parser.add_argument("--heldout", type=int, default=400, help="held-out samples generated (seed 0)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    parser.add_argument("--models", default="nano,nano-lite")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_quantize_cpu.json")
    parser.add_argument("--only", choices=("shape", "synthetic"), default=None,
                        help="rerun one part; the other is kept from the existing --out file")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401  (checked before minutes of measuring)
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib") from None
    threads = [int(t) for t in args.threads.split(",")]
    if args.only and not args.out.is_file():
        raise SystemExit(f"--only {args.only} keeps the other part from {args.out}, which does not exist: run both parts")
    previous = json.loads(args.out.read_text()) if args.only else {}
    results: dict[str, Any] = {
        "setup": {"layers": args.layers, "prompt_tokens": args.prompt, "new_tokens": args.new_tokens,
                  "repeats": args.repeats, "threads": threads, "torch": torch.__version__,
                  "cpu": platform.processor() or platform.machine(),
                  "cpu_capability": torch.backends.cpu.get_cpu_capability()},
    }
    if args.only == "synthetic":
        results["setup"] = previous["setup"]
        results["shape_2b"] = previous["shape_2b"]
    else:
        load = os.getloadavg()
        results["shape_2b"] = shape_benchmark(args.layers, args.prompt, args.new_tokens, args.repeats, threads)
        results["setup"]["load_average"] = {"before": load, "after": os.getloadavg()}
    if args.only == "shape":
        results["synthetic"] = previous["synthetic"]
        results["setup"].update({k: previous["setup"].get(k) for k in ("heldout", "limit")})
    else:
        torch.set_num_threads(threads[-1])
        results["synthetic"] = accuracy_benchmark(args.models.split(","), args.heldout, args.limit)
        results["setup"].update(heldout=args.heldout, limit=args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    for name, row in results["shape_2b"].items():
        speed = "  ".join(f"{t} thr: prefill x{r['prefill_speedup']:.2f} (paired x{r['prefill_speedup_paired']:.2f}) "
                          f"decode x{r['decode_speedup']:.2f} (paired x{r['decode_speedup_paired']:.2f})"
                          for t, r in (row["threads"] or {}).items()) or "not timed"
        memory = "-" if row["memory_ratio_28_layers"] is None else f"{row['memory_ratio_28_layers']:.2f}"
        print(f"{name:20s} {speed}  weights x{memory} (28 layers)  "
              f"top-1 {row['top1_agreement']:.3f}  greedy {row['greedy_agreement']:.2f}  rel. logit err "
              f"{row['logit_mean_abs_err'] / row['logit_mean_abs_fp32']:.4f}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
