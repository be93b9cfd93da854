"""The web demo builds, and its handlers (load, click, box, scribble, ask, errors) work without a browser."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from interface_scenes import BLUE_POINT, RED_BOX

gr = pytest.importorskip("gradio")

from pixelrefer.demo.app import _guard, build_demo
from pixelrefer.demo.session import DemoController, DemoError, DemoSession
from pixelrefer.segment import get_segmenter


@pytest.fixture(scope="module")
def ctrl(pipeline) -> DemoController:
    return DemoController(pipeline, get_segmenter("classical"))


@pytest.fixture()
def session(ctrl: DemoController, scene_dir: Path) -> DemoSession:
    return ctrl.load(scene_dir / "scene.png")


def test_build_demo_has_the_controls(pipeline) -> None:
    blocks = build_demo(pipeline, get_segmenter("classical"))
    assert isinstance(blocks, gr.Blocks)
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"media-upload", "canvas", "mode", "question", "task", "ask", "answer", "scribble"} <= ids


def test_click_a_point_segments_the_object(ctrl: DemoController, session: DemoSession) -> None:
    message = ctrl.click(session, "point +", *BLUE_POINT)
    assert "region 0" in message
    mask = session.regions[0].resolved.masks[0]
    assert mask.sum() == 400 and mask[BLUE_POINT[1], BLUE_POINT[0]]
    view = ctrl.view(session)
    assert view.shape == (96, 128, 3) and not np.array_equal(view, session.frames[0])
    assert "region 0" in ctrl.describe_regions(session)


def test_box_from_two_clicks_then_new_region_then_undo(ctrl: DemoController, session: DemoSession) -> None:
    x0, y0, x1, y1 = RED_BOX
    assert "first corner" in ctrl.click(session, "box (2 clicks)", x0, y0)
    ctrl.click(session, "box (2 clicks)", x1 - 1, y1 - 1)
    assert session.regions[0].box == [x0, y0, x1, y1]
    ctrl.new_region(session)
    ctrl.click(session, "point +", *BLUE_POINT)
    ctrl.click(session, "point -", 5, 5)
    assert [r.kind for r in session.finished()] == ["box", "points"]
    assert session.regions[1].labels == [1, 0]
    ctrl.undo(session)
    assert len(session.finished()) == 1
    ctrl.clear(session)
    assert session.finished() == []


def test_scribble_from_the_editor_layer(ctrl: DemoController, session: DemoSession) -> None:
    layer = np.zeros((96, 128, 4), np.uint8)
    layer[35:45, 98:112] = (255, 48, 48, 255)
    value = {"background": session.frames[0], "layers": [layer], "composite": None}
    assert "scribble" in ctrl.scribble(session, value)
    assert session.regions[0].resolved.masks[0][40, 105]
    with pytest.raises(DemoError, match="draw"):
        ctrl.scribble(session, {"background": session.frames[0], "layers": [], "composite": None})


def test_ask_streams_growing_text(ctrl: DemoController, session: DemoSession) -> None:
    ctrl.click(session, "point +", *BLUE_POINT)
    pieces = list(ctrl.ask(session, "What is <region>?", "question", max_new_tokens=6, temperature=1.0))
    assert pieces and pieces[-1].strip()
    assert all(b.startswith(a) for a, b in itertools.pairwise(pieces))


def test_task_prompts(ctrl: DemoController, session: DemoSession) -> None:
    ctrl.click(session, "point +", *BLUE_POINT)
    assert ctrl.question_for(session, "", "category").startswith("What is the category of <region>")
    with pytest.raises(DemoError, match="two regions"):
        ctrl.question_for(session, "", "relation")
    ctrl.new_region(session)
    ctrl.click(session, "box (2 clicks)", 30, 20)
    ctrl.click(session, "box (2 clicks)", 79, 59)
    assert ctrl.question_for(session, "", "relation").count("<region>") == 2
    brief = ctrl.question_for(session, "", "brief")
    assert brief.startswith("There are 2 regions") and brief.count("<region>") == 2
    assert ctrl.question_for(session, "Which is bigger?", "question").count("<region>") == 2


def test_user_errors_are_demo_errors(ctrl: DemoController, scene_dir: Path) -> None:
    with pytest.raises(DemoError, match="cannot read"):
        ctrl.load(scene_dir / "corrupt.png")
    with pytest.raises(DemoError, match="cannot read"):
        ctrl.load(scene_dir / "notes.txt")
    with pytest.raises(DemoError, match="upload"):
        ctrl.load(None)
    empty = DemoSession()
    with pytest.raises(DemoError, match="upload"):
        ctrl.click(empty, "point +", 1, 1)
    session = ctrl.load(scene_dir / "scene.png")
    with pytest.raises(DemoError, match="add a region"):
        list(ctrl.ask(session, "What is <region>?", "question"))
    with pytest.raises(DemoError, match="outside"):
        ctrl.click(session, "point +", 500, 500)
    with pytest.raises(gr.Error):
        _guard(ctrl.load)(None)


def test_video_masks_on_every_frame(ctrl: DemoController, scene_dir: Path) -> None:
    session = ctrl.load(scene_dir / "video.mp4")
    assert session.is_video and len(session.frames) >= 3
    ctrl.click(session, "box (2 clicks)", 8, 20)
    ctrl.click(session, "box (2 clicks)", 27, 39)
    masks = session.regions[0].resolved.masks
    assert len(masks) == len(session.frames)
    assert len(ctrl.gallery(session)) == len(session.frames)
    pieces = list(ctrl.ask(session, "", "brief", max_new_tokens=4, temperature=1.0))
    assert pieces[-1]
