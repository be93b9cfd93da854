"""Seeded still scenes: several shapes and composite objects on a textured background, exact masks.

Objects are rasterised as polygons (PIL, no anti-aliasing) so every painted pixel belongs to exactly one
object part and the masks are exact. Objects are painted back to front; the visible mask of an object is
its full mask minus everything painted above it. The same primitives draw video frames
(:mod:`pixelrefer.synth.videos`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from pixelrefer.synth import world
from pixelrefer.synth.config import DEFAULT_VARIETY, IMAGE_SIZE, OBJECT_ASPECT, SCENE_OBJECTS, Variety

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1, y1 exclusive
Point = tuple[float, float]
PartMasks = list[tuple[str | None, np.ndarray]]  # an object's part masks in paint order (None: whole)

N_POLY = 64  # vertices of a polygonised circle
MIN_VISIBLE_FRACTION = 0.55  # an object is kept only if at least this much of it stays visible
MIN_PART_PIXELS = 12  # a part smaller than this (visible) is never asked about
COLOUR_JITTER = 12
PATTERN_SHADE = 0.55  # stripes and dots use the object colour times this factor
MAX_PLACEMENT_TRIES = 40
OFF_PALETTE_DISTANCE = 60.0  # RGB distance of an off-palette colour from every named colour (jitter is +-12)
BACKGROUND_OCTAVES = ((4, 24.0), (16, 10.0))  # (grid cells, amplitude) of the smooth noise
BACKGROUND_CHROMA = 0.35  # colour share of the background noise
NATURAL_OCTAVES = (2, 4, 8, 16, 32, 64)  # grid cells of the fractal background's octaves
NATURAL_FALLOFF = 0.9  # octave amplitude ~ cells ** -falloff (about a 1/f spectrum, like natural images)
CLUTTER_EXTENT = (0.04, 0.22)  # a clutter blob's longest side, as a fraction of the short side


@dataclass(frozen=True)
class ObjectSpec:
    """What an object is and how it is drawn, independent of where it is."""

    category: str
    colour: str
    size: str
    pattern: str
    extent: float  # longest side of the nominal box, in pixels
    aspect: float  # width / height stretch of the unit shape
    angle: float  # rotation in degrees
    jitter: tuple[int, int, int]  # per-object colour offset
    held_out: bool = False


@dataclass
class ScenePart:
    name: str
    label: str  # `category:part`
    mask: np.ndarray  # visible pixels, bool (H, W)
    box: Box
    visible_fraction: float

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class SceneObject:
    index: int
    spec: ObjectSpec
    center: Point
    mask: np.ndarray  # visible pixels of the whole object, bool (H, W)
    box: Box
    visible_fraction: float
    depth: int  # paint order, 0 = back
    parts: list[ScenePart] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def colour(self) -> str:
        return self.spec.colour

    @property
    def size(self) -> str:
        return self.spec.size

    @property
    def pattern(self) -> str:
        return self.spec.pattern

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def occluded(self) -> bool:
        return self.visible_fraction < 0.97

    def facts(self) -> dict[str, object]:
        """Ground truth of this object as JSON-ready values."""
        return {
            "index": self.index,
            "category": self.category,
            "colour": self.colour,
            "size": self.size,
            "pattern": self.pattern,
            "box": list(self.box),
            "area": self.area,
            "occluded": self.occluded,
            "held_out": self.spec.held_out,
            "parts": [p.name for p in self.parts],
        }


@dataclass
class Scene:
    image: np.ndarray  # uint8 (H, W, 3)
    objects: list[SceneObject]

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


# ----------------------------------------------------------------------------------------- unit shapes


def _circle(cx: float = 0.0, cy: float = 0.0, r: float = 1.0, ry: float | None = None) -> list[Point]:
    ry = r if ry is None else ry
    return [(cx + r * math.cos(2 * math.pi * k / N_POLY), cy + ry * math.sin(2 * math.pi * k / N_POLY))
            for k in range(N_POLY)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _star(points: int = 5, inner: float = 0.45) -> list[Point]:
    out = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        a = -math.pi / 2 + math.pi * k / points
        out.append((r * math.cos(a), r * math.sin(a)))
    return out


def _heart() -> list[Point]:
    pts = []
    for k in range(N_POLY):
        t = 2 * math.pi * k / N_POLY
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -(y + 2.5) / 14.5))
    return pts


def _cross(w: float = 0.36) -> list[Point]:
    return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
            (-1, -w), (-w, -w)]


# A layer is (part name or None, polygon to fill, polygons to cut out). Later layers cover earlier ones.
Layer = tuple[str | None, list[Point], list[list[Point]]]

UNIT_SHAPES: dict[str, list[Layer]] = {
    "circle": [(None, _circle(), [])],
    "square": [(None, _rect(-1, -1, 1, 1), [])],
    "triangle": [(None, [(0, -1), (1, 1), (-1, 1)], [])],
    "star": [(None, _star(), [])],
    "ring": [(None, _circle(), [_circle(r=0.55)])],
    "cross": [(None, _cross(), [])],
    "heart": [(None, _heart(), [])],
    "diamond": [(None, [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)], [])],
    "hexagon": [(None, [(math.cos(math.pi * k / 3), math.sin(math.pi * k / 3)) for k in range(6)], [])],
    "crescent": [(None, _circle(), [_circle(0.45, -0.2, 0.85)])],
    "house": [
        ("wall", _rect(-0.8, -0.1, 0.8, 1.0), []),
        ("roof", [(0, -1), (1, -0.1), (-1, -0.1)], []),
        ("door", _rect(-0.22, 0.3, 0.22, 1.0), []),
    ],
    "car": [
        ("body", [(-1, -0.2), (-0.55, -0.2), (-0.35, -0.75), (0.35, -0.75), (0.55, -0.2), (1, -0.2),
                  (1, 0.5), (-1, 0.5)], []),
        ("wheel", _circle(-0.55, 0.55, 0.32), []),
        ("wheel", _circle(0.55, 0.55, 0.32), []),
    ],
    "flag": [
        ("pole", _rect(-0.95, -1.0, -0.72, 1.0), []),
        ("cloth", _rect(-0.72, -0.95, 0.95, 0.15), []),
    ],
    "mushroom": [
        ("stem", _rect(-0.3, -0.2, 0.3, 1.0), []),
        ("cap", [(x, min(y, -0.1)) for x, y in _circle(0, -0.1, 1.0, 0.9)], []),
    ],
}

ROTATION_FREE = ("square", "diamond", "house", "car", "flag", "mushroom")  # rotation would blur categories


def _transform(poly: list[Point], spec: ObjectSpec, center: Point) -> list[Point]:
    half = spec.extent / 2.0
    sx, sy = (half, half / spec.aspect) if spec.aspect >= 1 else (half * spec.aspect, half)
    a = math.radians(spec.angle)
    ca, sa = math.cos(a), math.sin(a)
    out = []
    for u, v in poly:
        x, y = u * sx, v * sy
        out.append((center[0] + x * ca - y * sa, center[1] + x * sa + y * ca))
    return out


def _fill(polys: list[list[Point]], hw: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polys:
        draw.polygon(poly, fill=255)
    return np.asarray(canvas) > 0


def rasterize(spec: ObjectSpec, center: Point, hw: tuple[int, int]) -> PartMasks:
    """Full (unoccluded) mask of every part of an object, in paint order; parts of the same name merged."""
    layers: dict[str | None, np.ndarray] = {}
    order: list[str | None] = []
    for name, poly, holes in UNIT_SHAPES[spec.category]:
        mask = _fill([_transform(poly, spec, center)], hw)
        if holes:
            mask &= ~_fill([_transform(h, spec, center) for h in holes], hw)
        for other in layers:  # a later layer covers the earlier ones
            layers[other] &= ~mask
        if name in layers:
            layers[name] |= mask
        else:
            layers[name] = mask
            order.append(name)
    return [(name, layers[name]) for name in order]


# ------------------------------------------------------------------------------------------- painting


def _smooth_noise(rng: np.random.Generator, cells: int, hw: tuple[int, int]) -> np.ndarray:
    """Bicubic-upsampled Gaussian noise, mostly luminance with a little chroma (H×W×3)."""
    grid = rng.normal(0.0, 1.0, size=(cells, cells, 3)).astype(np.float32) * BACKGROUND_CHROMA
    grid += rng.normal(0.0, 1.0, size=(cells, cells, 1)).astype(np.float32)
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(grid[..., c])).resize((hw[1], hw[0]), Image.BICUBIC))
             for c in range(3)]
    return np.stack(chans, axis=-1)


def background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A muted, low-frequency textured background (float32, H×W×3)."""
    base = np.float32(rng.uniform(60, 165)) + rng.uniform(-25, 25, size=3).astype(np.float32)
    out = np.broadcast_to(base, (hw[0], hw[1], 3)).copy()
    for cells, amp in BACKGROUND_OCTAVES:
        out += amp * _smooth_noise(rng, cells, hw)
    return out


def natural_background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A photo-like background (float32, H×W×3): a two-colour gradient in a random direction, fractal noise with a
    1/f-like spectrum, sometimes a horizon between two such fields and a grain texture."""
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    a = float(rng.uniform(0, 2 * math.pi))
    t = (xx * math.cos(a) + yy * math.sin(a)) / max(hw)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    c0, c1 = rng.uniform(15, 240, size=(2, 3)).astype(np.float32)
    out = c0 + (c1 - c0) * t[..., None]
    if rng.random() < 0.4:  # a horizon: a second field below a wavy line
        line = hw[0] * float(rng.uniform(0.3, 0.7)) + 0.08 * hw[0] * _smooth_noise(rng, 4, hw)[..., 0]
        below = np.clip((yy - line) / 3.0 + 0.5, 0.0, 1.0)[..., None]
        out = out * (1 - below) + rng.uniform(15, 240, size=3).astype(np.float32) * below
    amplitude = float(rng.uniform(8, 40))
    for cells in NATURAL_OCTAVES:
        if cells <= max(hw):
            out += amplitude * cells ** -NATURAL_FALLOFF * 2.0 * _smooth_noise(rng, cells, hw)
    if rng.random() < 0.35:  # grain: warped stripes, as wood, fabric or water
        freq = float(rng.uniform(0.08, 0.5))
        b = float(rng.uniform(0, math.pi))
        warp = 6.0 * _smooth_noise(rng, 6, hw)[..., 0]
        out += float(rng.uniform(6, 20)) * np.sin((xx * math.cos(b) + yy * math.sin(b)) * freq + warp)[..., None]
    return out


def _shade(canvas: np.ndarray, mask: np.ndarray, center: Point, extent: float, angle: float, strength: float) -> None:
    """Multiply an object's pixels by a linear light falling from ``angle`` (radians); ``strength`` is the relative
    brightness change at the object's edge."""
    ys, xs = np.nonzero(mask)
    along = ((xs - center[0]) * math.cos(angle) + (ys - center[1]) * math.sin(angle)) / max(extent / 2.0, 1.0)
    canvas[ys, xs] *= (1.0 + strength * np.clip(along, -1.0, 1.0))[:, None].astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, count: int) -> None:
    """Paint ``count`` unnamed blobs (ellipses and rectangles in off-palette colours) onto the background."""
    hw = canvas.shape[:2]
    short = min(hw)
    for _ in range(count):
        extent = float(rng.uniform(*CLUTTER_EXTENT)) * short
        cx, cy = float(rng.uniform(0, hw[1])), float(rng.uniform(0, hw[0]))
        w, h = extent, extent * float(rng.uniform(0.3, 1.0))
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        layer = Image.new("L", (hw[1], hw[0]), 0)
        draw = ImageDraw.Draw(layer)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=255)
        canvas[np.asarray(layer) > 0] = off_palette_rgb(rng)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG encode and decode at ``quality`` (the artefacts of a photo)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _pattern_mask(spec: ObjectSpec, center: Point, hw: tuple[int, int]) -> np.ndarray | None:
    if spec.pattern == "solid":
        return None
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    dx, dy = xx - center[0], yy - center[1]
    if spec.pattern == "striped":
        period = max(4.0, spec.extent / 5.0)
        return np.mod(dx + dy, period) < period / 2
    spacing = max(4.0, spec.extent / 4.5)
    fx, fy = np.mod(dx, spacing) - spacing / 2, np.mod(dy, spacing) - spacing / 2
    return fx * fx + fy * fy < (spacing * 0.28) ** 2


def object_rgb(spec: ObjectSpec, colour: str) -> np.ndarray:
    return np.clip(np.array(world.COLOURS[colour], dtype=np.float32) + np.array(spec.jitter), 0, 255)


def off_palette_rgb(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random colour that, and whose pattern shade, is at least ``OFF_PALETTE_DISTANCE`` away from every
    named colour (rejection sampling)."""
    palette = np.array(list(world.COLOURS.values()), dtype=np.float32)
    while True:
        rgb = rng.uniform(0, 255, size=3).astype(np.float32)
        shades = np.stack([rgb, rgb * PATTERN_SHADE])
        if np.linalg.norm(palette[None] - shades[:, None], axis=2).min() >= OFF_PALETTE_DISTANCE:
            return rgb


def paint(canvas: np.ndarray, spec: ObjectSpec, center: Point, layers: PartMasks,
          colour: str | np.ndarray) -> None:
    """Paint one object's parts onto a float canvas in place (``colour``: a name of the palette, or an RGB)."""
    rgb = object_rgb(spec, colour) if isinstance(colour, str) else np.asarray(colour, dtype=np.float32)
    specs = {p.name: p for p in world.COMPOSITES.get(spec.category, ())}
    pattern = _pattern_mask(spec, center, canvas.shape[:2])
    for name, mask in layers:
        coloured = name is None or specs[name].coloured
        if not coloured:
            canvas[mask] = np.array(specs[name].fixed_rgb, dtype=np.float32)
            continue
        canvas[mask] = rgb
        if pattern is not None:
            canvas[mask & pattern] = rgb * PATTERN_SHADE


def finish(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def mask_box(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def visible_masks(full: list[PartMasks]) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per object (in paint order) its visible whole mask and visible part masks."""
    hw = full[0][0][1].shape if full else (0, 0)
    covered = np.zeros(hw, dtype=bool)
    out: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for layers in reversed(full):
        whole = np.zeros(hw, dtype=bool)
        for _, m in layers:
            whole |= m
        parts = {name: m & ~covered for name, m in layers if name is not None}
        out.append((whole & ~covered, parts))
        covered |= whole
    return out[::-1]


# ----------------------------------------------------------------------------------------- sampling


def sample_spec(rng: np.random.Generator, short_side: int, held_out: bool | None,
                size: str | None = None, aspect: tuple[float, float] = OBJECT_ASPECT) -> ObjectSpec:
    """Draw an object. held_out=True forces a held-out (category, colour) combination, False forbids one,
    None allows anything."""
    colours = tuple(world.COLOURS)
    if held_out:
        combos = sorted(world.HELD_OUT)
        category, colour = combos[int(rng.integers(len(combos)))]
    else:
        while True:
            category = world.CATEGORIES[int(rng.integers(len(world.CATEGORIES)))]
            colour = colours[int(rng.integers(len(colours)))]
            if held_out is None or not world.is_held_out(category, colour):
                break
    size = size or world.SIZE_ORDER[int(rng.integers(len(world.SIZE_ORDER)))]
    lo, hi = world.SIZES[size]
    extent = float(rng.uniform(lo, hi)) * short_side
    pattern = "solid" if size == "tiny" else world.PATTERNS[int(rng.integers(len(world.PATTERNS)))]
    rotation = 0.0 if category in ROTATION_FREE else float(rng.uniform(-12, 12))
    return ObjectSpec(
        category=category,
        colour=colour,
        size=size,
        pattern=pattern,
        extent=extent,
        aspect=float(rng.uniform(*aspect)),
        angle=rotation,
        jitter=tuple(int(v) for v in rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)),  # type: ignore[arg-type]
        held_out=world.is_held_out(category, colour),
    )


def fits(full: list[PartMasks]) -> bool:
    """Whether every object keeps enough of its area visible under the ones painted after it."""
    for layers, (vis, _) in zip(full, visible_masks(full)):
        area = sum(int(m.sum()) for _, m in layers)
        if area == 0 or vis.sum() < MIN_VISIBLE_FRACTION * area:
            return False
    return True


SAMPLE_OBJECTS = (3, 4)  # objects in the scene of `pixelrefer synth --sample`


def sample_scene(seed: int = 0, side: int = IMAGE_SIZE[0]) -> Scene:
    """The scene ``pixelrefer synth --sample --seed SEED --image-size SIDE`` writes (the README's first command asks
    about it; the browser test clicks on its objects)."""
    return render_scene(np.random.default_rng(seed), (side, side), SAMPLE_OBJECTS)


def clearest_object(scene: Scene) -> SceneObject:
    """The object a first question should ask about: unoccluded first, then the largest (the sample's ``try:``)."""
    return max(scene.objects, key=lambda o: (not o.occluded, o.area))


def render_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = IMAGE_SIZE,
    n_objects: tuple[int, int] = SCENE_OBJECTS,
    held_out: str = "exclude",
    palette: bool = True,
    variety: Variety = DEFAULT_VARIETY,
) -> Scene:
    """Render one scene.

    Args:
        rng: the only source of randomness.
        size: (H, W) of the image.
        n_objects: inclusive range of the number of objects.
        held_out: `"exclude"` never draws a held-out (category, colour) combination (train/val/test),
            `"require"` makes the first object a held-out one and allows anything for the others.
        palette: paint objects in their named colour; False paints each in a random off-palette colour
            (:func:`off_palette_rgb`; the objects' ``colour`` facts are then meaningless), as vision pretraining does.
        variety: what real photos vary (backgrounds, shading, noise, JPEG, aspect ratios, clutter); the default
            turns all of it off and draws exactly what the plain world draws.
    """
    if held_out not in ("exclude", "require"):
        raise ValueError(f"held_out must be 'exclude' or 'require', got {held_out!r}")
    hw = (int(size[0]), int(size[1]))
    short = min(hw)
    count = int(rng.integers(n_objects[0], n_objects[1] + 1))
    specs = [sample_spec(rng, short, True if held_out == "require" and i == 0 else
                         (False if held_out == "exclude" else None), aspect=variety.aspect) for i in range(count)]
    order = sorted(range(count), key=lambda i: -specs[i].extent * float(rng.uniform(0.75, 1.25)))
    placed: list[tuple[ObjectSpec, Point]] = []
    full: list[PartMasks] = []
    for i in order:
        spec = specs[i]
        for _ in range(MAX_PLACEMENT_TRIES):
            r = spec.extent / 2 + 1
            center = (float(rng.uniform(r, hw[1] - r)), float(rng.uniform(r, hw[0] - r)))
            layers = rasterize(spec, center, hw)
            if fits(full + [layers]):
                placed.append((spec, center))
                full.append(layers)
                break
    canvas = natural_background(rng, hw) if variety.background == "natural" else background(rng, hw)
    if variety.clutter[1] > 0:
        _clutter(rng, canvas, int(rng.integers(variety.clutter[0], variety.clutter[1] + 1)))
    for (spec, center), layers in zip(placed, full):
        paint(canvas, spec, center, layers, spec.colour if palette else off_palette_rgb(rng))
        if variety.shading > 0:
            whole = np.logical_or.reduce([m for _, m in layers])
            angle, strength = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, variety.shading))
            _shade(canvas, whole, center, spec.extent, angle, strength)
    if variety.noise > 0:
        canvas += rng.normal(0.0, variety.noise, size=canvas.shape).astype(np.float32)
    image = finish(canvas)
    if variety.jpeg_quality != (0, 0):
        image = jpeg_round_trip(image, int(rng.integers(variety.jpeg_quality[0], variety.jpeg_quality[1] + 1)))
    return Scene(image=image, objects=_collect(placed, full))


def _collect(placed: list[tuple[ObjectSpec, Point]], full: list[PartMasks]) -> list[SceneObject]:
    objects = []
    for depth, ((spec, center), layers, (vis, parts)) in enumerate(zip(placed, full, visible_masks(full))):
        area = sum(int(m.sum()) for _, m in layers)
        scene_parts = []
        for name, m in layers:
            if name is None:
                continue
            whole_part = int(m.sum())
            seen = parts[name]
            scene_parts.append(ScenePart(name=name, label=world.part_label(spec.category, name), mask=seen,
                                         box=mask_box(seen), visible_fraction=seen.sum() / max(whole_part, 1)))
        objects.append(SceneObject(index=depth, spec=spec, center=center, mask=vis, box=mask_box(vis),
                                   visible_fraction=float(vis.sum()) / max(area, 1), depth=depth, parts=scene_parts))
    return objects
