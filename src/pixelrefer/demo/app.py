"""The Gradio web demo: ``build_demo(pipeline, segmenter)`` returns a ``gr.Blocks`` (launch it yourself).

Upload an image or a video, click points (on / off the object) or two box corners on the picture, or paint a
scribble; each region is segmented at once and drawn over the picture (per frame for videos). Ask a question or
pick a task; the answer streams in. Handlers live in :mod:`pixelrefer.demo.session` and are tested there.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from pixelrefer.demo.defaults import DemoDefaults
from pixelrefer.demo.session import MODES, TASKS, DemoController, DemoError, DemoSession

logger = logging.getLogger(__name__)

INTRO = (
    "# PixelRefer: ask about regions\n"
    "1. Upload an image or a video. 2. Click on an object (**point +**), off it (**point -**), or click two "
    "corners of a **box**; open *Scribble* to paint a region. **New region** starts another one. "
    "3. Ask a question with `<region>` (or none: the regions are named for you) or pick a task."
)


def _editor_value(image: np.ndarray | None) -> dict[str, Any] | None:
    return None if image is None else {"background": image, "layers": [], "composite": image}


def _guard(fn):
    """Show user errors in the page (gr.Error) instead of a silent failure."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DemoError as exc:
            raise gr.Error(str(exc)) from exc

    return wrapper


@dataclass
class Controls:
    """The demo's components (made by :func:`_layout`, wired by :func:`_wire`)."""

    state: Any
    upload: Any
    canvas: Any
    frame: Any
    mode: Any
    new_btn: Any
    undo_btn: Any
    clear_btn: Any
    editor: Any
    scribble_btn: Any
    gallery: Any
    regions_md: Any
    task: Any
    question: Any
    max_tokens: Any
    temperature: Any
    ask_btn: Any
    answer: Any
    status: Any


def _layout(defaults: DemoDefaults) -> Controls:
    state = gr.State(DemoSession())
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=3):
            upload = gr.File(label="Image or video", file_types=["image", "video"], elem_id="media-upload")
            canvas = gr.Image(label="Click to add regions", interactive=False, type="numpy", format="png",
                              elem_id="canvas")
            frame = gr.Slider(0, 1, value=0, step=1, label="Sampled frame", visible=False, elem_id="frame")
            mode = gr.Radio(list(MODES), value=MODES[0], label="A click adds", elem_id="mode")
            with gr.Row():
                new_btn = gr.Button("New region", elem_id="new-region")
                undo_btn = gr.Button("Undo region")
                clear_btn = gr.Button("Clear regions")
            with gr.Accordion("Scribble", open=False):
                editor = gr.ImageEditor(type="numpy", label="Paint over one object", layers=False,
                                        brush=gr.Brush(colors=["#ff3030"], default_size=12), elem_id="scribble")
                scribble_btn = gr.Button("Use the scribble as a region")
            gallery = gr.Gallery(label="Masks per frame", visible=False, columns=8, height=200, elem_id="gallery")
        with gr.Column(scale=2):
            regions_md = gr.Markdown("No regions yet.", elem_id="regions")
            task = gr.Dropdown(list(TASKS), value="question", label="Task", elem_id="task")
            question = gr.Textbox(value="What is <region>?", label="Question (one <region> per region)",
                                  elem_id="question")
            max_tokens = gr.Slider(8, 512, value=defaults.max_new_tokens, step=8, label="Max new tokens")
            temperature = gr.Slider(0.0, 1.5, value=defaults.temperature, step=0.1, label="Temperature (0 = greedy)")
            ask_btn = gr.Button("Ask", variant="primary", elem_id="ask")
            answer = gr.Textbox(label="Answer", lines=6, interactive=False, elem_id="answer")
            status = gr.Markdown("", elem_id="status")
    return Controls(state, upload, canvas, frame, mode, new_btn, undo_btn, clear_btn, editor, scribble_btn, gallery,
                    regions_md, task, question, max_tokens, temperature, ask_btn, answer, status)


def _wire(ctrl: DemoController, c: Controls) -> None:
    region_outputs = [c.state, c.canvas, c.gallery, c.regions_md, c.status]

    def refresh(session: DemoSession, message: str) -> tuple:
        gallery_update = gr.update(value=ctrl.gallery(session) or None, visible=session.is_video)
        return session, ctrl.view(session), gallery_update, ctrl.describe_regions(session), message

    @_guard
    def on_upload(path: str | None) -> tuple:
        if not path:
            return (DemoSession(), None, gr.update(visible=False), None, gr.update(visible=False), "No regions yet.", "", "")
        session = ctrl.load(path)
        n = len(session.frames)
        slider = gr.update(minimum=0, maximum=max(n - 1, 1), value=0, visible=session.is_video)
        kind = f"video, {n} frames" if session.is_video else "image"
        h, w = session.frames[0].shape[:2]
        return (session, ctrl.view(session), slider, _editor_value(session.frames[0]),
                gr.update(value=ctrl.gallery(session) or None, visible=session.is_video),
                ctrl.describe_regions(session), f"loaded {session.name} ({kind}, {w}x{h})", "")

    @_guard
    def on_click(session: DemoSession, click_mode: str, evt: gr.SelectData) -> tuple:
        x, y = evt.index
        return refresh(session, ctrl.click(session, click_mode, float(x), float(y)))

    @_guard
    def on_frame(session: DemoSession, index: float) -> tuple:
        if session.loaded:
            session.frame = int(min(max(index, 0), len(session.frames) - 1))
        return session, ctrl.view(session), _editor_value(session.frames[session.frame] if session.loaded else None)

    def on_ask(session: DemoSession, text: str, task_name: str, tokens: float, temp: float) -> Iterator[tuple]:
        yield "", "thinking …"
        answer_text = ""
        try:
            for answer_text in ctrl.ask(session, text, task_name, int(tokens), float(temp)):
                yield answer_text, "answering …"
        except DemoError as exc:
            raise gr.Error(str(exc)) from exc
        yield answer_text, f"done: {len(session.finished())} region(s)"

    c.upload.change(on_upload, [c.upload],
                    [c.state, c.canvas, c.frame, c.editor, c.gallery, c.regions_md, c.status, c.answer])
    c.canvas.select(on_click, [c.state, c.mode], region_outputs)
    c.frame.release(on_frame, [c.state, c.frame], [c.state, c.canvas, c.editor])
    c.new_btn.click(_guard(lambda s: refresh(s, ctrl.new_region(s))), [c.state], region_outputs)
    c.undo_btn.click(_guard(lambda s: refresh(s, ctrl.undo(s))), [c.state], region_outputs)
    c.clear_btn.click(_guard(lambda s: refresh(s, ctrl.clear(s))), [c.state], region_outputs)
    c.scribble_btn.click(_guard(lambda s, v: refresh(s, ctrl.scribble(s, v))), [c.state, c.editor], region_outputs)
    c.ask_btn.click(on_ask, [c.state, c.question, c.task, c.max_tokens, c.temperature], [c.answer, c.status])


def build_demo(pipeline: Any, segmenter: Any, defaults: DemoDefaults | None = None) -> gr.Blocks:
    """The demo around a loaded :class:`pixelrefer.PixelRefer` and a segmenter (``pixelrefer.segment``)."""
    ctrl = DemoController(pipeline, segmenter)
    with gr.Blocks(title="PixelRefer demo") as blocks:
        _wire(ctrl, _layout(defaults or DemoDefaults()))
    return blocks
