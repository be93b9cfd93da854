"""`pixelrefer segment`: turn a click, box, polygon or mask into a region mask on an image or through a video."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from pixelrefer.media import (
    DEFAULT_SAMPLING,
    MediaError,
    VideoClip,
    is_video_path,
    load_image,
    map_frames,
    read_video,
)
from pixelrefer.regions import Region, RegionError, ResolvedRegion, encode_rle
from pixelrefer.regions.codecs import mask_to_png_bytes

logger = logging.getLogger(__name__)


def _numbers(text: str, what: str, counts: tuple[int, ...]) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise RegionError(f"--{what} {text!r}: expected comma-separated numbers") from exc
    if counts and len(values) not in counts:
        raise RegionError(f"--{what} {text!r}: expected {' or '.join(map(str, counts))} numbers")
    return values


def build_region(points: list[str], box: str | None, polygons: list[str], mask: Path | None,
                 frame: int) -> Region:
    """The region given on the command line (exactly one prompt kind)."""
    given = [name for name, value in (("--point", points), ("--box", box), ("--polygon", polygons),
                                      ("--mask", mask)) if value]
    if len(given) != 1:
        raise RegionError(f"give exactly one of --point, --box, --polygon, --mask (got {given or 'none'})")
    if points:
        parsed = [_numbers(p, "point", (2, 3)) for p in points]
        labels = [int(p[2]) if len(p) == 3 else 1 for p in parsed]
        return Region.from_points([p[:2] for p in parsed], labels, frame=frame)
    if box:
        return Region.from_box(_numbers(box, "box", (4,)), frame=frame)
    if polygons:
        return Region.from_polygon([_numbers(p, "polygon", ()) for p in polygons], frame=frame)
    assert mask is not None
    return Region.from_mask_file(mask, frame=frame)


def _load(media: Path, fps: float | None, max_frames: int, frame: int) -> tuple[VideoClip, int]:
    """The media as a clip (one frame for an image) and the clip position of the annotated frame."""
    if is_video_path(media):
        clip = read_video(media, fps=fps, max_frames=max_frames)
        position = map_frames([frame], clip)[frame]
        if clip.frame_indices[position] != frame:
            logger.info("frame %d is not sampled; the prompt goes on the nearest sampled frame %d", frame,
                        clip.frame_indices[position])
        return clip, position
    if frame != 0:
        raise RegionError(f"--frame {frame} given for a still image (only frame 0 exists)")
    image = load_image(media)
    return VideoClip([image], [0.0], [0], 0.0, 1), 0


def _resolve(region: Region, clip: VideoClip, segmenter: Any, progress: bool) -> ResolvedRegion:
    kwargs = {"frames": clip.frames, "segmenter": segmenter, "propagate": clip.num_frames > 1}
    if clip.num_frames == 1 or not progress:
        return region.resolve(clip.height, clip.width, clip.num_frames, **kwargs)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("propagating", total=clip.num_frames - len(region.data))
        return region.resolve(clip.height, clip.width, clip.num_frames,
                              progress=lambda n: bar.advance(task, n), **kwargs)


def save_masks(resolved: ResolvedRegion, clip: VideoClip, path: Path) -> list[Path]:
    """``.json``: compressed RLE (videos: ``{"frames": {source frame: rle}}``); ``.png``: one PNG per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {i: resolved.masks.get(i, np.zeros((clip.height, clip.width), bool)) for i in range(clip.num_frames)}
    if path.suffix.lower() == ".json":
        payload: dict[str, Any] = encode_rle(full[0]) if clip.num_frames == 1 else {
            "frames": {str(clip.frame_indices[i]): encode_rle(m) for i, m in full.items()}}
        path.write_text(json.dumps(payload))
        return [path]
    if path.suffix.lower() != ".png":
        raise RegionError(f"--save-mask must end in .png or .json, got {path.name}")
    if clip.num_frames == 1:
        path.write_bytes(mask_to_png_bytes(full[0]))
        return [path]
    written = []
    for i, mask in full.items():
        target = path.with_name(f"{path.stem}_{clip.frame_indices[i]:05d}.png")
        target.write_bytes(mask_to_png_bytes(mask))
        written.append(target)
    return written


def segment(
    media: Annotated[Path, typer.Argument(help="Image, video file (mp4/webm/avi/gif) or folder of frames.")],
    point: Annotated[list[str] | None, typer.Option("--point", help="x,y click (x,y,0 = background); repeat.")] = None,
    box: Annotated[str | None, typer.Option("--box", help="x0,y0,x1,y1 in pixels.")] = None,
    polygon: Annotated[list[str] | None, typer.Option("--polygon", help="x0,y0,x1,y1,x2,y2,...; repeat.")] = None,
    mask: Annotated[Path | None, typer.Option("--mask", help="Mask image (alpha or non-zero pixels).")] = None,
    frame: Annotated[int, typer.Option("--frame", help="Source frame index the prompt is on (videos).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Overlay: .png for images, .gif/.mp4 for videos.")] = None,
    save_mask: Annotated[Path | None, typer.Option("--save-mask", help="mask.png or rle.json.")] = None,
    segmenter: Annotated[str, typer.Option("--segmenter", help="auto | classical | sam2")] = "auto",
    sam2_weights: Annotated[str | None, typer.Option("--sam2-weights", help="SAM2 folder or hub id.")] = None,
    device: Annotated[str, typer.Option("--device", help="Device for SAM2 (cpu, cuda, ...).")] = "cpu",
    fps: Annotated[float | None, typer.Option(
        "--fps", help="Sample videos at this rate (default: spread --max-frames evenly over the clip).")] = DEFAULT_SAMPLING.fps,
    max_frames: Annotated[int, typer.Option("--max-frames", help="At most this many video frames.")] = DEFAULT_SAMPLING.max_frames,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on videos.")] = True,
) -> None:
    """Segment a region given by clicks, a box, a polygon or a mask; propagate it through a video."""
    from pixelrefer.segment import get_segmenter
    from pixelrefer.viz import overlay_frames, save_overlay

    try:
        region = build_region(point or [], box, polygon or [], mask, frame)
        clip, position = _load(media, fps, max_frames, frame)
        region = Region.from_prompts({position: region.data[frame]})
        backend = get_segmenter(segmenter, weights=sam2_weights, device=device) if region.needs_segmenter \
            or clip.num_frames > 1 else None
        resolved = _resolve(region, clip, backend, progress)
        if out is not None:
            save_overlay(overlay_frames(clip.frames, [resolved]), out, fps=fps or clip.fps or 3.0)
        written = save_masks(resolved, clip, save_mask) if save_mask is not None else []
    except (RegionError, MediaError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    area = int(sum(m.sum() for m in resolved.masks.values()))
    typer.echo(f"{resolved.source} region via {resolved.segmenter or 'no segmenter'}: "
               f"{len(resolved.masks)}/{clip.num_frames} frames, {area} px")
    for warning in resolved.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for path in ([out] if out else []) + written[:1]:
        typer.echo(f"wrote {path}" + (f" (+{len(written) - 1} more)" if path in written and len(written) > 1 else ""))
