"""The region layer: everything between what a user points at and the binary masks the model consumes.

Contract used by the model side (``pixelrefer.processing``):

* :class:`Region` is the one region type. ``Region.resolve(height, width, num_frames, segmenter=None,
  *, frames=None, propagate=False)`` returns a :class:`ResolvedRegion` whose ``masks`` maps frame
  index -> ``bool`` array of shape (H, W). Box/points/scribble regions need ``frames`` (the image or
  the list of frames) and are segmented by ``segmenter`` (default: the classical one).
* :func:`as_region` turns anything region-like (a ``Region``, a JSON dict, a 2-D mask array, an RGBA
  PIL image, a mask file path, ``{frame: prompt}``) into a ``Region``.
* :class:`RegionError` (a ``ValueError``) is raised for every bad input, with a one-line reason.

Conventions: pixel coordinates are ``x`` (column, along the width) then ``y`` (row); boxes are
``xyxy`` = ``[x0, y0, x1, y1]`` with ``x1``/``y1`` exclusive (``xywh`` = ``[x0, y0, w, h]``);
``normalized: true`` means coordinates divided by the width/height. Masks are indexed ``[row, col]``.

JSON schema (one object per region; every form accepts an optional ``"frame": N``, default 0)::

    {"type": "box", "box": [x0, y0, x1, y1], "format": "xyxy" | "xywh", "normalized": false}
    {"type": "points", "points": [[x, y], ...], "labels": [1, 0, ...], "normalized": false}
    {"type": "scribble", "strokes": [[[x, y], ...], ...], "negative_strokes": [...], "width": 5,
     "brush": <compressed RLE>, "negative_brush": <compressed RLE>}     # strokes and/or brush
    {"type": "polygon", "polygons": [[x0, y0, x1, y1, ...], ...], "size": [height, width]}
    {"type": "rle", "rle": {"size": [height, width], "counts": "<str>" | [int, ...]}}
    {"type": "mask_png", "data": "<base64 PNG, or data: URL>", "channel": "auto" | "alpha" | "luma"}
    {"type": "mask", "mask": [[0, 1, ...], ...]}                        # small masks only
    {"type": "frames", "frames": {"0": <region>, "12": <region>}}       # a prompt per video frame

``labels`` default to all 1. ``mask_png`` uses the alpha channel when the PNG has one, else
non-zero pixels. Unknown types or keys are errors. ``Region.to_dict`` writes masks as compressed RLE.
"""

from pixelrefer.regions.codecs import decode_rle, encode_rle, polygons_to_mask
from pixelrefer.regions.errors import RegionError
from pixelrefer.regions.prompts import (
    BoxPrompt,
    MaskPrompt,
    PointsPrompt,
    PolygonPrompt,
    Prompt,
    RLEPrompt,
    ScribblePrompt,
)
from pixelrefer.regions.region import Region, ResolvedRegion, as_region

__all__ = [
    "BoxPrompt",
    "MaskPrompt",
    "PointsPrompt",
    "PolygonPrompt",
    "Prompt",
    "RLEPrompt",
    "Region",
    "RegionError",
    "ResolvedRegion",
    "ScribblePrompt",
    "as_region",
    "decode_rle",
    "encode_rle",
    "polygons_to_mask",
]
