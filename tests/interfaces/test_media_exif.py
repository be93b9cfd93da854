"""A photo with an EXIF orientation tag is seen upright by the API, the server and the demo: a box drawn on the photo
as a viewer shows it lands on the object there."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.regions import Region

SHOWN_HW = (96, 64)  # as a viewer shows it; stored turned a quarter (64 x 96) with Orientation 6
BOX = [8, 60, 40, 88]  # xyxy on the shown photo: below row 64, so outside the stored (sideways) picture


def _rotated_photo() -> bytes:
    shown = np.full((*SHOWN_HW, 3), 230, np.uint8)
    shown[64:84, 12:36] = (200, 30, 30)  # the object, inside BOX
    stored = np.rot90(shown, k=1)  # Orientation 6 means "turn 90 degrees clockwise to show"
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exif") / "photo.png"
    path.write_bytes(_rotated_photo())
    return path


def _object_hit(mask: np.ndarray) -> float:
    return float(mask[64:84, 12:36].mean())


def test_api_reads_the_photo_upright(pipeline, photo: Path) -> None:
    for media in (photo, photo.read_bytes(), Image.open(photo)):
        answer = pipeline.ask(media, [Region.from_box(BOX)], "What is <region>?", GenerationConfig(max_new_tokens=1))
        (mask,) = answer.regions[0].masks.values()
        assert mask.shape == SHOWN_HW and _object_hit(mask) > 0.5


def test_server_decodes_the_upload_upright(pipeline, photo: Path) -> None:
    from pixelrefer.server.inputs import prepare
    from pixelrefer.server.service import ModelService
    from pixelrefer.server.settings import ServerSettings

    got = prepare(ServerSettings(), base64.b64encode(photo.read_bytes()).decode(), [{"type": "box", "box": BOX}])
    assert got.media.size == SHOWN_HW
    (resolved,) = ModelService(pipeline).segment(got.media, got.regions)
    assert _object_hit(resolved.masks[0]) > 0.5


def test_demo_loads_the_photo_upright(pipeline, photo: Path) -> None:
    from pixelrefer.demo.session import DemoController

    ctrl = DemoController(pipeline, pipeline.segmenter)
    session = ctrl.load(photo)
    assert session.frames[0].shape[:2] == SHOWN_HW
    ctrl.click(session, "box (2 clicks)", BOX[0], BOX[1])
    ctrl.click(session, "box (2 clicks)", BOX[2] - 1, BOX[3] - 1)
    assert _object_hit(session.regions[0].resolved.masks[0]) > 0.5
