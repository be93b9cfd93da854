"""Inference cost, measured side by side in one run, with ratios.

Cases (random weights of a preset, so any shape can be measured without checkpoints, or the bundled nano models):
  * region encoding for 1, 8 and 32 regions, all crops in one vision call vs one call per crop (official style);
  * prefill of one query with logits for the last position only vs for every position (official style);
  * one query end to end (time to first token, 16 new tokens);
  * "describe each of 8 regions" with the shared media prefix vs 8 independent queries;
  * a follow-up question in a chat session vs the first question;
  * PixelRefer vs PixelRefer-Lite on the same input.
Peak memory is reported per case (CUDA: max allocated; CPU: peak RSS above the loaded model, sampled).

    python benchmarks/bench_inference.py --preset tiny --device cpu
    python benchmarks/bench_inference.py --preset nano --device cpu   (the bundled full vs Lite)
    python benchmarks/bench_inference.py --preset 2b --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from contextlib import contextmanager

import psutil
import torch
from common import region_encoding, scene

from pixelrefer import GenerationConfig, PixelRefer, Region


class Meter:
    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    @contextmanager
    def measure(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            yield
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
            return
        proc, stop, peak = psutil.Process(), threading.Event(), [0]
        base = proc.memory_info().rss

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.005)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        yield
        stop.set()
        t.join()
        self.peak_mb = max(0, peak[0] - base) / 2**20


def timed(fn, device, reps: int, meter: Meter):
    times = []
    for _ in range(reps):
        with meter.measure():
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), meter.peak_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    lite_name = {"tiny": "tiny-lite", "nano": "nano-lite", "2b": "lite-2b", "7b": "lite-7b"}[args.preset]
    pr = PixelRefer.from_pretrained(args.preset, device=args.device, dtype=args.dtype, segmenter=None)
    dev, meter, rows = pr.device, Meter(pr.device), []
    gen16 = GenerationConfig(max_new_tokens=16, min_new_tokens=16)  # exactly 16 tokens, whatever the weights say
    img, masks = scene(32)

    def add(name, fn, reps=args.reps):
        t, mem = timed(fn, dev, reps, meter)
        rows.append({"case": name, "seconds": t, "peak_mb": mem})
        print(f"{name:58s} {t:9.3f} s  peak {mem:9.1f} MB", flush=True)
        return t

    add("warm-up", lambda: pr.ask(img, [Region.from_mask(masks[0])], "What is <region>?", GenerationConfig(max_new_tokens=2)), 1)
    enc = {}
    for n in (1, 8, 32):
        enc[n] = add(f"region encoding, {n} regions, one vision call", lambda n=n: region_encoding(pr, img, masks[:n], True))
        if n == 8:
            enc["loop"] = add("region encoding, 8 regions, one call per crop", lambda: region_encoding(pr, img, masks[:8], False))
    batch = pr.processor(img, [Region.from_mask(masks[0])], "What is <region>?").to(dev, pr.model.dtype)
    with torch.inference_mode():
        last = add("prefill, logits for the last position only", lambda: pr.model(**batch.as_kwargs(), logits_to_keep=1))
        allp = add("prefill, logits for every position", lambda: pr.model(**batch.as_kwargs()))
    q = "Please describe <region> briefly."
    single = add("one query, 16 new tokens", lambda: pr.ask(img, [Region.from_mask(masks[0])], q, gen16))
    shared = add("describe each of 8 regions (shared prefix)", lambda: pr.describe_each(img, masks[:8], question=q, generation=gen16))
    indep = add("8 independent queries", lambda: [pr.ask(img, [m], q, gen16) for m in masks[:8]])

    def follow_up():
        s = pr.chat(img, [Region.from_mask(masks[0])])
        s.ask(q, generation=gen16)
        t0 = time.perf_counter()
        s.ask("What colour is it?", generation=gen16)
        return time.perf_counter() - t0

    first_q = single
    fu = statistics.median(follow_up() for _ in range(args.reps))
    rows.append({"case": "follow-up question in a chat session", "seconds": fu, "peak_mb": None})
    print(f"{'follow-up question in a chat session':58s} {fu:9.3f} s", flush=True)
    pr = None  # free the full model before loading Lite
    lite = PixelRefer.from_pretrained(lite_name, device=args.device, dtype=args.dtype, segmenter=None)
    add("warm-up Lite", lambda: lite.ask(img, [masks[0]], "What is <region>?", GenerationConfig(max_new_tokens=2)), 1)
    lite_single = add("Lite: one query, 16 new tokens", lambda: lite.ask(img, [Region.from_mask(masks[0])], q, gen16))
    lite_batch = lite.processor(img, [Region.from_mask(masks[0])], "What is <region>?").to(dev, lite.model.dtype)
    with torch.inference_mode():
        lite_last = add("Lite: prefill, logits for the last position only",
                        lambda: lite.model(**lite_batch.as_kwargs(), logits_to_keep=1))
    print("\nratios")
    ratios = {
        "32 vs 1 regions (encoding)": enc[32] / enc[1],
        "8 regions: per-crop calls / one call": enc["loop"] / enc[8],
        "prefill: all-position logits / last only": allp / last,
        "8 independent / describe-each shared": indep / shared,
        "first question / follow-up": first_q / fu,
        "full / Lite (one query, 16 tokens)": single / lite_single,
        "full / Lite (prefill of one query)": last / lite_last,
    }
    for k, v in ratios.items():
        print(f"  {k:55s} {v:6.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": str(dev), "rows": rows, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
