"""`pixelrefer segment`: turn a click, box, polygon or mask into a region mask on an image or through a video."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pixelrefer.cli.common import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    FpsOpt,
    MaxFramesOpt,
    RegionArgs,
    cli_errors,
    collect_regions,
    read_media,
    region_options,
    regions_on_media,
)
from pixelrefer.errors import RegionError

if TYPE_CHECKING:
    from pixelrefer.media import Media
    from pixelrefer.regions import Region, ResolvedRegion

logger = logging.getLogger(__name__)


def build_region(args: RegionArgs) -> Region:
    """The one region given on the command line (the shared region options; exactly one region)."""
    regions = collect_regions(args)
    if len(regions) != 1:
        raise RegionError(f"give exactly one region (one of --box, --point, --polygon, --mask, --rle, --points, "
                          f"--scribble, --regions), got {len(regions) or 'none'}")
    return regions[0]


def _resolve(region: Region, clip: Media, segmenter: Any, progress: bool) -> ResolvedRegion:
    kwargs = {"frames": clip.frames, "segmenter": segmenter, "propagate": clip.num_frames > 1}
    if clip.num_frames == 1 or not progress:
        return region.resolve(clip.height, clip.width, clip.num_frames, **kwargs)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("propagating", total=clip.num_frames - len(region.data))
        return region.resolve(clip.height, clip.width, clip.num_frames,
                              progress=lambda n: bar.advance(task, n), **kwargs)


def save_masks(resolved: ResolvedRegion, clip: Media, path: Path) -> list[Path]:
    """``.json``: compressed RLE (videos: ``{"frames": {source frame: rle}}``); ``.png``: one PNG per frame."""
    import numpy as np

    from pixelrefer.regions import encode_rle
    from pixelrefer.regions.codecs import mask_to_png_bytes

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
    region_args: RegionArgs,
    out: Annotated[Path | None, typer.Option("--out", help="Overlay: .png for images, .gif/.mp4 for videos.")] = None,
    save_mask: Annotated[Path | None, typer.Option("--save-mask", help="mask.png or rle.json.")] = None,
    segmenter: Annotated[str, typer.Option("--segmenter", help="auto | classical | sam2")] = "auto",
    sam2_weights: Annotated[str | None, typer.Option("--sam2-weights", help="SAM2 folder or hub id.")] = None,
    device: Annotated[str, typer.Option("--device", help="Device for SAM2 (cpu, cuda, ...).")] = "cpu",
    fps: FpsOpt = DEFAULT_FPS,
    max_frames: MaxFramesOpt = DEFAULT_MAX_FRAMES,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on videos.")] = True,
) -> None:
    """Segment a region given by clicks, a box, a polygon or a mask; propagate it through a video."""
    from pixelrefer.segment import get_segmenter
    from pixelrefer.viz import overlay_frames, save_overlay

    with cli_errors():
        region = build_region(region_args)
        clip = read_media(media, fps, max_frames)
        (region,), _ = regions_on_media([region], clip, region_args.frame)
        backend = get_segmenter(segmenter, weights=sam2_weights, device=device) if region.needs_segmenter \
            or clip.num_frames > 1 else None
        resolved = _resolve(region, clip, backend, progress)
        if out is not None:
            save_overlay(overlay_frames(clip.frames, [resolved]), out, fps=fps or clip.fps or 3.0)
        written = save_masks(resolved, clip, save_mask) if save_mask is not None else []
    area = int(sum(m.sum() for m in resolved.masks.values()))
    typer.echo(f"{resolved.source} region via {resolved.segmenter or 'no segmenter'}: "
               f"{len(resolved.masks)}/{clip.num_frames} frames, {area} px")
    for warning in resolved.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for path in ([out] if out else []) + written[:1]:
        typer.echo(f"wrote {path}" + (f" (+{len(written) - 1} more)" if path in written and len(written) > 1 else ""))


segment = region_options(segment)
