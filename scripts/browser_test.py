"""End-to-end browser test of the web demo: headless Debian chromium driven by Playwright.

Starts ``pixelrefer demo`` on a free 127.0.0.1 port, uploads a generated scene, clicks a point on an object,
asks, waits for the streamed answer, and saves a screenshot (default ``docs/demo-screenshot.png``).

    python scripts/browser_test.py [--model tiny] [--screenshot docs/demo-screenshot.png]

Needs ``pip install playwright`` (the Python package only; no browser download) and ``apt-get install chromium``.
Exit status 0 when the answer appeared.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixelrefer.utils.process import free_port, wait_until_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCENE_SIZE = (240, 320)  # height, width
TARGET = (96, 120)  # x, y of a click inside the blue disc
QUESTION = "What is the category of <region>? Using only one word or phrase."  # the bundled models' category prompt


def make_scene(path: Path) -> Path:
    """A grey background with a blue disc, a red square and a green bar."""
    h, w = SCENE_SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 215, np.uint8)
    img[(xx - TARGET[0]) ** 2 + (yy - TARGET[1]) ** 2 < 45 ** 2] = (40, 80, 200)
    img[60:150, 190:280] = (205, 40, 40)
    img[190:215, 40:300] = (40, 160, 70)
    Image.fromarray(img).save(path)
    return path


def make_video(path: Path) -> Path:
    """Eight frames of a blue disc moving right, 4 fps."""
    from pixelrefer.media import write_video

    h, w = SCENE_SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(8):
        img = np.full((h, w, 3), 215, np.uint8)
        img[(xx - TARGET[0] - 8 * t) ** 2 + (yy - TARGET[1]) ** 2 < 40 ** 2] = (40, 80, 200)
        frames.append(img)
    return write_video(frames, path, fps=4)


def upload_and_click(page, media: Path, timeout_ms: int) -> None:
    """Upload a file, wait for the picture, click on the target object, wait for its region."""
    page.locator("#media-upload input[type=file]").set_input_files(str(media))
    image = page.locator("#canvas img").first
    image.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function("() => { const i = document.querySelector('#canvas img'); return i && i.naturalWidth > 0; }",
                           timeout=timeout_ms)
    box = image.bounding_box()
    deadline = time.monotonic() + timeout_ms / 1000
    while box is None and time.monotonic() < deadline:  # the previous picture may be being replaced
        time.sleep(0.2)
        box = image.bounding_box()
    if box is None:
        raise TimeoutError("the uploaded picture did not appear")
    natural = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    scale = box["width"] / natural[0]
    image.click(position={"x": TARGET[0] * scale, "y": TARGET[1] * scale})
    page.locator("#regions").get_by_text("region 0").wait_for(timeout=timeout_ms)


def drive_video(page, video: Path, timeout_ms: int) -> int:
    """Replace the media by a video, click the object on frame 0, return how many frames show a mask."""
    page.locator("#media-upload button[aria-label='Clear']").first.click()
    upload_and_click(page, video, timeout_ms)
    page.locator("#regions").get_by_text(re.compile(r"on [2-9]\d* frames")).wait_for(timeout=timeout_ms)
    return page.locator("#gallery img").count()


def drive(url: str, scene: Path, screenshot: Path, timeout_ms: int, video: Path | None = None) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="load", timeout=timeout_ms)
        page.locator("#media-upload").wait_for(timeout=timeout_ms)
        upload_and_click(page, scene, timeout_ms)
        page.locator("#question textarea").fill(QUESTION)
        page.locator("#ask").click()
        page.wait_for_function(
            "() => { const t = document.querySelector('#answer textarea'); "
            "const s = document.querySelector('#status'); "
            "return t && t.value.trim().length > 0 && s && s.innerText.includes('done'); }",
            timeout=timeout_ms)
        answer = page.locator("#answer textarea").input_value()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        if video is not None:
            shown = drive_video(page, video, timeout_ms)
            print(f"video: the region is masked on {shown} gallery frames")
            page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-video.png")), full_page=True)
        browser.close()
    return answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="model for the demo (tiny, nano, or a checkpoint folder)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/demo-screenshot.png"))
    parser.add_argument("--video", action="store_true", help="then also upload a video and check the per-frame masks")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for start-up and for each step")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    temperature = "1.0" if args.model.startswith("tiny") else "0"  # the random tiny model only says "\n" when greedy
    cmd = [sys.executable, "-m", "pixelrefer", "demo", "--model", args.model, "--device", "cpu", "--port", str(port),
           "--max-new-tokens", "24", "--temperature", temperature]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp) / "scene.png")
        server = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            start = time.monotonic()
            wait_until_healthy(server, url, args.timeout, name="the demo")
            print(f"demo up in {time.monotonic() - start:.1f} s at {url}")
            start = time.monotonic()
            video = make_video(Path(tmp) / "clip.mp4") if args.video else None
            answer = drive(url, scene, args.screenshot, int(args.timeout * 1000), video)
            print(f"answer after {time.monotonic() - start:.1f} s of browsing: {answer!r}")
            print(f"screenshot: {args.screenshot}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
