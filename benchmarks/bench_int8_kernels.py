"""CPU int8 kernels for one linear of the 2B LLM shape, against fp32: time and error, measured side by side.

The candidates for ``quantize="int8"`` on CPU (``pixelrefer.model.quantize``), each y = x W^T with W per output
channel int8 and x quantised at each call:

- ``fp32``: ``F.linear`` (the reference);
- ``torch._int_mm``: x int8 per token, ``torch._int_mm`` (oneDNN) on the int8 weight, which it packs on every call;
- ``fbgemm, per-tensor (torch.ao)``: ``torch.ops.quantized.linear_dynamic`` on prepacked weights, x with one
  7-bit scale per tensor (``reduce_range``), as ``torch.ao``'s ``quantize_dynamic`` does;
- ``fbgemm, per-token, 7-bit x``: the same kernel with each token divided by its max |x| first and the output row
  multiplied back (per-token scales through a per-tensor kernel), 7-bit activations x 8-bit weights;
- ``fbgemm, per-token (library)``: that, with 8-bit activations and the library's weights (``Int8Linear``: 7 bits
  where the kernel saturates 8 x 8-bit products, as on CPUs without VNNI);
- ``oneDNN qlinear, per-token``: ``torch.ops.onednn.qlinear_prepack`` / ``qlinear_pointwise`` (prepacked once, a
  per-tensor activation scale only) with the same row trick, u8 activations, the library's weight range.

Shapes: M tokens x 1536 -> 8960 (up / gate projection) and M x 8960 -> 1536 (down projection), M = ``--tokens``
(prefill) and 1 (a decoding step), at 1 and 2 threads. In each repeat every candidate runs once per shape and thread
count, one after the other, so they see the same machine load; the ratio is fp32's time over the candidate's in
the same repeat, median over repeats. Error: mean |y - y_fp32| / mean |y_fp32| on Gaussian activations whose first
8 input channels are 8x larger (the outlier channels LLM activations have).

    python benchmarks/bench_int8_kernels.py            # ~5 min on 2 shared cores
    python benchmarks/bench_int8_kernels.py --repeats 3 --tokens 128

Writes benchmarks/results/bench_int8_kernels_cpu.json and .png (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pixelrefer.model.quantize import Int8Linear, _pack, per_channel_int8, weight_qmax

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, INTERMEDIATE = 1536, 8960  # the PixelRefer-2B Qwen2 widths
TINY = torch.finfo(torch.float32).tiny
Kernel = Callable[[torch.Tensor], torch.Tensor]


def token_scale(x: torch.Tensor) -> torch.Tensor:
    return x.abs().amax(dim=1, keepdim=True).clamp_min(TINY)


def int_mm(w: torch.Tensor) -> Kernel:
    q, scale = per_channel_int8(w, 127)

    def run(x: torch.Tensor) -> torch.Tensor:
        a = token_scale(x) / 127.0
        return torch._int_mm(torch.round(x / a).to(torch.int8), q.t()).float().mul_(a).mul_(scale)
    return run


def fbgemm(w: torch.Tensor, qmax: int, per_token: bool, reduce_range: bool) -> Kernel:
    packed = _pack(*per_channel_int8(w, qmax))

    def run(x: torch.Tensor) -> torch.Tensor:
        if not per_token:
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range)
        a = token_scale(x)
        return torch.ops.quantized.linear_dynamic(x / a, packed, reduce_range).mul_(a)
    return run


def library(w: torch.Tensor) -> Kernel:
    linear = nn.Linear(w.shape[1], w.shape[0], bias=False)
    linear.weight.data = w
    return Int8Linear.from_linear(linear)


def onednn(w: torch.Tensor) -> Kernel:
    q, scale = per_channel_int8(w, weight_qmax())
    packed = torch.ops.onednn.qlinear_prepack(q, None)
    zero = torch.zeros(w.shape[0], dtype=torch.long)

    def run(x: torch.Tensor) -> torch.Tensor:
        a = token_scale(x)
        qx = torch.round(x / a * 127.0).add_(128).to(torch.uint8)
        return torch.ops.onednn.qlinear_pointwise(qx, 1 / 127.0, 128, packed, scale, zero, None, 1.0, 0,
                                                  torch.float32, "none", [], "").mul_(a)
    return run


CANDIDATES: dict[str, Callable[[torch.Tensor], Kernel]] = {
    "fp32": lambda w: lambda x: torch.nn.functional.linear(x, w),
    "torch._int_mm": int_mm,
    "fbgemm, per-tensor (torch.ao)": lambda w: fbgemm(w, 127, per_token=False, reduce_range=True),
    "fbgemm, per-token, 7-bit x": lambda w: fbgemm(w, 127, per_token=True, reduce_range=True),
    "fbgemm, per-token (library)": library,
    "oneDNN qlinear, per-token": onednn,
}


def activations(tokens: int, width: int, seed: int) -> torch.Tensor:
    x = torch.randn(tokens, width, generator=torch.Generator().manual_seed(seed))
    x[:, :8] *= 8.0
    return x


@torch.no_grad()
def measure(tokens: int, repeats: int, threads: list[int]) -> dict:
    torch.manual_seed(0)
    shapes = {f"{m}x{k}->{n}": (m, k, n) for m in (tokens, 1) for k, n in ((HIDDEN, INTERMEDIATE),
                                                                           (INTERMEDIATE, HIDDEN))}
    weights = {(k, n): torch.randn(n, k) * 0.02 for k, n in ((HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN))}
    kernels = {kn: {name: make(w) for name, make in CANDIDATES.items()} for kn, w in weights.items()}
    inputs = {s: activations(m, k, seed=i) for i, (s, (m, k, _)) in enumerate(shapes.items())}
    rows: dict = {}
    for s, (_, k, n) in shapes.items():
        ref = kernels[k, n]["fp32"](inputs[s])
        for name, kernel in kernels[k, n].items():
            err = (kernel(inputs[s]) - ref).abs().mean() / ref.abs().mean()
            rows.setdefault(s, {})[name] = {"rel_err": float(err), "seconds": {t: [] for t in threads}}
    for r in range(repeats):
        for t in threads:
            torch.set_num_threads(t)
            for s, (_, k, n) in shapes.items():
                for name, kernel in kernels[k, n].items():  # one after the other: the same load for each
                    start = time.perf_counter()
                    kernel(inputs[s])
                    rows[s][name]["seconds"][t].append(time.perf_counter() - start)
        print(f"repeat {r + 1}/{repeats}, load average {os.getloadavg()[0]:.1f}", flush=True)
    for s, by_name in rows.items():
        fp32 = by_name["fp32"]["seconds"]
        for row in by_name.values():
            row["median_ms"] = {t: 1e3 * statistics.median(v) for t, v in row["seconds"].items()}
            row["speedup_paired"] = {t: statistics.median(a / b for a, b in zip(fp32[t], v))
                                     for t, v in row["seconds"].items()}
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, threads = results["shapes"], results["setup"]["threads"]
    names = [n for n in CANDIDATES if n != "fp32"]
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(4.2 * (len(rows) + 1), 4.4))
    for ax, (shape, by_name) in zip(axes, rows.items()):
        for j, t in enumerate(threads):
            ax.bar([i + 0.4 * j - 0.2 for i in range(len(names))],
                   [by_name[n]["speedup_paired"][t] for n in names], width=0.4, label=f"{t} thread(s)")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{shape}: speed vs fp32", fontsize=9)
        ax.legend(fontsize=7)
    first = next(iter(rows.values()))
    axes[-1].bar(names, [100 * first[n]["rel_err"] for n in names])
    axes[-1].set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    axes[-1].set_title(f"{next(iter(rows))}: mean |error| / mean |y| (%)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=300, help="prefill tokens (M of the product)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", default="1,2", help="thread counts, each measured in every repeat")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_int8_kernels_cpu.json")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401  (checked before minutes of measuring)
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib") from None
    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    shapes = measure(args.tokens, args.repeats, threads)
    results = {"setup": {"tokens": args.tokens, "repeats": args.repeats, "threads": threads,
                         "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                         "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                         "weight_qmax": weight_qmax(), "load_average_before": load_before,
                         "load_average_after": os.getloadavg()},
               "shapes": shapes}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    for shape, by_name in shapes.items():
        for name, row in by_name.items():
            timing = "  ".join(f"{t} thr {row['median_ms'][t]:8.2f} ms x{row['speedup_paired'][t]:.2f}"
                               for t in threads)
            print(f"{shape:16s} {name:30s} {timing}  err {100 * row['rel_err']:.2f} %")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
