"""`pixelrefer demo`: the Gradio web demo (click, box or scribble regions; streaming answers) on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from pixelrefer.cli.common import (
    ModelArgs,
    cli_errors,
    console,
    fail,
    load_pipeline,
    model_options,
)
from pixelrefer.demo.defaults import DEMO_DEFAULTS, DemoDefaults
from pixelrefer.server.settings import DEFAULT_HOST


def demo(
    model_args: ModelArgs,
    host: Annotated[str, typer.Option(help="address to bind")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 7860,
    segmenter: Annotated[str, typer.Option(help="auto (SAM2 if $PIXELREFER_SAM2 is set), classical or sam2")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(help="default answer length", min=1)] = DEMO_DEFAULTS.max_new_tokens,
    temperature: Annotated[float, typer.Option(help="default sampling temperature (0 = greedy)", min=0.0)] = DEMO_DEFAULTS.temperature,
) -> None:
    """Open the web demo: upload an image or video, click/box/scribble regions, ask about them.

    Example: pixelrefer demo --model nano   (then open http://127.0.0.1:7860)
    """
    try:
        from pixelrefer.demo.app import build_demo
    except ImportError as exc:
        fail(1, f"the demo needs the demo extra (pip install 'pixelrefer[demo]'): {exc}")
    with cli_errors():
        from pixelrefer.segment import get_segmenter

        pipeline = load_pipeline(model_args)
        seg = get_segmenter(segmenter, device=pipeline.device)
        blocks = build_demo(pipeline, seg, DemoDefaults(max_new_tokens=max_new_tokens, temperature=temperature))
        console.print(f"demo on http://{host}:{port}")
        blocks.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, show_error=True)


demo = model_options(demo)
