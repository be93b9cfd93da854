"""Render docs/synth_variety.png: four plain scenes of the synthetic world (top row) and the same seeds with every
:class:`~pixelrefer.synth.config.Variety` option on (bottom row).

    python scripts/render_variety_grid.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelrefer.synth.config import Variety
from pixelrefer.synth.scenes import render_scene

OUT = Path(__file__).resolve().parent.parent / "docs" / "synth_variety.png"
VARIETY = Variety(background="natural", shading=0.4, noise=6.0, jpeg_quality=(30, 90), aspect=(0.6, 1.7),
                  clutter=(2, 8))
SEEDS = (1001, 1002, 1003, 1007)


def main() -> None:
    rows = [np.concatenate([render_scene(np.random.default_rng(s), variety=v).image for s in SEEDS], axis=1)
            for v in (Variety(), VARIETY)]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid = grid.resize((grid.width * 3 // 4, grid.height * 3 // 4), Image.LANCZOS).quantize(128)
    grid.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
