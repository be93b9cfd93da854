"""The official code's CPU anchor (docs/official-cpu-profile.md), re-measured on this implementation.

Same setting: PixelRefer-2B shapes with random weights, fp32, 2 threads, a 640x480 image, elliptical masks of mixed
sizes, greedy decoding of 16 tokens (end-of-sequence suppressed so all 16 are generated). Prints our numbers beside
the official ones recorded in that document. Region encoding is bound by the vision tower, whose work grows with
the crop patches; our masks are not the official run's, so both patch counts and the time per patch are printed.

The same run then measures, each side by side with the plain path (one model in memory at a time):
  * lite: PixelRefer-Lite vs PixelRefer, time to first token for the image + 1 region (and 16 tokens with anchor);
  * describe: ``describe_each`` of 8 regions (shared media prefix, one batch) vs 8 independent ``ask`` queries;
  * chat: a follow-up turn of a ``chat`` session (KV cache kept) vs its first turn;
  * video: 16 frames of 640x480 + 1 region, time to first token, PixelRefer vs PixelRefer-Lite.
Ratios are printed and written with every time to benchmarks/results/bench_cpu_anchor.json and .png (the plot needs
matplotlib); other shapes (``--shape nano-arch``, ``tiny``: to check the script quickly) get a ``_SHAPE`` suffix.

    python benchmarks/bench_cpu_anchor.py [--regions-only] [--cases regions,anchor,chat,describe,video,lite]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from common import region_encoding, scene

from pixelrefer import GenerationConfig, PixelRefer, Region

OFFICIAL = {  # seconds, medians of docs/official-cpu-profile.md
    "region encoding, 1 region": 1.50,
    "region encoding, 8 regions": 37.95,
    "region encoding, 32 regions": 54.24,
    "time to first token, 1 image + 1 region": 78.9,
    "16 new tokens, 1 image + 1 region": 89.7,
}


OFFICIAL_PATCHES = {1: 130, 8: 3107, 32: 6326}  # crop patches of the official run's masks; ours differ

LITE_OF = {"2b": "lite-2b", "7b": "lite-7b", "nano-arch": "nano-lite-arch", "tiny": "tiny-lite"}
CASES = ("regions", "anchor", "chat", "describe", "video", "lite")
QUESTION = "Please describe <region> briefly."
FOLLOW_UP = "What colour is it?"
VIDEO_FRAMES, VIDEO_SHIFT = 16, 8  # frames, pixels the scene moves right per frame (every patch changes)
TTFT = GenerationConfig(max_new_tokens=1)
GEN16 = GenerationConfig(max_new_tokens=16, min_new_tokens=16)  # exactly 16 tokens, whatever the weights say
# (label, plain-path case, our case, target): the ratio is plain / ours, a speed-up (the chat row: ours / plain)
COMPARISONS = (
    ("Lite vs full, time to first token, 1 image + 1 region", "time to first token, 1 image + 1 region",
     "Lite: time to first token, 1 image + 1 region", ">= 4"),
    ("Lite vs full, 16 new tokens, 1 image + 1 region", "16 new tokens, 1 image + 1 region",
     "Lite: 16 new tokens, 1 image + 1 region", None),
    ("describe 8 regions vs 8 independent queries", "8 independent queries, 16 tokens each",
     "describe_each, 8 regions, 16 tokens each", ">= 5"),
    ("follow-up turn / first turn (chat, 16 tokens each)", "chat: first turn", "chat: follow-up turn", "<= 0.2"),
    ("Lite vs full, video time to first token, 16 frames + 1 region", "video: time to first token, 16 frames + 1 region",
     "Lite video: time to first token, 16 frames + 1 region", None),
)


def crop_patches(pr: PixelRefer, img, masks) -> int:
    """Crop patches the processor makes for these masks (the vision tower's work grows with them)."""
    prompt = [{"role": "user", "content": "<region> " * len(masks)}]
    encoded = pr.processor.encode(img, [Region.from_mask(m) for m in masks], prompt, add_generation_prompt=True)
    return int(pr.processor.collate([encoded]).visual.crop_grid.prod(dim=1).sum())


def rss_gib() -> float:
    return psutil.Process().memory_info().rss / 2**30


def video_scene(img, mask):
    """16 frames of the scene moving right, and the region on every frame (as propagation would give it)."""
    frames = [np.roll(img, VIDEO_SHIFT * i, axis=1) for i in range(VIDEO_FRAMES)]
    region = Region.from_frames({i: np.roll(mask, VIDEO_SHIFT * i, axis=1) for i in range(VIDEO_FRAMES)})
    return frames, region


class Run:
    """Times cases, keeps them with the load average, and rewrites the JSON after each one."""

    def __init__(self, args, path: Path):
        self.args, self.path = args, path
        self.data: dict = {"script": "benchmarks/bench_cpu_anchor.py", "shape": args.shape, "lite_shape": LITE_OF[args.shape],
                           "dtype": "float32", "threads": torch.get_num_threads(), "reps": args.reps,
                           "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "load_average_start": os.getloadavg(), "models": {},
                           "cases": {}, "ratios": {}}

    def time(self, name: str, fn, reps: int | None = None, **info) -> float:
        times, out = [], None
        for _ in range(reps or self.args.reps):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        seconds = statistics.median(times)
        if isinstance(out, list):  # answers of several queries
            info["prompt_tokens_each"] = [a.prompt_tokens for a in out]
        elif out is not None:
            info["prompt_tokens"] = out.prompt_tokens
        self.add(name, seconds, times=times, **info)
        return seconds

    def add(self, name: str, seconds: float, **info) -> None:
        self.data["cases"][name] = {"seconds": seconds, **info, "load_average": os.getloadavg(),
                                   "at": time.strftime("%H:%M:%S UTC", time.gmtime())}
        print(f"{name:58s} {seconds:9.2f} s" + (f"  ({info['prompt_tokens']} prompt tokens)" if info.get("prompt_tokens") else ""),
              flush=True)
        self.save()

    def save(self) -> None:
        cases = self.data["cases"]
        for label, plain, ours, target in COMPARISONS:
            if plain in cases and ours in cases:
                a, b = cases[plain]["seconds"], cases[ours]["seconds"]
                ratio = b / a if target and target.startswith("<=") else a / b
                met = None if target is None else (ratio <= float(target[2:]) if target.startswith("<=") else ratio >= float(target[2:]))
                self.data["ratios"][label] = {"ratio": ratio, "target": target, "met": met}
        self.data["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        self.path.write_text(json.dumps(self.data, indent=1) + "\n")


def load(run: Run, name: str) -> PixelRefer:
    t0 = time.perf_counter()
    pr = PixelRefer.from_pretrained(name, device="cpu", dtype="float32", segmenter=None)
    params = sum(p.numel() for p in pr.model.parameters())
    run.data["models"][name] = {"build_s": time.perf_counter() - t0, "params": params, "rss_gib_after_build": rss_gib()}
    print(f"built {name} ({params / 1e9:.3f} B parameters) in {time.perf_counter() - t0:.1f} s, RSS {rss_gib():.2f} GiB",
          flush=True)
    return pr


def warm_up(pr: PixelRefer, img, masks) -> None:
    """Every path once on small inputs (a 224x224 part of the scene, one region, 2 tokens)."""
    region_encoding(pr, img, masks[:1], True)
    part = np.ascontiguousarray(img[:224, :224])
    pr.ask(part, [Region.from_mask(masks[0][:224, :224])], QUESTION, GenerationConfig(max_new_tokens=2))


def measure_regions(run: Run, pr: PixelRefer, img, masks) -> None:
    patches = {n: crop_patches(pr, img, masks[:n]) for n in (1, 8, 32)}
    for n, reps in ((1, 3), (8, 1), (32, 1)):
        name = f"region encoding, {n} region{'s' if n > 1 else ''}"
        seconds = run.time(name, lambda n=n: region_encoding(pr, img, masks[:n], True), reps, crop_patches=patches[n])
        line = f"    {patches[n]} crop patches, {1000 * seconds / patches[n]:.1f} ms per patch"
        if run.args.shape == "2b":
            line += f" (official {OFFICIAL_PATCHES[n]} patches, {1000 * OFFICIAL[name] / OFFICIAL_PATCHES[n]:.1f} ms per patch)"
        print(line, flush=True)


def measure_one_query(run: Run, pr: PixelRefer, img, region, prefix: str = "", tokens16: bool = True) -> None:
    """Time to first token (and 16 tokens) for the image + 1 region."""
    cases = (("time to first token, 1 image + 1 region", TTFT), ("16 new tokens, 1 image + 1 region", GEN16))
    for label, gen in cases[: 1 + tokens16]:
        def ask(gen=gen):
            answer = pr.ask(img, [region], QUESTION, gen)
            assert len(answer.token_ids) == gen.max_new_tokens, len(answer.token_ids)
            return answer
        run.time(prefix + label, ask)


def measure_chat(run: Run, pr: PixelRefer, img, region) -> None:
    first, follow = [], []
    for _ in range(run.args.reps):
        session = pr.chat(img, [region])
        t = time.perf_counter()
        a = session.ask(QUESTION, generation=GEN16)
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = session.ask(FOLLOW_UP, generation=GEN16)
        follow.append(time.perf_counter() - t)
        assert len(a.token_ids) == len(b.token_ids) == 16
        del session
    run.add("chat: first turn", statistics.median(first), times=first, prompt_tokens=a.prompt_tokens)
    run.add("chat: follow-up turn", statistics.median(follow), times=follow, prompt_tokens=b.prompt_tokens)


def measure_describe(run: Run, pr: PixelRefer, img, masks) -> None:
    regions = [Region.from_mask(m) for m in masks[:8]]
    run.time("describe_each, 8 regions, 16 tokens each", lambda: pr.describe_each(img, regions, question=QUESTION, generation=GEN16))
    run.time("8 independent queries, 16 tokens each", lambda: [pr.ask(img, [r], QUESTION, GEN16) for r in regions])


def measure_video(run: Run, pr: PixelRefer, img, masks, prefix: str = "video") -> None:
    frames, region = video_scene(img, masks[0])
    run.time(f"{prefix}: time to first token, {VIDEO_FRAMES} frames + 1 region",
             lambda: pr.ask(frames, [region], QUESTION, TTFT))


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(label, plain, ours, target) for label, plain, ours, target in COMPARISONS
            if plain in data["cases"] and ours in data["cases"]]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.5 * len(rows) + 0.8), squeeze=False)
    for ax, (label, plain, ours, target) in zip(axes[:, 0], rows):
        seconds = [data["cases"][plain]["seconds"], data["cases"][ours]["seconds"]]
        bars = ax.barh([plain, ours], seconds, color=["#999999", "#2b7bba"])
        ax.bar_label(bars, labels=[f"{s:.1f} s" for s in seconds], padding=3)
        ax.invert_yaxis()
        r = data["ratios"][label]
        verdict = "" if target is None else f" (target {target}: {'met' if r['met'] else 'missed'})"
        ax.set_title(f"{label}: {r['ratio']:.2f}x{verdict}", fontsize=9, loc="left")
        ax.set_xlim(0, max(seconds) * 1.2)
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("seconds")
    load = data.get("load_average_end") or list(data["cases"].values())[-1]["load_average"]  # a run cut short: its last case
    fig.suptitle(f"PixelRefer {data['shape']} shape, random weights, fp32, {data['threads']} threads, CPU "
                 f"(1-min load {data['load_average_start'][0]:.1f} at the start, {load[0]:.1f} at the end)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regions-only", action="store_true")
    ap.add_argument("--shape", default="2b", choices=sorted(LITE_OF), help="full-model preset (Lite: its Lite twin)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--reps", type=int, default=1, help="repetitions per case (the median is kept)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--replot", type=Path, default=None, help="only redraw the PNG of this JSON (a run cut short)")
    args = ap.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return
    cases = {"regions"} if args.regions_only else set(args.cases.split(","))
    if cases - set(CASES):
        raise SystemExit(f"unknown cases {sorted(cases - set(CASES))}; choose from {CASES}")
    try:
        import matplotlib  # noqa: F401  (checked before minutes of measuring)
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib") from None
    torch.set_num_threads(2)
    stem = "bench_cpu_anchor" + ("" if args.shape == "2b" else f"_{args.shape}")
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args, args.out / f"{stem}.json")
    img, masks = scene(32)
    region = Region.from_mask(masks[0])
    # Order: the targets' cases first (a run cut short keeps them), the regions-only anchor next, the video pair last
    # (back to back); Lite is built twice for that rather than holding two 2B models at once.
    if "lite" in cases:
        lite = load(run, LITE_OF[args.shape])
        warm_up(lite, img, masks)
        measure_one_query(run, lite, img, region, prefix="Lite: ", tokens16="anchor" in cases)
        del lite  # a 2B fp32 model is ~8-9 GB: one in memory at a time
        gc.collect()
    pr = load(run, args.shape)
    warm_up(pr, img, masks)
    if cases & {"anchor", "lite"}:
        measure_one_query(run, pr, img, region, tokens16="anchor" in cases)
    if "chat" in cases:
        measure_chat(run, pr, img, region)
    if "describe" in cases:
        measure_describe(run, pr, img, masks)
    if "regions" in cases:
        measure_regions(run, pr, img, masks)
    if "video" in cases:
        measure_video(run, pr, img, masks)
    del pr
    gc.collect()
    if "video" in cases:
        lite = load(run, LITE_OF[args.shape])
        warm_up(lite, img, masks)
        measure_video(run, lite, img, masks, prefix="Lite video")
        del lite  # a 2B fp32 model is ~8-9 GB: one in memory at a time
        gc.collect()
    run.data["load_average_end"] = os.getloadavg()
    run.save()
    peak = run.data["peak_rss_gib"]
    print(f"\npeak RSS {peak:.2f} GiB (official: 11.2 GB peak end to end); "
          f"load average {run.data['load_average_start']} at the start, {run.data['load_average_end']} at the end")
    ours = run.data["cases"]
    if args.shape == "2b":
        print(f"{'case':45s} {'official s':>10s} {'ours s':>8s} {'speed-up':>8s}")
        for k, v in OFFICIAL.items():
            if k in ours:
                print(f"{k:45s} {v:10.2f} {ours[k]['seconds']:8.2f} {v / ours[k]['seconds']:7.2f}x")
    print("\nratios (plain path / ours; the chat row: follow-up / first turn)")
    for label, r in run.data["ratios"].items():
        verdict = "" if r["target"] is None else f"  target {r['target']}: {'met' if r['met'] else 'MISSED'}"
        print(f"  {label:62s} {r['ratio']:6.2f}x{verdict}")
    plot(run.data, args.out / f"{stem}.png")
    print(f"wrote {run.path} and {args.out / f'{stem}.png'}")


if __name__ == "__main__":
    main()
