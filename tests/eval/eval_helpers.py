"""Helpers for the evaluation tests: tiny media, RLE/polygon builders, a fake predictor, a fake judge server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from pixelrefer.eval.types import EvalRequest

SIZE = 32


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    array[8:24, 8:24] = colour
    Image.fromarray(array).save(path)
    return path


def write_video(path: Path, num_frames: int = 4, fps: float = 2.0) -> Path:
    from pixelrefer.media import write_video as _write

    frames = []
    for t in range(num_frames):
        frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        frame[8:24, 4 + 2 * t : 20 + 2 * t] = (30, 200, 30)
        frames.append(frame)
    return _write(frames, path, fps=fps)


def square_mask(x0: int = 8, y0: int = 8, x1: int = 24, y1: int = 24) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def rle(mask: np.ndarray) -> dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def polygon(x0: int = 8, y0: int = 8, x1: int = 24, y1: int = 24) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class FakePredictor:
    """Deterministic answers from a function of the request; records every request it saw."""

    def __init__(
        self, answer: Callable[[EvalRequest], str] = lambda r: "a red square", fail_after: int | None = None
    ) -> None:
        self.answer = answer
        self.fail_after = fail_after
        self.seen: list[EvalRequest] = []

    def predict(self, requests: list[EvalRequest]) -> list[str]:
        out = []
        for request in requests:
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise Killed(f"simulated kill after {self.fail_after} items")
            assert request.question.count("<region>") == len(request.regions), request
            self.seen.append(request)
            out.append(self.answer(request))
        return out

    def describe(self) -> dict[str, Any]:
        return {"model": "fake"}


class Killed(BaseException):
    """Stands for SIGKILL/KeyboardInterrupt: not an ordinary model error, so the run stops."""


class FakeJudgeServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol with a scripted reply."""

    def __init__(self, reply: Callable[[list[dict[str, Any]]], str]) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                try:
                    content = server.reply(body["messages"])
                except RuntimeError as exc:  # a scripted server error
                    self.send_error(500, str(exc))
                    return
                payload = json.dumps(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"] + "-served",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def vg_file(root: Path, n: int = 6, bad: bool = False) -> Path:
    """A VG-format file (``vg_val_5000.json``) with n items over two images; optionally 3 bad entries."""
    write_image(root / "images" / "a.png")
    write_image(root / "images" / "b.png", (30, 30, 200))
    entries = [
        {
            "image": [f"{'ab'[i % 2]}.png"],
            "height": SIZE,
            "width": SIZE,
            "caption": f"a red square {i}",
            "boxes": [[8, 8, 8 + i % 3, 16]],
        }
        for i in range(n)
    ]
    if bad:
        entries += [
            {
                "image": ["missing.png"],
                "height": SIZE,
                "width": SIZE,
                "caption": "gone",
                "boxes": [[1, 1, 5, 5]],
            },
            {"image": ["a.png"], "height": SIZE, "width": SIZE, "caption": "no box", "boxes": []},
            {"image": ["a.png"], "height": SIZE, "width": SIZE, "caption": "empty", "boxes": [[4, 4, 0, 0]]},
        ]
    return write_json(root / "vg_val_5000.json", entries)
