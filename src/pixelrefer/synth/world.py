"""The vocabulary of the synthetic object-referring world: categories, parts, colours, sizes, patterns.

Everything here is plain data. The generator (:mod:`pixelrefer.synth.scenes`) draws from it and the
instruction builder (:mod:`pixelrefer.synth.tasks`) names it; the held-out rule lives here too so that
every module agrees on which (category, colour) combinations the training splits never show.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "heart",
    "diamond",
    "hexagon",
    "crescent",
)


@dataclass(frozen=True)
class PartSpec:
    """One named part of a composite object; `coloured` parts take the object's colour and pattern."""

    name: str
    coloured: bool
    fixed_rgb: RGB = (0, 0, 0)


# Composite objects: the first coloured part carries the object's colour; the others have fixed colours.
COMPOSITES: dict[str, tuple[PartSpec, ...]] = {
    "house": (
        PartSpec("wall", coloured=True),
        PartSpec("roof", coloured=False, fixed_rgb=(90, 40, 30)),
        PartSpec("door", coloured=False, fixed_rgb=(60, 45, 35)),
    ),
    "car": (
        PartSpec("body", coloured=True),
        PartSpec("wheel", coloured=False, fixed_rgb=(25, 25, 25)),
    ),
    "flag": (
        PartSpec("cloth", coloured=True),
        PartSpec("pole", coloured=False, fixed_rgb=(170, 170, 175)),
    ),
    "mushroom": (
        PartSpec("cap", coloured=True),
        PartSpec("stem", coloured=False, fixed_rgb=(225, 210, 180)),
    ),
}

CATEGORIES: tuple[str, ...] = SHAPES + tuple(COMPOSITES)

COLOURS: dict[str, RGB] = {
    "red": (220, 35, 35),
    "green": (30, 175, 60),
    "blue": (35, 80, 225),
    "yellow": (245, 215, 30),
    "purple": (145, 55, 200),
    "orange": (245, 135, 20),
    "pink": (250, 130, 195),
    "white": (245, 245, 245),
}

# Object extent (longest side of its nominal box) as a fraction of the image's short side.
# The gaps between the ranges keep the size words unambiguous.
SIZES: dict[str, tuple[float, float]] = {
    "tiny": (0.065, 0.09),
    "small": (0.12, 0.17),
    "medium": (0.21, 0.29),
    "large": (0.35, 0.48),
}
SIZE_ORDER: tuple[str, ...] = tuple(SIZES)

PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted")  # tiny objects are always solid

HORIZONTAL = ("left", "center", "right")
VERTICAL = ("top", "middle", "bottom")


def held_out_combos() -> frozenset[tuple[str, str]]:
    """(category, colour) pairs that appear only in the `heldout` split, one per category.

    The colour is chosen by a fixed stride so that every colour is held out for some category.
    """
    colours = tuple(COLOURS)
    return frozenset((cat, colours[(3 * i + 1) % len(colours)]) for i, cat in enumerate(CATEGORIES))


HELD_OUT: frozenset[tuple[str, str]] = held_out_combos()


def is_held_out(category: str, colour: str) -> bool:
    return (category, colour) in HELD_OUT


def part_label(category: str, part: str | None) -> str:
    """The PACO-style label: `category` for a whole object, `category:part` for a part."""
    return category if part is None else f"{category}:{part}"


def category_labels() -> tuple[str, ...]:
    """Every answer of a category question: whole objects and `object:part` labels."""
    parts = tuple(part_label(cat, p.name) for cat, specs in COMPOSITES.items() for p in specs)
    return CATEGORIES + parts


def position_phrase(cx: float, cy: float) -> str:
    """A coarse position in thirds, e.g. `top left`, `center`, `bottom right` (cx, cy in 0..1)."""
    col = HORIZONTAL[min(int(cx * 3), 2)]
    row = VERTICAL[min(int(cy * 3), 2)]
    if row == "middle" and col == "center":
        return "center"
    if row == "middle":
        return f"middle {col}"
    return f"{row} {col}"


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
