"""`pixelrefer ask` / `pixelrefer describe`: questions about regions of an image or a video."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from pixelrefer.cli.common import cli_errors, console
from pixelrefer.errors import PixelReferError
from pixelrefer.media import MediaError, VideoClip, is_video_path, load_image, read_video
from pixelrefer.processing.prompts import (
    TASK_PROMPTS,
    compose_question,
)
from pixelrefer.regions import Region, ResolvedRegion
from pixelrefer.viz import overlay, overlay_frames, save_overlay

if TYPE_CHECKING:  # the model stack (torch, transformers) is imported only when a command runs
    from pixelrefer.inference.api import Answer, PixelRefer

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ CLI plumbing
FALLBACK_MODEL = "tiny"
DEFAULT_MODEL = "nano"

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="bundled model (nano), preset (tiny) or checkpoint folder")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16, float16")]
QuantizeOpt = Annotated[str, typer.Option(help="quantise the LLM: none, int8 (CPU or CUDA), int4 (CUDA; torchao)")]
BoxOpt = Annotated[list[str], typer.Option("--box", help="a region: x0,y0,x1,y1 in pixels (repeat for more regions)")]
PointOpt = Annotated[list[str], typer.Option(
    "--point", help="one click x,y[,label] (label 1 = on the object, 0 = background); repeated --point build ONE region")]
PointsOpt = Annotated[list[str], typer.Option(
    "--points", help="another point region: 'x,y[,label];x,y[,label]' (repeat for more regions)")]
PolygonOpt = Annotated[list[str], typer.Option("--polygon", help="a region: x0,y0,x1,y1,x2,y2,... (repeatable)")]
ScribbleOpt = Annotated[list[str], typer.Option("--scribble", help="a region: a stroke 'x,y;x,y;...' (repeatable)")]
MaskOpt = Annotated[list[Path], typer.Option("--mask", help="a region: mask image (alpha, else non-zero pixels)")]
RleOpt = Annotated[list[Path], typer.Option("--rle", help="a region: JSON file with a COCO RLE (or a list of them)")]
RegionsOpt = Annotated[Path | None, typer.Option("--regions", help="JSON file: a list of region objects (server schema)")]
FrameOpt = Annotated[int, typer.Option("--frame", help="video: the sampled frame the prompts are drawn on", min=0)]
FpsOpt = Annotated[float, typer.Option("--fps", help="video: frames sampled per second", min=0.01)]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", help="video: at most this many frames", min=1)]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="longest answer in tokens", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")]
OverlayOpt = Annotated[Path | None, typer.Option(
    "--overlay", help="write the regions drawn on the media (.png; .gif/.mp4 for every video frame)")]


@dataclass
class RegionArgs:
    """Region options as given on the command line; regions are numbered in this field order."""

    regions_file: Path | None = None
    masks: list[Path] = field(default_factory=list)
    rles: list[Path] = field(default_factory=list)
    polygons: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    point: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    scribbles: list[str] = field(default_factory=list)
    frame: int = 0


def _numbers(text: str, what: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError as exc:
        raise typer.BadParameter(f"{what} {text!r}: expected comma-separated numbers") from exc
    if count is not None and len(values) != count:
        raise typer.BadParameter(f"{what} {text!r}: expected {count} numbers, got {len(values)}")
    return values


def _point_list(items: list[str], what: str) -> tuple[list[list[float]], list[int]]:
    points, labels = [], []
    for item in items:
        values = _numbers(item, what)
        if len(values) not in (2, 3) or (len(values) == 3 and values[2] not in (0, 1)):
            raise typer.BadParameter(f"{what} {item!r}: expected x,y or x,y,label with label 0 or 1")
        points.append(values[:2])
        labels.append(int(values[2]) if len(values) == 3 else 1)
    return points, labels


def _json_file(path: Path) -> Any:
    if not path.is_file():
        raise typer.BadParameter(f"file not found: {path}")
    return json.loads(path.read_text())


def collect_regions(args: RegionArgs) -> list[Region]:
    """Regions from the options, in the order: --regions file, --mask, --rle, --polygon, --box, --point, --points, --scribble."""
    frame = args.frame
    regions: list[Region] = []
    if args.regions_file is not None:
        data = _json_file(args.regions_file)
        regions += [Region.from_dict({"frame": frame, **d} if isinstance(d, dict) and d.get("type") != "frames" else d)
                    for d in (data if isinstance(data, list) else [data])]
    regions += [Region.from_mask_file(p, frame=frame) if p.is_file() else _missing(p) for p in args.masks]
    for path in args.rles:
        data = _json_file(path)
        regions += [Region.from_rle(d, frame=frame) for d in (data if isinstance(data, list) else [data])]
    for text in args.polygons:
        values = _numbers(text, "--polygon")
        if len(values) < 6 or len(values) % 2:
            raise typer.BadParameter(f"--polygon {text!r}: expected at least 3 x,y pairs")
        regions.append(Region.from_polygon([values], frame=frame))
    regions += [Region.from_box(_numbers(b, "--box", 4), frame=frame) for b in args.boxes]
    if args.point:
        pts, labels = _point_list(args.point, "--point")
        regions.append(Region.from_points(pts, labels, frame=frame))
    for group in args.points:
        pts, labels = _point_list([p for p in group.split(";") if p.strip()], "--points")
        regions.append(Region.from_points(pts, labels, frame=frame))
    for stroke in args.scribbles:
        pts, _ = _point_list([p for p in stroke.split(";") if p.strip()], "--scribble")
        regions.append(Region.from_scribble(strokes=[pts], frame=frame))
    return regions


def _missing(path: Path) -> Region:
    raise typer.BadParameter(f"mask file not found: {path}")


def load_pipeline(model: str, device: str, dtype: str, quantize: str = "none") -> PixelRefer:
    """Load the model with a status line; the bundled default falls back to the random tiny preset if absent."""
    from pixelrefer.inference.api import PixelRefer
    from pixelrefer.model.convert import CheckpointError
    from pixelrefer.presets import BUNDLED

    if model == DEFAULT_MODEL and not BUNDLED[DEFAULT_MODEL].is_dir():
        console.print(f"[yellow]warning:[/] the bundled model {DEFAULT_MODEL!r} is not installed; using the random "
                      f"{FALLBACK_MODEL!r} preset (its answers are meaningless). Pass --model PATH for real weights.")
        model = FALLBACK_MODEL
    with console.status(f"Loading model {model} …"):
        try:
            pipeline = PixelRefer.from_pretrained(model, device=device, dtype=dtype, quantize=quantize)
        except PixelReferError:  # a bad --device / --dtype, or the checkpoint's own CheckpointError
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot load {model!r}: {exc}") from exc
    logger.info("loaded %s on %s", model, pipeline.device)
    return pipeline


def load_media(path: Path, fps: float, max_frames: int) -> np.ndarray | VideoClip:
    """An image as an RGB array, or a video's sampled frames (with a status line while decoding)."""
    if not path.exists():
        raise MediaError(f"file not found: {path}")
    if is_video_path(path):
        with console.status(f"Decoding video {path.name} …"):
            clip = read_video(path, fps=fps, max_frames=max_frames)
        if clip.num_frames == 0:
            raise MediaError(f"{path}: the video has no frames")
        console.print(f"decoded {clip.num_frames} frames of {path.name}", style="dim")
        return clip
    return load_image(path)


def resolve_regions(pipeline: PixelRefer, media: np.ndarray | VideoClip, regions: list[Region]) -> list[ResolvedRegion]:
    """Masks of each region, by the pipeline's own rule (its segmenter; Lite video regions propagated)."""
    from pixelrefer.processing.processor import as_media

    return pipeline.processor.resolve_regions(as_media(media), regions)


def write_overlay(path: Path, media: np.ndarray | VideoClip, resolved: list[ResolvedRegion]) -> Path:
    """Draw the regions: one PNG (the first annotated frame for a video) or every frame as .gif/.mp4."""
    if not isinstance(media, VideoClip):
        return save_overlay(overlay(media, [r.masks.get(0) for r in resolved]), path)
    if path.suffix.lower() in (".gif", ".mp4", ".webm", ".avi", ".mkv", ".mov"):
        return save_overlay(overlay_frames(media.frames, resolved), path)
    first = min((f for r in resolved for f in r.masks), default=0)
    return save_overlay(overlay(media.frames[first], [r.masks.get(first) for r in resolved]), path)


def region_summary(index: int, region: Region, resolved: ResolvedRegion) -> dict[str, Any]:
    frame = resolved.frames[0] if resolved.frames else 0
    mask = resolved.masks.get(frame)
    ys, xs = np.nonzero(mask) if mask is not None else ([], [])
    bbox = [int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1] if len(xs) else None
    return {"index": index, "kind": region.kind, "frames": resolved.frames,
            "area": int(np.count_nonzero(mask)) if mask is not None else 0, "bbox": bbox}


def _region_args(ctx: dict[str, Any]) -> RegionArgs:
    return RegionArgs(regions_file=ctx["regions"], masks=ctx["mask"], rles=ctx["rle"], polygons=ctx["polygon"],
                      boxes=ctx["box"], point=ctx["point"], points=ctx["points"], scribbles=ctx["scribble"],
                      frame=ctx["frame"])


def prepare(media_path: Path, args: RegionArgs, model: str, device: str, dtype: str, fps: float, max_frames: int,
            quantize: str = "none"):
    """Shared by ask/describe/chat: parse regions, decode media, load the model, resolve the regions."""
    regions = collect_regions(args)
    media = load_media(media_path, fps, max_frames)
    pipeline = load_pipeline(model, device, dtype, quantize)
    with console.status("Segmenting regions …"):
        resolved = resolve_regions(pipeline, media, regions)
    return pipeline, media, regions, resolved


def ask(
    media: Annotated[Path, typer.Argument(help="image or video file (or a folder of frames)")],
    question: Annotated[str, typer.Argument(help="question with one <region> per region, e.g. 'What is <region>?'")],
    box: BoxOpt = [],  # noqa: B006 - typer list options
    point: PointOpt = [],  # noqa: B006
    points: PointsOpt = [],  # noqa: B006
    polygon: PolygonOpt = [],  # noqa: B006
    scribble: ScribbleOpt = [],  # noqa: B006
    mask: MaskOpt = [],  # noqa: B006
    rle: RleOpt = [],  # noqa: B006
    regions: RegionsOpt = None,
    frame: FrameOpt = 0,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quantize: QuantizeOpt = "none",
    max_new_tokens: TokensOpt = 128,
    stream: Annotated[bool, typer.Option("--stream", help="print the answer while it is generated (not with --json)")] = False,
    as_json: JsonOpt = False,
    overlay_path: OverlayOpt = None,
    fps: FpsOpt = 1.0,
    max_frames: MaxFramesOpt = 16,
) -> None:
    """Ask a question about regions of an image or a video.

    The <region> placeholders follow the regions in this order: --regions, --mask, --rle, --polygon, --box,
    --point, --points, --scribble. Exit codes: 2 bad input, 3 model/checkpoint error.

    Example: pixelrefer ask scene.png "What is <region>?" --box 30,20,80,60 --overlay regions.png
    """
    with cli_errors():
        args = _region_args(locals())
        compose_question(question, 0)  # the text's limits and control tokens, before any decoding or loading
        pipeline, clip, region_list, resolved = prepare(media, args, model, device, dtype, fps, max_frames, quantize)
        from pixelrefer.inference.generation import GenerationConfig

        text = compose_question(question, len(region_list))
        generation = GenerationConfig(max_new_tokens=max_new_tokens)
        start = time.perf_counter()
        if stream and not as_json:
            for piece in pipeline.stream(clip, resolved, text, generation):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            answers = None
        else:
            answers = [pipeline.ask(clip, resolved, text, generation)]
        latency = time.perf_counter() - start
        if overlay_path is not None:
            console.print(f"overlay written to {write_overlay(overlay_path, clip, resolved)}", style="dim")
        if answers is not None:
            _report(media, text, region_list, resolved, answers, latency, as_json, per_region=False)


def describe(
    media: Annotated[Path, typer.Argument(help="image or video file (or a folder of frames)")],
    task: Annotated[str, typer.Option(help="category, part_category, brief, detailed, video_brief, video_detailed")] = "brief",
    box: BoxOpt = [],  # noqa: B006
    point: PointOpt = [],  # noqa: B006
    points: PointsOpt = [],  # noqa: B006
    polygon: PolygonOpt = [],  # noqa: B006
    scribble: ScribbleOpt = [],  # noqa: B006
    mask: MaskOpt = [],  # noqa: B006
    rle: RleOpt = [],  # noqa: B006
    regions: RegionsOpt = None,
    frame: FrameOpt = 0,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quantize: QuantizeOpt = "none",
    max_new_tokens: TokensOpt = 128,
    as_json: JsonOpt = False,
    overlay_path: OverlayOpt = None,
    fps: FpsOpt = 1.0,
    max_frames: MaxFramesOpt = 16,
) -> None:
    """Describe each region separately (one answer per region; the media is encoded once).

    Example: pixelrefer describe scene.png --box 30,20,80,60 --point 100,40 --task brief
    """
    with cli_errors():
        compose_question(None, 1, task)
        args = _region_args(locals())
        pipeline, clip, region_list, resolved = prepare(media, args, model, device, dtype, fps, max_frames, quantize)
        if not region_list:
            raise typer.BadParameter("describe needs at least one region (--box, --point, --mask, ...)")
        from pixelrefer.inference.generation import GenerationConfig

        start = time.perf_counter()
        answers = pipeline.describe_each(clip, resolved, task=task, generation=GenerationConfig(max_new_tokens=max_new_tokens))
        latency = time.perf_counter() - start
        if overlay_path is not None:
            console.print(f"overlay written to {write_overlay(overlay_path, clip, resolved)}", style="dim")
        _report(media, TASK_PROMPTS[task], region_list, resolved, answers, latency, as_json, per_region=True)


def _report(media: Path, question: str, regions: list[Region], resolved: list[ResolvedRegion], answers: list[Answer],
            latency: float, as_json: bool, per_region: bool) -> None:
    if as_json:
        out = {
            "media": str(media), "question": question, "latency_s": round(latency, 3),
            "regions": [region_summary(i, r, m) for i, (r, m) in enumerate(zip(regions, resolved))],
            "answers": [{"region": i if per_region else None, "text": a.text, "completion_tokens": len(a.token_ids)}
                        for i, a in enumerate(answers)],
        }
        print(json.dumps(out, ensure_ascii=False))
        return
    for index, answer in enumerate(answers):
        prefix = f"[region {index}] " if per_region else ""
        print(f"{prefix}{answer.text}" if answer.text else f"{prefix}(empty answer, {len(answer.token_ids)} tokens)")
