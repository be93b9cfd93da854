"""The HTTP server started for real (uvicorn on a free 127.0.0.1 port) and exercised over HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from interface_scenes import BLUE_POINT, RED_BOX, data_url, make_scene, png_bytes
from live_server import assert_error, running
from PIL import Image

from pixelrefer.server import ServerSettings, create_app

BOX = {"type": "box", "box": list(RED_BOX)}
SETTINGS = ServerSettings(max_queue=2, max_new_tokens=4, max_upload_bytes=512 * 1024, max_video_seconds=30,
                          max_video_frames=4, request_timeout_s=60)


@pytest.fixture(scope="module")
def url(pipeline) -> Iterator[str]:
    with running(create_app(pipeline, SETTINGS)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def scene_png() -> bytes:
    return png_bytes(make_scene())


def ask_body(png: bytes, regions: list | None = None, question: str = "What is <region>?", **extra) -> dict:
    return {"media": {"data": base64.b64encode(png).decode()}, "regions": [BOX] if regions is None else regions,
            "question": question, **extra}


def test_health_models_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/v1/models").json()["data"][0]["id"] == "pixelrefer"
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/ask", "/v1/ask/upload", "/v1/describe", "/v1/segment", "/v1/chat/completions", "/health"):
        assert path in paths


def test_ask_json_returns_answer_and_masks(client: httpx.Client, scene_png: bytes) -> None:
    points = {"type": "points", "points": [list(BLUE_POINT)]}
    response = client.post("/v1/ask", json=ask_body(scene_png, [BOX, points], "Compare <region> with <region>."))
    assert response.status_code == 200, response.text
    out = response.json()
    regions = out["answer"]["regions"]
    assert [r["kind"] for r in regions] == ["box", "points"]
    assert regions[0]["bbox"]["0"] == list(RED_BOX)
    assert regions[1]["bbox"]["0"] == [95, 30, 115, 50]  # the classical segmenter found the blue square
    assert out["answer"]["completion_tokens"] >= 1


def test_upload_with_rgba_alpha_mask_and_describe(client: httpx.Client, scene_png: bytes) -> None:
    rgba = np.zeros((96, 128, 4), np.uint8)
    rgba[30:50, 95:115, 3] = 255
    mask_png = png_bytes(rgba)
    response = client.post("/v1/ask/upload", files=[("file", ("scene.png", scene_png, "image/png")),
                                                    ("masks", ("mask.png", mask_png, "image/png"))],
                           data={"question": "What is <region>?", "regions": "[]"})
    assert response.status_code == 200, response.text
    assert response.json()["answer"]["regions"][0]["area"]["0"] == 400
    polygon = {"type": "polygon", "polygons": [[10, 70, 40, 70, 40, 90]]}
    response = client.post("/v1/describe", json={"media": {"data": data_url(scene_png)}, "regions": [BOX, polygon],
                                                  "task": "category"})
    assert response.status_code == 200, response.text
    assert len(response.json()["answers"]) == 2


def test_base64_jpeg_starting_with_a_slash_is_media_not_a_path(client: httpx.Client) -> None:
    buf = io.BytesIO()
    Image.fromarray(make_scene()).save(buf, "JPEG", quality=95)
    body = ask_body(buf.getvalue())
    assert body["media"]["data"].startswith("/9j/")
    assert client.post("/v1/ask", json=body).status_code == 200


def test_image_whose_own_alpha_is_the_region(client: httpx.Client) -> None:
    rgba = np.concatenate([make_scene(), np.full((96, 128, 1), 0, np.uint8)], axis=2)
    rgba[20:60, 30:80, 3] = 255
    response = client.post("/v1/ask", json=ask_body(png_bytes(rgba), regions=[]))
    assert response.status_code == 200, response.text
    assert response.json()["answer"]["regions"][0]["bbox"]["0"] == list(RED_BOX)


def test_segment_returns_rle(client: httpx.Client, scene_png: bytes) -> None:
    from pixelrefer.regions import decode_rle

    response = client.post("/v1/segment/upload", files={"file": ("s.png", scene_png, "image/png")},
                           data={"regions": json.dumps([{"type": "points", "points": [list(BLUE_POINT)]}])})
    assert response.status_code == 200, response.text
    rle = response.json()["regions"][0]["masks"]["0"]
    assert int(decode_rle(rle).sum()) == 400


def test_video_upload(client: httpx.Client, scene_dir: Path) -> None:
    video = (scene_dir / "video.mp4").read_bytes()
    response = client.post("/v1/ask/upload", files={"file": ("v.mp4", video, "video/mp4")},
                           data={"question": "What is <region>?", "regions": json.dumps([{**BOX, "box": [8, 20, 28, 40]}])})
    assert response.status_code == 200, response.text
    assert response.json()["media"] == "video"


def test_region_frame_is_a_source_frame(client: httpx.Client, tmp_path: Path) -> None:
    """A region's "frame" counts source frames, as the CLI's --frame: 40 source frames, 4 sampled; frame 13 goes
    on the sampled frame nearest it, and the response reports that frame's source index. Past the end: 422."""
    from pixelrefer.media import load_media, write_video

    frames = [np.full((48, 48, 3), 40 + 5 * t, np.uint8) for t in range(40)]
    video = write_video(frames, tmp_path / "long.mp4", fps=10)
    clip = load_media(video, SETTINGS.sampling)
    sampled = clip.sampled_index(13)
    assert clip.num_frames == 4 and sampled != 13  # the two meanings differ on this clip
    media = {"data": base64.b64encode(video.read_bytes()).decode()}
    region = {"type": "box", "box": [5, 10, 30, 30], "frame": 13}
    segmented = client.post("/v1/segment", json={"media": media, "regions": [region]})
    assert segmented.status_code == 200, segmented.text
    out = segmented.json()["regions"][0]
    assert out["frames"] == [sampled] and out["source_frames"] == [clip.frame_indices[sampled]]
    asked = client.post("/v1/ask", json={"media": media, "question": "What is <region>?", "regions": [region]})
    assert asked.status_code == 200, asked.text
    assert asked.json()["answer"]["regions"][0]["source_frames"] == [clip.frame_indices[sampled]]
    past = client.post("/v1/segment", json={"media": media, "regions": [{**region, "frame": 40}]})
    assert_error(past, 422, "invalid_region")
    assert "outside the video" in past.json()["error"]["message"]


def test_sse_streaming(client: httpx.Client, scene_png: bytes) -> None:
    events = []
    with client.stream("POST", "/v1/ask", json=ask_body(scene_png, stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["done"] is True and final["regions"][0]["bbox"]["0"] == list(RED_BOX)
    assert all("text" in json.loads(e) for e in events[:-2])


def test_openai_client(url: str, scene_png: bytes) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    content = [
        {"type": "image_url", "image_url": {"url": data_url(scene_png)}},
        {"type": "region", "region": BOX},
        {"type": "text", "text": "What is <region>?"},
    ]
    completion = client.chat.completions.create(model="pixelrefer", messages=[{"role": "user", "content": content}],
                                                max_tokens=4)
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage.completion_tokens >= 1 and completion.usage.prompt_tokens > 0
    # regions through extra_body; streamed
    chunks = list(client.chat.completions.create(
        model="pixelrefer", stream=True, max_tokens=4, extra_body={"regions": [BOX]},
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [content[0], {"type": "text", "text": "Describe <region>."}]}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("make_request", "status", "kind"),
    [
        (lambda png: ("/v1/ask", {"json": ask_body(b"hello, not media")}), 415, "unsupported_media_type"),
        (lambda png: ("/v1/ask", {"json": ask_body(png[:100])}), 400, "invalid_media"),
        (lambda png: ("/v1/ask", {"json": ask_body(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)}), 400, "invalid_media"),
        (lambda png: ("/v1/ask", {"json": {**ask_body(png), "media": {"data": "file:///etc/passwd"}}}), 400,
         "unsupported_media_source"),
        (lambda png: ("/v1/ask", {"json": {**ask_body(png), "media": {"data": "/etc/passwd"}}}), 400,
         "unsupported_media_source"),
        (lambda png: ("/v1/ask", {"json": {**ask_body(png), "media": {"data": "%%%not base64"}}}), 400, "invalid_media"),
        (lambda png: ("/v1/ask", {"json": ask_body(png, [{"type": "box", "box": [300, 200, 400, 260]}])}), 422,
         "invalid_region"),
        (lambda png: ("/v1/ask", {"json": ask_body(png, [{"type": "blob"}])}), 422, "invalid_region"),
        (lambda png: ("/v1/ask", {"json": ask_body(png, [BOX, BOX])}), 400, "invalid_prompt"),
        (lambda png: ("/v1/ask/upload", {"files": {"file": ("s.png", png)},
                                         "data": {"question": "q", "regions": "[{\"type\": \"box\""}}), 400,
         "invalid_region_json"),
        (lambda png: ("/v1/ask", {"content": b"{not json", "headers": {"content-type": "application/json"}}), 422,
         "invalid_request"),
        (lambda png: ("/v1/ask", {"json": {"media": {"data": "x"}}}), 422, "invalid_request"),
        (lambda png: ("/v1/describe", {"json": {"media": {"data": data_url(png)}, "regions": [BOX], "task": "poem"}}),
         400, "invalid_prompt"),
        (lambda png: ("/v1/ask", {"json": ask_body(png, max_new_tokens=10**6)}), 400, "invalid_request"),
        (lambda png: ("/v1/chat/completions", {"json": {"model": "pixelrefer", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                         {"type": "text", "text": "hi"}]}]}}), 400, "unsupported_media_source"),
        (lambda png: ("/v1/chat/completions", {"json": {"model": "pixelrefer", "messages": [
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}}), 400, "unsupported_content"),
        (lambda png: ("/v1/chat/completions", {"json": {"model": "no-such-model", "messages": [
            {"role": "user", "content": "hi"}]}}), 404, "model_not_found"),
    ],
)
def test_bad_input_gets_json_4xx_and_server_keeps_serving(client: httpx.Client, scene_png: bytes, make_request,
                                                          status: int, kind: str) -> None:
    path, kwargs = make_request(scene_png)
    assert_error(client.post(path, **kwargs), status, kind)
    assert client.get("/health").json()["status"] == "ok"


def test_huge_upload_is_refused(client: httpx.Client, scene_png: bytes) -> None:
    big = np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)
    assert_error(client.post("/v1/ask/upload", files={"file": ("big.png", png_bytes(big))},
                             data={"question": "What is <region>?", "regions": json.dumps([BOX])}), 413)
    assert_error(client.post("/v1/ask", json=ask_body(png_bytes(big))), 413, "payload_too_large")
    chunks = (b"x" * 65536 for _ in range(32))  # 2 MiB without a Content-Length (chunked)
    assert_error(client.post("/v1/ask", content=chunks, headers={"content-type": "application/json"}), 413,
                 "payload_too_large")
    assert client.post("/v1/ask", json=ask_body(scene_png)).status_code == 200


def test_video_over_the_duration_limit(pipeline, scene_dir: Path) -> None:
    settings = ServerSettings(max_video_seconds=1.0, max_new_tokens=2)
    with running(create_app(pipeline, settings)) as base:
        video = (scene_dir / "video.mp4").read_bytes()
        response = httpx.post(f"{base}/v1/ask/upload", files={"file": ("v.mp4", video)},
                              data={"question": "What is <region>?", "regions": json.dumps([BOX])}, timeout=60)
        assert_error(response, 413, "video_too_long")


def test_concurrency_beyond_the_queue_gets_429_then_recovers(url: str, client: httpx.Client, scene_png: bytes) -> None:
    """Twelve simultaneous requests against one running + two queued slots: some are refused with 429."""
    body = ask_body(scene_png, max_new_tokens=48)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
            return await asyncio.gather(*[ac.post("/v1/ask", json=body) for _ in range(12)])

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 429}, codes
    assert 200 in codes and 429 in codes, codes
    for r in responses:
        if r.status_code == 429:
            assert_error(r, 429, "queue_full")
            assert r.headers["retry-after"] == "1"
    assert client.post("/v1/ask", json=ask_body(scene_png)).status_code == 200


def test_concurrent_requests_within_the_queue_are_all_answered_with_their_own_regions(url: str, scene_png: bytes) -> None:
    regions = [BOX, {"type": "points", "points": [list(BLUE_POINT)]}, {"type": "polygon", "polygons": [[10, 70, 40, 70, 40, 90]]}]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as ac:
            return await asyncio.gather(*[ac.post("/v1/ask", json=ask_body(scene_png, [r])) for r in regions])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200, 200, 200]
    kinds = [r.json()["answer"]["regions"][0]["kind"] for r in responses]
    assert kinds == ["box", "points", "polygon"]


def test_timeout_504_and_shutdown_503(pipeline, scene_png: bytes) -> None:
    app = create_app(pipeline, ServerSettings(max_new_tokens=2, request_timeout_s=0.5, max_queue=4))
    release = threading.Event()
    with running(app) as base:
        app.state.worker.submit(lambda: release.wait(20))  # hold the model thread
        assert_error(httpx.post(f"{base}/v1/ask", json=ask_body(scene_png), timeout=30), 504, "timeout")
        release.set()
        assert httpx.post(f"{base}/v1/ask", json=ask_body(scene_png), timeout=30).status_code == 200
        app.state.worker.close()
        assert_error(httpx.post(f"{base}/v1/ask", json=ask_body(scene_png), timeout=30), 503, "shutting_down")
        assert httpx.get(f"{base}/health").json()["status"] == "shutting_down"


def test_default_bind_is_loopback() -> None:
    import inspect

    from pixelrefer.cli.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
