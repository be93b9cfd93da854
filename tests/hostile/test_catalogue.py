"""Run every case of :mod:`catalogue` on its surface and check the answer it gets.

API and codec cases must raise the expected :class:`~pixelrefer.errors.PixelReferError` subclass (or succeed
when ``expect`` is ``None``); CLI cases must exit with the expected code after one ``error:`` line and no
traceback; HTTP cases must get the expected status with a JSON error (and a valid request right after still
gets 200); checkpoint cases must be refused without unpickling anything; data cases must be named by the
validator. The last test checks that nothing was written outside the output folders.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hostile.catalogue import BOX, CASES, SCENE_H, SCENE_W, Case

REPO = Path(__file__).resolve().parents[2]
MARKER = "pickle-ran"  # what a malicious pickle would create if it were ever unpickled


# ------------------------------------------------------------------------------------------------------- artefacts
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour_type: int, row_bytes: int, rows: int | None = None) -> bytes:
    """A PNG of zero pixels; ``rows`` < ``height`` writes only the first rows (the header still declares all)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    raw = (b"\0" * (row_bytes + 1)) * (height if rows is None else rows)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw, 9))
            + _png_chunk(b"IEND", b""))


def _scene() -> np.ndarray:
    img = np.full((SCENE_H, SCENE_W, 3), 225, np.uint8)
    x0, y0, x1, y1 = BOX["box"]
    img[y0:y1, x0:x1] = (200, 40, 40)
    return img


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _truncated_rle() -> dict:
    from pixelrefer.regions import encode_rle

    mask = np.zeros((SCENE_H, SCENE_W), bool)
    mask[::7, ::5] = True  # many runs: a long counts string
    rle = encode_rle(mask)
    return {"size": rle["size"], "counts": rle["counts"][:-3]}


def _video(path: Path, side: int, frames: int = 8, fps: float = 4) -> Path:
    from pixelrefer.media import write_video

    clip = []
    for t in range(frames):
        frame = np.full((side, side, 3), 200, np.uint8)
        frame[side // 4: side // 2, t: t + side // 4] = (200, 40, 40)
        clip.append(frame)
    return write_video(clip, path, fps=fps)


def _save_tiny_checkpoint(folder: Path, pipeline: Any) -> Path:
    pipeline.model.save_pretrained(folder)
    pipeline.tokenizer.save_pretrained(folder)
    return folder


class _Malicious:
    """Unpickling this would create the marker file: a stand-in for code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _weights_file(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


def _corrupt_checkpoint(kind: str, folder: Path) -> Path:
    from safetensors.torch import load_file, save_file

    if kind in ("nan", "inf"):
        state = load_file(str(_weights_file(folder)))
        name = sorted(k for k in state if state[k].is_floating_point())[3]
        state[name] = state[name].clone()
        state[name].view(-1)[0] = float("nan") if kind == "nan" else float("inf")
        save_file(state, str(_weights_file(folder)), metadata={"format": "pt"})
    elif kind == "pickle_bin":
        _weights_file(folder).unlink()
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Malicious(folder / MARKER)}))
    elif kind == "truncated":
        data = _weights_file(folder).read_bytes()
        _weights_file(folder).write_bytes(data[: len(data) // 2])
    elif kind == "bad_config":
        (folder / "config.json").write_text("{not json")
    elif kind == "no_config":
        (folder / "config.json").unlink()
    elif kind == "rng_pickle":
        (folder / "rng.pt").write_bytes(pickle.dumps(_Malicious(folder / MARKER)))
    elif kind == "rng_malformed":
        (folder / "rng.json").write_text(json.dumps({"python": 1, "numpy": {}, "torch": "x"}))
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def pipeline():
    from pixelrefer import PixelRefer

    return PixelRefer.from_pretrained("tiny", device="cpu", dtype="float32", segmenter="classical")


@pytest.fixture(scope="module")
def artefacts(workdir: Path, pipeline: Any) -> dict[str, Any]:
    files = workdir / "files"
    files.mkdir()
    scene = _scene()
    (files / "scene.png").write_bytes(_png_bytes(scene))
    truncated = _truncated_rle()
    (files / "truncated_rle.json").write_text(json.dumps(truncated))
    from hostile.catalogue import RLE_BOMB

    (files / "rle_bomb.json").write_text(json.dumps(RLE_BOMB))
    bomb_png = _png(14000, 14000, 1, 0, 1750)  # ~24 KB of 1-bit PNG declaring 196 M pixels
    assert len(bomb_png) < 40_000
    image_bomb = _png(30000, 30000, 8, 2, 30000 * 3, rows=1)  # header: 900 M RGB pixels; one row of data
    video = _video(files / "video.mp4", 64)
    big_video = _video(files / "big.mp4", 256, frames=2)  # frames over the test server's pixel limit
    corrupt_video = b"\0\0\0\x18ftypmp42" + os.urandom(600)
    ckpt_nan = _corrupt_checkpoint("nan", _save_tiny_checkpoint(files / "ckpt-nan", pipeline))
    b64 = lambda data: base64.b64encode(data).decode()
    return {
        "scene": scene,
        "scene_path": str(files / "scene.png"),
        "scene_b64": b64(_png_bytes(scene)),
        "scene_data_url": "data:image/png;base64," + b64(_png_bytes(scene)),
        "truncated_rle": truncated,
        "truncated_rle_path": str(files / "truncated_rle.json"),
        "rle_bomb_path": str(files / "rle_bomb.json"),
        "mask_png_bomb_b64": b64(bomb_png),
        "image_bomb_bytes": image_bomb,
        "image_bomb_b64": b64(image_bomb),
        "missing_path": str(files / "nope.png"),
        "corrupt_png_bytes": _png_bytes(scene)[:80],
        "video_path": str(video),
        "big_video_b64": b64(big_video.read_bytes()),
        "corrupt_video_b64": b64(corrupt_video),
        "frame_list": [scene, scene, scene],
        "frame_list_pil": [Image.fromarray(scene)] * 2,
        "frame_list_mixed": [scene, scene[:50]],
        "frames_bad_stamps": ([scene, scene], [0.0]),
        "ckpt_nan": str(ckpt_nan),
        "out": str(workdir / "out"),
        "train_out": f"output_dir={workdir / 'train-out'}",
        "tiny": ["--model", "tiny", "--device", "cpu", "--max-new-tokens", "2"],
    }


def _resolve(value: Any, artefacts: dict[str, Any]) -> Any:
    """Replace ``"@name"`` strings (anywhere in the input) by their artefact; list artefacts splice into lists."""
    if isinstance(value, str) and value.startswith("@") and value[1:] in artefacts:
        return artefacts[value[1:]]
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            resolved = _resolve(item, artefacts)
            out.extend(resolved if isinstance(item, str) and item == "@tiny" else [resolved])
        return out
    if isinstance(value, dict):
        return {k: _resolve(v, artefacts) for k, v in value.items()}
    return value


def _cases(surface: str) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in CASES if c.surface == surface]


def _check_raised(case: Case, call) -> None:
    if case.expect is None:
        call()
        return
    with pytest.raises(case.expect) as info:
        call()
    assert case.match in str(info.value), str(info.value)
    assert "\n" not in str(info.value).strip() or case.surface == "data"


# ------------------------------------------------------------------------------------------------------- catalogue
def test_catalogue_is_large_and_covers_every_surface() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 60
    assert {c.surface for c in CASES} == {"api", "codec", "cli", "http", "checkpoint", "data"}
    assert sum(c.issue for c in CASES) >= 30


@pytest.mark.parametrize("case", _cases("api"))
def test_api(case: Case, pipeline: Any, artefacts: dict[str, Any]) -> None:
    from pixelrefer import GenerationConfig, PixelRefer
    from pixelrefer.limits import limits_for, use_limits

    inp = _resolve(copy.deepcopy(case.input), artefacts)
    call_name = inp.pop("call")
    limits = limits_for("api", **inp.pop("limits", {}))
    media = inp.get("media", artefacts["scene"])
    regions = inp.get("regions", [BOX])
    generation = GenerationConfig(max_new_tokens=2)
    calls = {
        "ask": lambda: pipeline.ask(media, regions, inp.get("question", "What is <region>?"), generation),
        "describe_each": lambda: pipeline.describe_each(media, regions, question=inp.get("question"),
                                                        generation=generation),
        "ask_batch": lambda: pipeline.ask_batch([]),
        "from_pretrained": lambda: PixelRefer.from_pretrained(inp["path"], device="cpu", segmenter=None),
        "generation": lambda: GenerationConfig(max_new_tokens=inp["max_new_tokens"]),
    }
    with use_limits(limits):
        _check_raised(case, calls[call_name])


@pytest.mark.parametrize("case", _cases("codec"))
def test_codec(case: Case, artefacts: dict[str, Any]) -> None:
    from pixelrefer.regions import Region, codecs

    inp = _resolve(copy.deepcopy(case.input), artefacts)
    calls = {
        "region": lambda: Region.from_dict(inp["data"]),
        "resolve": lambda: Region.from_dict(inp["data"]).resolve(SCENE_H, SCENE_W, frames=[artefacts["scene"]]),
        "decode_rle": lambda: codecs.decode_rle(inp["rle"]),
    }
    _check_raised(case, calls[inp["call"]])


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    """The real entry point (``app()``, as the console script calls it) in this process."""
    from pixelrefer.cli.main import app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        app(args)
    code = info.value.code
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", _cases("cli"))
def test_cli(case: Case, artefacts: dict[str, Any], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    code, out, err = _run_cli(_resolve(case.input["args"], artefacts))
    assert code == case.expect, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert case.match in lines[0], err


def test_cli_console_script_gives_one_line_and_exit_2(workdir: Path, artefacts: dict[str, Any]) -> None:
    """The same through a real process: the installed console script, argument parsing included."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    scene = str(workdir / "files" / "scene.png")
    for args, match in ((["synth", "--out", str(workdir / "o"), "--video-fraction", "2"], "video_fraction"),
                        (["synth", "--out", str(workdir / "o"), "--n-train", "abc"], "--n-train"),
                        (["ask", scene, b"What is <region>? \xff".decode("utf-8", "surrogateescape"),
                          "--box", "30,20,80,60", "--model", "tiny"], "invalid character")):
        proc = subprocess.run([str(Path(sys.executable).parent / "pixelrefer"), *args], capture_output=True,
                              text=True, env=env, cwd=workdir, timeout=120, check=False, errors="replace")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("error:") == 1 and match in proc.stderr


@pytest.fixture(scope="module")
def http(pipeline: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from pixelrefer.server import ServerSettings, create_app

    settings = ServerSettings(max_queue=2, max_new_tokens=2, max_upload_bytes=512 * 1024, max_video_frames=4,
                              max_image_pixels=200 * 200, request_timeout_s=60)
    with TestClient(create_app(pipeline, settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("case", _cases("http"))
def test_http(case: Case, http: Any, artefacts: dict[str, Any]) -> None:
    inp = _resolve(copy.deepcopy(case.input), artefacts)
    if "json" in inp:  # json.dumps escapes lone surrogates, which httpx's own encoder refuses
        content, headers = json.dumps(inp["json"]).encode(), {"content-type": "application/json"}
    else:
        content, headers = inp["content"], inp["headers"]
    response = http.post(inp["path"], content=content, headers=headers)
    assert response.status_code == case.expect, response.text
    error = response.json()["error"]
    assert case.match in error["message"], error
    assert "/tmp" not in error["message"] and "pixelrefer-upload" not in error["message"], error
    valid = http.post("/v1/ask", json={"media": {"data": artefacts["scene_b64"]}, "regions": [BOX],
                                       "question": "What is <region>?", "max_new_tokens": 2})
    assert valid.status_code == 200, valid.text


@pytest.mark.parametrize("case", _cases("checkpoint"))
def test_checkpoint(case: Case, pipeline: Any, tmp_path: Path) -> None:
    from pixelrefer import PixelRefer
    from pixelrefer.train.loop import read_rng_state, rng_state, set_rng_state

    folder = _save_tiny_checkpoint(tmp_path / "ckpt", pipeline)
    kind = case.input["make"]
    if kind.startswith("rng"):
        if kind == "rng_malformed":
            (folder / "rng.json").write_text(json.dumps(rng_state()))
        _corrupt_checkpoint(kind, folder)
        _check_raised(case, lambda: set_rng_state(read_rng_state(folder)))
    else:
        _corrupt_checkpoint(kind, folder)
        _check_raised(case, lambda: PixelRefer.from_pretrained(folder, device="cpu", segmenter=None))
    assert not (folder / MARKER).exists(), "a pickle was unpickled"


def _dataset(root: Path, case: Case, artefacts: dict[str, Any]) -> Path:
    from pixelrefer.regions import encode_rle

    inp = _resolve(copy.deepcopy(case.input), artefacts)
    image = np.zeros((64, 64, 3), np.uint8)
    Image.fromarray(image).save(root / "a.png")
    mask = np.zeros((64, 64), bool)
    mask[::3, 10:40] = True
    rle = encode_rle(mask)
    sample: dict[str, Any] = {
        "id": "s0", "image": "a.png", "height": 64, "width": 64, "masks": [rle],
        "conversations": [{"from": "human", "value": inp.get("question", "<image>\nWhat is <region>?")},
                          {"from": "gpt", "value": inp.get("answer", "a square")}],
    }
    if "mask" in inp:
        cut = inp["mask"].get("rle_counts_cut") if isinstance(inp["mask"], dict) else None
        sample["masks"] = [{"size": rle["size"], "counts": rle["counts"][:-cut]} if cut else inp["mask"]]
    if inp.get("drop_size"):
        del sample["height"], sample["width"]
    for key in ("height", "image"):
        if key in inp:
            sample[key] = inp[key]
    if "image_file" in inp:
        (root / "bomb.png").write_bytes(inp["image_file"])
        sample["image"] = "bomb.png"
    file = root / "data.json"
    if "raw" in inp:
        file.write_bytes(inp["raw"])
    else:
        file.write_text(json.dumps([sample]))
    return file


@pytest.mark.parametrize("case", _cases("data"))
def test_data(case: Case, artefacts: dict[str, Any], tmp_path: Path) -> None:
    from pixelrefer.train.data import validate_dataset

    file = _dataset(tmp_path, case, artefacts)
    _check_raised(case, lambda: validate_dataset(file))


def test_valid_dataset_passes(artefacts: dict[str, Any], tmp_path: Path) -> None:
    """The base sample of the data cases is valid, so each case fails for its own reason."""
    from pixelrefer.train.data import validate_dataset

    assert validate_dataset(_dataset(tmp_path, Case("ok", "data", {}, None), artefacts)).samples == 1


# ------------------------------------------------------------------------------------------------------- side effects
def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module", autouse=True)
def _watch_writes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Temporary files of the whole module go to one folder; the repo's status is recorded before."""
    temp = tmp_path_factory.mktemp("tempdir")
    previous = tempfile.tempdir
    tempfile.tempdir = str(temp)
    state = {"temp": temp, "git": _git_status()}
    yield state
    tempfile.tempdir = previous


def test_nothing_written_outside_the_output_folders(_watch_writes: dict[str, Any], workdir: Path) -> None:
    """Runs last: the repo is unchanged, temporary files are gone, and the working folder (every command's cwd)
    holds only the artefacts and the output folders the cases named."""
    assert _git_status() == _watch_writes["git"]
    left = [p for p in _watch_writes["temp"].iterdir() if not p.name.startswith("torchinductor_")]  # torch's cache
    assert not left, left
    assert {p.name for p in workdir.iterdir()} <= {"files", "out", "train-out", "o"}
    assert not (workdir / "runs").exists()


def test_nothing_unpickles_untrusted_data() -> None:
    """Nothing in the code, tests, benchmarks or scripts unpickles: no weights-only-off flag, no pickle loads,
    every torch load restricted to weights."""
    unsafe = ("weights_only" + "=False", "pickle" + ".load", "torch" + ".load(")
    for folder in ("src", "tests", "benchmarks", "scripts"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                hits = [u for u in unsafe if u in line]
                if hits == ["torch" + ".load("] and "weights_only=True" in line:
                    continue
                assert not hits, f"{path.relative_to(REPO)}:{number}: {line.strip()}"


def test_question_limit_is_checked_without_reading_the_text() -> None:
    """A 100 KB (and a 100 MB) question is refused by its length alone, long before any tokeniser."""
    import time

    from pixelrefer.errors import LimitError
    from pixelrefer.limits import check_question
    from pixelrefer.model.tokenizer import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    for text in ("a" * 100_000, "a" * 100_000_000, b"a" * 100_000_000):
        start = time.perf_counter()
        with pytest.raises(LimitError, match="max_question_chars"):
            check_question(text, tokenizer)
        assert time.perf_counter() - start < 0.05
