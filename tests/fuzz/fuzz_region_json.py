"""atheris harness: the region JSON schema (every type: mask, mask_png, rle, polygon, box, points, scribble,
frames) parsed with ``Region.from_dict`` and resolved on a small image with the classical segmenter.

Half of the inputs are raw bytes read as JSON, half are dicts built from the fuzz data so that most reach the
parsers behind the schema. Invariant: resolved masks have the image's size and are not empty.
"""

from __future__ import annotations

import base64
import io
import json

import fuzz_common
import numpy as np
from PIL import Image

with fuzz_common.atheris.instrument_imports(include=["pixelrefer"]):
    from pixelrefer.regions import Region
    from pixelrefer.segment.classical import ClassicalSegmenter

H, W = 24, 32
IMAGE = np.zeros((H, W, 3), np.uint8)
IMAGE[6:18, 8:24] = (200, 40, 40)
SEGMENTER = ClassicalSegmenter()
TYPES = ("mask", "mask_png", "rle", "polygon", "box", "points", "scribble", "frames", "nope")


def _value(fdp, depth: int = 0):
    """A JSON-like value: numbers (incl. NaN/inf), strings, bools, None, small lists and dicts."""
    pick = fdp.ConsumeIntInRange(0, 8 if depth < 3 else 4)
    if pick == 0:
        return fdp.ConsumeIntInRange(-5, 60)
    if pick == 1:
        return fdp.ConsumeFloat() if fdp.ConsumeBool() else fdp.ConsumeFloatInRange(-5.0, 40.0)
    if pick == 2:
        return fdp.ConsumeUnicodeNoSurrogates(8)
    if pick == 3:
        return fdp.ConsumeBool()
    if pick == 4:
        return None
    if pick in (5, 6):
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    if pick == 7:
        return [[fdp.ConsumeFloatInRange(-5.0, 40.0), fdp.ConsumeFloatInRange(-5.0, 40.0)]
                for _ in range(fdp.ConsumeIntInRange(0, 5))]
    return {fdp.ConsumeUnicodeNoSurrogates(6): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _png(fdp) -> str:
    if fdp.ConsumeBool():
        return base64.b64encode(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))).decode()
    side = fdp.ConsumeIntInRange(1, 40)
    buffer = io.BytesIO()
    Image.fromarray(np.frombuffer(fdp.ConsumeBytes(side * side).ljust(side * side, b"\0"), np.uint8)
                    .reshape(side, side)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    for _ in range(fdp.ConsumeIntInRange(0, 3)):  # flip a few bytes: corrupt headers and chunks
        if data:
            data[fdp.ConsumeIntInRange(0, len(data) - 1)] = fdp.ConsumeIntInRange(0, 255)
    return base64.b64encode(bytes(data)).decode()


def _structured(fdp) -> dict:
    kind = TYPES[fdp.ConsumeIntInRange(0, len(TYPES) - 1)]
    keys = {"mask": ["mask"], "mask_png": ["data", "channel"], "rle": ["rle"], "polygon": ["polygons", "size"],
            "box": ["box", "format", "normalized"], "points": ["points", "labels", "normalized"],
            "scribble": ["strokes", "negative_strokes", "width", "normalized", "brush"],
            "frames": ["frames"], "nope": ["x"]}[kind]
    data: dict = {"type": kind}
    for key in keys:
        if fdp.ConsumeIntInRange(0, 3):
            data[key] = _png(fdp) if key == "data" else _value(fdp)
    if kind == "rle" and fdp.ConsumeBool():
        data["rle"] = {"size": [H, W], "counts": fdp.ConsumeUnicodeNoSurrogates(12)}
    if kind == "frames" and fdp.ConsumeBool():
        data["frames"] = {str(fdp.ConsumeIntInRange(0, 2)): _structured(fdp)}
    if fdp.ConsumeIntInRange(0, 7) == 0:
        data["frame"] = _value(fdp)
    return data


def target(fdp) -> None:
    if fdp.ConsumeBool():
        try:
            data = json.loads(fdp.ConsumeBytes(fdp.remaining_bytes()))
        except (ValueError, RecursionError):  # not JSON at all: the server's JSON layer answers that
            return
    else:
        data = _structured(fdp)
    region = Region.from_dict(data)
    resolved = region.resolve(H, W, num_frames=3, segmenter=SEGMENTER, frames=[IMAGE] * 3)
    for mask in resolved.masks.values():
        assert mask.shape == (H, W) and mask.any()
    assert Region.from_dict(region.to_dict()).kind in (region.kind, "rle")


if __name__ == "__main__":
    fuzz_common.run(target)
