"""End-to-end browser test of the web demo: headless Debian chromium driven by Playwright.

Starts ``pixelrefer demo`` on a free 127.0.0.1 port, uploads the scene of ``pixelrefer synth --sample``, draws
each object's box (two clicks in box mode), asks its category, waits for the streamed answer, checks it against
the scene's ground truth, and saves a screenshot of the last one (default ``docs/demo-screenshot.png``).

    python scripts/browser_test.py [--model nano] [--screenshot docs/demo-screenshot.png] [--video]

Needs ``pip install playwright`` (the Python package only; no browser download) and ``apt-get install chromium``.
Exit status 0 when every answer appeared and, for a trained model (not a random ``tiny`` preset), every answer
names the object's category.
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

from pixelrefer.synth.scenes import Box, clearest_object, sample_scene
from pixelrefer.synth.tasks import CATEGORY_PROMPT
from pixelrefer.utils.process import free_port, wait_until_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCENE_SIZE = (240, 320)  # height, width of the video
TARGET = (96, 120)  # x, y of a click inside the video's blue disc
QUESTION = CATEGORY_PROMPT  # the bundled models' category prompt, as the README's first command asks it


def make_scene(path: Path) -> list[tuple[Box, str]]:
    """Write the sample scene; its objects' (box, category), the clearest one (the README's) last."""
    scene = sample_scene()
    Image.fromarray(scene.image).save(path)
    last = clearest_object(scene)
    return [(o.box, o.category) for o in [*(o for o in scene.objects if o is not last), last]]


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


def upload(page, media: Path, timeout_ms: int) -> tuple:
    """Upload a file and wait for the picture; returns the picture's locator and its display scale."""
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
    return image, box["width"] / natural[0]


def upload_and_click(page, media: Path, timeout_ms: int) -> None:
    """Upload a file, click on the target object, wait for its region."""
    image, scale = upload(page, media, timeout_ms)
    image.click(position={"x": TARGET[0] * scale, "y": TARGET[1] * scale})
    page.locator("#regions").get_by_text("region 0").wait_for(timeout=timeout_ms)


def ask(page, timeout_ms: int) -> str:
    """Ask the category question about the current region; the streamed answer once it is done."""
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#ask").click()
    page.wait_for_function(
        "() => { const t = document.querySelector('#answer textarea'); "
        "const s = document.querySelector('#status'); "
        "return t && t.value.trim().length > 0 && s && s.innerText.includes('done'); }",
        timeout=timeout_ms)
    return page.locator("#answer textarea").input_value()


def ask_each_object(page, scene: Path, objects: list[tuple[Box, str]], timeout_ms: int) -> list[tuple[str, str]]:
    """Box each object in turn (box mode: two clicks), ask, clear; (truth, answer) per object."""
    image, scale = upload(page, scene, timeout_ms)
    page.locator("#mode").get_by_text("box (2 clicks)").click()
    results = []
    for (x0, y0, x1, y1), truth in objects:
        image.click(position={"x": x0 * scale, "y": y0 * scale})
        image.click(position={"x": x1 * scale, "y": y1 * scale})
        page.locator("#regions").get_by_text("region 0").wait_for(timeout=timeout_ms)
        page.wait_for_function("() => !document.querySelector('#status').innerText.includes('done')",
                               timeout=timeout_ms)  # the box's own status message replaced the last ask's
        results.append((truth, ask(page, timeout_ms)))
        print(f"{truth}: {results[-1][1]!r}")
        if len(results) < len(objects):
            page.get_by_role("button", name="Clear regions").click()
            page.locator("#regions").get_by_text("No regions yet").wait_for(timeout=timeout_ms)
    return results


def drive_video(page, video: Path, timeout_ms: int) -> int:
    """Replace the media by a video, click the object on frame 0, return how many frames show a mask."""
    page.locator("#media-upload button[aria-label='Clear']").first.click()
    page.locator("#mode").get_by_text("point +").click()
    upload_and_click(page, video, timeout_ms)
    page.locator("#regions").get_by_text(re.compile(r"on [2-9]\d* frames")).wait_for(timeout=timeout_ms)
    return page.locator("#gallery img").count()


def drive(url: str, scene: Path, objects: list[tuple[Box, str]], screenshot: Path, timeout_ms: int,
          video: Path | None = None) -> list[tuple[str, str]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="load", timeout=timeout_ms)
        page.locator("#media-upload").wait_for(timeout=timeout_ms)
        results = ask_each_object(page, scene, objects, timeout_ms)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        if video is not None:
            shown = drive_video(page, video, timeout_ms)
            print(f"video: the region is masked on {shown} gallery frames")
            page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-video.png")), full_page=True)
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nano", help="model for the demo (nano, nano-lite, a checkpoint folder; "
                        "the random tiny preset only checks that answers appear)")
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
        scene = Path(tmp) / "scene.png"
        objects = make_scene(scene)
        server = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            start = time.monotonic()
            wait_until_healthy(server, url, args.timeout, name="the demo")
            print(f"demo up in {time.monotonic() - start:.1f} s at {url}")
            start = time.monotonic()
            video = make_video(Path(tmp) / "clip.mp4") if args.video else None
            results = drive(url, scene, objects, args.screenshot, int(args.timeout * 1000), video)
            print(f"{len(results)} answers after {time.monotonic() - start:.1f} s of browsing")
            print(f"screenshot: {args.screenshot}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    if args.model.startswith("tiny"):
        return 0
    wrong = [(truth, answer) for truth, answer in results if answer.strip().rstrip(".").lower() != truth]
    for truth, answer in wrong:
        print(f"WRONG: {truth} answered {answer!r}")
    print(f"{len(results) - len(wrong)} / {len(results)} objects named right")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
