"""atheris harness: COCO polygons (flat or paired, one or several) normalised and rasterised on a small image.

Coordinates include NaN, infinities and huge values, which must be refused quickly (``-timeout`` catches a
rasteriser walking a 1e12-pixel edge). Invariant: a rasterised mask has the image's size.
"""

from __future__ import annotations

import fuzz_common

with fuzz_common.atheris.instrument_imports(include=["pixelrefer"]):
    from pixelrefer.regions import Region


def _number(fdp) -> float:
    pick = fdp.ConsumeIntInRange(0, 9)
    if pick == 0:
        return fdp.ConsumeFloat()  # any double: NaN, inf, 1e308
    return fdp.ConsumeFloatInRange(-20.0, 80.0)


def target(fdp) -> None:
    h, w = fuzz_common.small_size(fdp), fuzz_common.small_size(fdp)
    shape = fdp.ConsumeIntInRange(0, 2)
    n = fdp.ConsumeIntInRange(0, 12)
    if shape == 0:
        polygons = [_number(fdp) for _ in range(n)]
    elif shape == 1:
        polygons = [[_number(fdp), _number(fdp)] for _ in range(n)]
    else:
        polygons = [[_number(fdp) for _ in range(fdp.ConsumeIntInRange(0, 10))] for _ in range(n % 4)]
    size = (h, w) if fdp.ConsumeBool() else None
    region = Region.from_polygon(polygons, size=size)
    resolved = region.resolve(max(h, 1), max(w, 1))
    for mask in resolved.masks.values():
        assert mask.shape == (max(h, 1), max(w, 1))


if __name__ == "__main__":
    fuzz_common.run(target)
