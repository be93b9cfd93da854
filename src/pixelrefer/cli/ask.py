"""`pixelrefer ask` / `pixelrefer describe`: questions about regions of an image or a video.

Thin over the predictor (:class:`pixelrefer.PixelRefer`): the options are parsed by :mod:`pixelrefer.cli.common`,
the predictor resolves the regions once and returns the masks it used with the answer, which the output reports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pixelrefer.cli.common import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    REGION_ORDER,
    FpsOpt,
    JsonOpt,
    MaxFramesOpt,
    ModelArgs,
    RegionArgs,
    TokensOpt,
    cli_errors,
    console,
    model_options,
    prepare,
    region_options,
)
from pixelrefer.cli.remote import SERVER_ENV
from pixelrefer.constants import DEFAULT_ANSWER_TOKENS

if TYPE_CHECKING:  # media and the model stack (torch, transformers) are imported only when a command runs
    from pixelrefer.inference.api import Answer
    from pixelrefer.media import Media
    from pixelrefer.regions import Region, ResolvedRegion

ServerOpt = Annotated[str | None, typer.Option(
    "--server", envvar=SERVER_ENV, help=(
        "ask a running `pixelrefer serve` at this URL (e.g. http://127.0.0.1:8000) instead of loading a model here: "
        "starts in a fraction of a second; the server's model and video sampling are used"))]
OverlayOpt = Annotated[Path | None, typer.Option(
    "--overlay", help="write the regions drawn on the media (.png; .gif/.mp4 for every video frame)")]


def write_overlay(path: Path, media: Media, resolved: list[ResolvedRegion]) -> Path:
    """Draw the regions: one PNG (the first annotated frame for a video) or every frame as .gif/.mp4."""
    from pixelrefer.viz import overlay, overlay_frames, save_overlay

    if not media.is_video:
        return save_overlay(overlay(media.frames[0], [r.masks.get(0) for r in resolved]), path)
    if path.suffix.lower() in (".gif", ".mp4", ".webm", ".avi", ".mkv", ".mov"):
        return save_overlay(overlay_frames(media.frames, resolved), path)
    first = min((f for r in resolved for f in r.masks), default=0)
    return save_overlay(overlay(media.frames[first], [r.masks.get(first) for r in resolved]), path)


def region_summary(index: int, region: Region, resolved: ResolvedRegion,
                   source_frames: list[int] | None = None) -> dict[str, Any]:
    """A region as the answer used it: its sampled frames (and their source frame indices on video), area, box."""
    import numpy as np

    frame = resolved.frames[0] if resolved.frames else 0
    mask = resolved.masks.get(frame)
    ys, xs = np.nonzero(mask) if mask is not None else ([], [])
    bbox = [int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1] if len(xs) else None
    out = {"index": index, "kind": region.kind, "frames": resolved.frames,
           "area": int(np.count_nonzero(mask)) if mask is not None else 0, "bbox": bbox}
    if source_frames is not None:
        out["source_frames"] = [source_frames[f] for f in resolved.frames]
    return out


def ask(
    media: Annotated[Path, typer.Argument(help="image or video file (or a folder of frames)")],
    question: Annotated[str, typer.Argument(help="question with one <region> per region, e.g. 'What is <region>?'")],
    region_args: RegionArgs,
    model_args: ModelArgs,
    max_new_tokens: TokensOpt = DEFAULT_ANSWER_TOKENS,
    stream: Annotated[bool, typer.Option("--stream", help="print the answer while it is generated (not with --json)")] = False,
    as_json: JsonOpt = False,
    overlay_path: OverlayOpt = None,
    fps: FpsOpt = DEFAULT_FPS,
    max_frames: MaxFramesOpt = DEFAULT_MAX_FRAMES,
    server: ServerOpt = None,
) -> None:
    """Ask a question about regions of an image or a video.

    The <region> placeholders follow the regions in this order: {order}. On a video, --frame is a source frame
    index; the sampled frame it maps to is reported. Exit codes: 2 bad input, 3 model/checkpoint error.

    Example: pixelrefer ask scene.png "What is <region>?" --box 30,20,80,60 --overlay regions.png
    """
    if server:
        with cli_errors():
            _ask_server(server, media, question, region_args, max_new_tokens, stream, as_json, overlay_path,
                        (fps, max_frames))
        return
    from pixelrefer.processing.prompts import compose_question

    with cli_errors():
        compose_question(question, 0)  # the text's limits and control tokens, before any decoding or loading
        pipeline, clip, region_list, position = prepare(media, region_args, model_args, fps, max_frames)
        from pixelrefer.engines.generation import GenerationConfig

        text = compose_question(question, len(region_list))
        generation = GenerationConfig(max_new_tokens=max_new_tokens)
        start = time.perf_counter()
        if stream and not as_json:
            with console.status("Segmenting regions …"):
                pieces = pipeline.stream(clip, region_list, text, generation)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            answers, resolved = None, pieces.regions
        else:
            answers = [pipeline.ask(clip, region_list, text, generation)]
            resolved = answers[0].regions
        latency = time.perf_counter() - start
        if overlay_path is not None:
            console.print(f"overlay written to {write_overlay(overlay_path, clip, resolved)}", style="dim")
        if answers is not None:
            _report(media, text, region_list, answers, latency, as_json, per_region=False,
                    frame=(region_args.frame, position))


def _ask_server(server: str, media: Path, question: str, region_args: RegionArgs, max_new_tokens: int, stream: bool,
                as_json: bool, overlay_path: Path | None, sampling: tuple[float | None, int]) -> None:
    """The thin-client path (:mod:`pixelrefer.cli.remote`): no model stack is imported."""
    from pixelrefer.cli.common import region_json
    from pixelrefer.cli.remote import remote_ask

    refused = [name for name, given in (("--stream", stream), ("--overlay", overlay_path is not None),
                                        ("--fps/--max-frames", sampling != (DEFAULT_FPS, DEFAULT_MAX_FRAMES))) if given]
    if refused:
        raise typer.BadParameter(f"{', '.join(refused)} cannot be used with --server (the server samples videos "
                                 "by its own settings and returns no overlay)")
    remote_ask(server, media, question, region_json(region_args), max_new_tokens, as_json, region_args.frame)


def describe(
    media: Annotated[Path, typer.Argument(help="image or video file (or a folder of frames)")],
    region_args: RegionArgs,
    model_args: ModelArgs,
    task: Annotated[str, typer.Option(help="category, part_category, brief, detailed, video_brief, video_detailed")] = "brief",
    max_new_tokens: TokensOpt = DEFAULT_ANSWER_TOKENS,
    as_json: JsonOpt = False,
    overlay_path: OverlayOpt = None,
    fps: FpsOpt = DEFAULT_FPS,
    max_frames: MaxFramesOpt = DEFAULT_MAX_FRAMES,
) -> None:
    """Describe each region separately (one answer per region; the media is encoded once).

    Example: pixelrefer describe scene.png --box 30,20,80,60 --point 100,40 --task brief
    """
    from pixelrefer.processing.prompts import compose_question, task_prompt

    with cli_errors():
        compose_question(None, 1, task)
        pipeline, clip, region_list, position = prepare(media, region_args, model_args, fps, max_frames)
        if not region_list:
            raise typer.BadParameter("describe needs at least one region (--box, --point, --mask, ...)")
        from pixelrefer.engines.generation import GenerationConfig

        start = time.perf_counter()
        answers = pipeline.describe_each(clip, region_list, task=task, generation=GenerationConfig(max_new_tokens=max_new_tokens))
        latency = time.perf_counter() - start
        if overlay_path is not None:
            resolved = [r for a in answers for r in a.regions]
            console.print(f"overlay written to {write_overlay(overlay_path, clip, resolved)}", style="dim")
        _report(media, task_prompt(task), region_list, answers, latency, as_json, per_region=True,
                frame=(region_args.frame, position))


ask.__doc__ = (ask.__doc__ or "").replace("{order}", REGION_ORDER)
ask = model_options(region_options(ask))
describe = model_options(region_options(describe))


def _report(media: Path, question: str, regions: list[Region], answers: list[Answer], latency: float, as_json: bool,
            per_region: bool, frame: tuple[int, int]) -> None:
    """Print the answers; ``--json`` also reports the masks each answer used and, on a video, the sampled frame
    that ``--frame`` (a source frame) mapped to."""
    if as_json:
        resolved = [r for a in answers for r in a.regions] if per_region else answers[0].regions
        source_frames = answers[0].source_frames
        out: dict[str, Any] = {
            "media": str(media), "question": question, "latency_s": round(latency, 3),
            "regions": [region_summary(i, r, m, source_frames) for i, (r, m) in enumerate(zip(regions, resolved))],
            "answers": [{"region": i if per_region else None, "text": a.text, "completion_tokens": len(a.token_ids)}
                        for i, a in enumerate(answers)],
        }
        if source_frames is not None:
            out["frame"] = {"source": frame[0], "sampled": frame[1], "sampled_source": source_frames[frame[1]]}
        print(json.dumps(out, ensure_ascii=False))
        return
    for index, answer in enumerate(answers):
        prefix = f"[region {index}] " if per_region else ""
        print(f"{prefix}{answer.text}" if answer.text else f"{prefix}(empty answer, {len(answer.token_ids)} tokens)")
