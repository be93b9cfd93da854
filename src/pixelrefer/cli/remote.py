"""`pixelrefer ask --server URL`: the same question sent to a running `pixelrefer serve` (a thin client).

It imports no model stack (stdlib and typer/rich only), so a question costs the server's answer time plus a
fraction of a second. The regions come from the one region-options parser (:func:`~pixelrefer.cli.common.region_json`,
``"frame"`` a SOURCE frame index, which the server maps to the nearest sampled frame as the local path does);
the output (text or ``--json``) has the local path's form.

Exit codes: 2 when the server refuses the request as bad input (HTTP 4xx but 429), 3 when no answer can be had
(unreachable, busy 429, HTTP 5xx, a reply that is not the API's).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pixelrefer.cli.common import EXIT_BAD_INPUT, EXIT_MODEL, fail, note_nearest_frame

SERVER_ENV = "PIXELREFER_SERVER"


def post(server: str, route: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST ``body`` as JSON; the decoded reply, or an exit with the codes above."""
    url = server.rstrip("/") + route
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        fail(EXIT_BAD_INPUT if 400 <= exc.code < 500 and exc.code != 429 else EXIT_MODEL,
             f"server ({exc.code}): {message}")
    except (urllib.error.URLError, OSError) as exc:
        fail(EXIT_MODEL, f"cannot reach the server at {server}: {getattr(exc, 'reason', exc)}")
    except ValueError:
        fail(EXIT_MODEL, f"the server at {server} did not answer with JSON")


def _region_summary(index: int, kind: str, out: dict[str, Any]) -> dict[str, Any]:
    """A response region in the form :func:`pixelrefer.cli.ask.region_summary` prints."""
    frames = out["frames"]
    first = str(frames[0]) if frames else None
    area = out["area"].get(first, 0) if first is not None else 0
    summary: dict[str, Any] = {"index": index, "kind": kind, "frames": frames, "area": area,
                               "bbox": out["bbox"][first] if area else None}
    if out.get("source_frames") is not None:
        summary["source_frames"] = out["source_frames"]
    return summary


def remote_ask(server: str, media: Path, question: str, regions: list[dict[str, Any]], max_new_tokens: int,
               as_json: bool, frame: int, timeout: float = 600.0) -> None:
    """Ask the server at ``server`` and print as the local ``pixelrefer ask`` does."""
    if not media.is_file():
        fail(EXIT_BAD_INPUT, f"file not found: {media}" if not media.exists() else
             f"--server needs one image or video file, not a folder: {media}")
    body = {"media": {"data": base64.b64encode(media.read_bytes()).decode()}, "question": question,
            "regions": regions, "max_new_tokens": max_new_tokens}
    start = time.perf_counter()
    reply = post(server, "/v1/ask", body, timeout)
    latency = time.perf_counter() - start
    try:
        answer = reply["answer"]
        outs = answer["regions"]
    except (KeyError, TypeError):
        fail(EXIT_MODEL, f"the server at {server} sent a reply that is not the API's")
    summaries = [_region_summary(i, r.get("kind", "?"), r) for i, r in enumerate(outs)]
    sampled_of = {f: s for r in outs if r.get("source_frames") for f, s in zip(r["frames"], r["source_frames"])}
    mapped = None
    if sampled_of:  # the sampled frame --frame went to: the one nearest it among those the regions use
        position = min(sampled_of, key=lambda f: (abs(sampled_of[f] - frame), f))
        mapped = {"source": frame, "sampled": position, "sampled_source": sampled_of[position]}
        note_nearest_frame(frame, sampled_of[position], position)
    if as_json:
        out: dict[str, Any] = {
            "media": str(media), "question": reply.get("question", question), "latency_s": round(latency, 3),
            "regions": summaries,
            "answers": [{"region": None, "text": answer["text"], "completion_tokens": answer["completion_tokens"]}],
        }
        if mapped is not None:
            out["frame"] = mapped
        print(json.dumps(out, ensure_ascii=False))
        return
    text = answer["text"]
    print(text if text else f"(empty answer, {answer['completion_tokens']} tokens)")
