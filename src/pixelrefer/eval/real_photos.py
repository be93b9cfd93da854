"""Questions about real photographs: the world-agnostic skills of the synthetic world (colour names, size
words, position words, left/right/above/below/larger relations, same colour) asked on the photos that ship
inside scikit-image and scikit-learn, with hand-drawn boxes (``tests/data/real_photos.json``).

The questions are the world's own templates (:mod:`pixelrefer.synth.tasks`); the size, position and relation
answers follow the world's rules on the annotated boxes (a box's longest side against the photo's short side,
its centre in thirds, centre separation and area ratio), and :func:`load_annotations` rejects an annotation
whose answer disagrees with them. Colours are named by eye from the world's eight colours and checked against
the pixels (see the file's ``notes``). Category names are not asked: real objects are not in this world.

Needs the ``photos`` extra (``pip install "torch==2.13.0" -e ".[photos]"``); no photo is downloaded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelrefer.errors import ConfigError, DataError
from pixelrefer.synth import world
from pixelrefer.synth.tasks import (
    AREA_RATIO,
    RELATION_WHICH,
    RELATION_YESNO,
    SEPARATION,
    THIRD_MARGIN,
    TWO_REGIONS,
    image_region_qa,
)

Box = tuple[int, int, int, int]
SKILLS = ("colour", "size", "position", "relation", "same_colour")
REGION_QA_KINDS = ("colour", "size", "position")  # the region_qa question types asked here
# photo name -> (library, loader); the photos are files inside the two wheels
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut"),
    "coffee": ("skimage", "coffee"),
    "chelsea": ("skimage", "chelsea"),
    "rocket": ("skimage", "rocket"),
    "motorcycle": ("skimage", "stereo_motorcycle"),  # the left view
    "colorwheel": ("skimage", "colorwheel"),
    "logo": ("skimage", "logo"),
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
}


def load_photo(name: str) -> np.ndarray:
    """A photo as uint8 RGB (H, W, 3), read from the scikit-image or scikit-learn wheel (no download)."""
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; known: {', '.join(PHOTOS)}")
    library, loader = PHOTOS[name]
    try:
        if library == "sklearn":
            from sklearn.datasets import load_sample_images

            bunch = load_sample_images()
            image = next(img for path, img in zip(bunch.filenames, bunch.images) if Path(path).name == loader)
        else:
            import skimage.data

            image = getattr(skimage.data, loader)()
            image = image[0] if isinstance(image, tuple) else image
    except ImportError as exc:
        raise ConfigError('the real photos need the "photos" extra: pip install "torch==2.13.0" '
                          '-e ".[photos]"') from exc
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


# ------------------------------------------------------------------------------------ world's rules


def size_word(box: Box, height: int, width: int) -> str | None:
    """The world's size word for a box (longest side / short side of the photo); None in the gaps."""
    extent = max(box[2] - box[0], box[3] - box[1]) / min(height, width)
    return next((name for name, (lo, hi) in world.SIZES.items() if lo <= extent <= hi), None)


def position_word(box: Box, height: int, width: int) -> str | None:
    """The world's position phrase for a box centre; None near a border of the thirds."""
    fx, fy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    if any(min(abs(f - 1 / 3), abs(f - 2 / 3)) < THIRD_MARGIN for f in (fx, fy)):
        return None
    return world.position_phrase(fx, fy)


def relation_holds(relation: str, a: Box, b: Box, height: int, width: int) -> bool | None:
    """Whether ``a`` is ``relation`` to ``b`` by the world's thresholds (:func:`pixelrefer.synth.tasks._relations`
    on box centres; sizes compare box areas, where the world compares visible mask areas); None when not clear-cut."""
    (ax, ay), (bx, by) = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2), ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    if relation in ("left_of", "right_of"):
        return None if abs(ax - bx) < SEPARATION * width else (ax < bx) == (relation == "left_of")
    if relation in ("above", "below"):
        return None if abs(ay - by) < SEPARATION * height else (ay < by) == (relation == "above")
    if relation in ("larger_than", "smaller_than"):
        area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
        if max(area_a, area_b) / max(min(area_a, area_b), 1) < AREA_RATIO:
            return None
        return (area_a > area_b) == (relation == "larger_than")
    raise DataError(f"unknown relation {relation!r}")


def region_qa_templates(seed: int = 0, scenes: int = 50) -> dict[str, str]:
    """The world's question per region_qa type, read off its generator (the most frequent phrasing)."""
    from pixelrefer.synth.scenes import render_scene

    seen: dict[str, Counter[str]] = {k: Counter() for k in REGION_QA_KINDS}
    rng = np.random.default_rng(seed)
    for _ in range(scenes):
        scene = render_scene(rng, (96, 96))
        for _ in range(8):
            ins = image_region_qa(scene, rng, [o.index for o in scene.objects])
            kind = str(ins.meta["question_type"])
            if kind in seen:
                seen[kind][ins.question] += 1
    missing = [k for k, c in seen.items() if not c]
    if missing:
        raise RuntimeError(f"the world's generator asked no {missing} question in {scenes} scenes")
    return {k: c.most_common(1)[0][0] for k, c in seen.items()}


# -------------------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class Question:
    id: str
    skill: str
    photo: str
    boxes: list[Box]
    question: str
    answer: str


def _box(value: Any, where: str, height: int, width: int) -> Box:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value)):
        raise DataError(f"{where}: box must be [x0, y0, x1, y1] whole pixels, got {value!r}")
    x0, y0, x1, y1 = value
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise DataError(f"{where}: box {value} is not inside the {width}x{height} photo")
    return (x0, y0, x1, y1)


def load_annotations(path: str | Path) -> dict[str, Any]:
    """Read and check the annotation file: boxes inside their photo, answers in the world's vocabulary and
    agreeing with its rules. Returns ``{"photos": ..., "regions": {id: {..., "box": Box}}, "relations": [...]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    photos, regions, relations = data.get("photos"), data.get("regions"), data.get("relations")
    if not isinstance(photos, dict) or not isinstance(regions, dict) or not isinstance(relations, list):
        raise DataError(f"{path}: needs 'photos' (dict), 'regions' (dict) and 'relations' (list)")
    for name, shape in photos.items():
        if name not in PHOTOS or set(shape) != {"height", "width"}:
            raise DataError(f"{path}: photo {name!r} must be one of {list(PHOTOS)} with height and width")
    for rid, reg in regions.items():
        photo = reg.get("photo")
        if photo not in photos:
            raise DataError(f"region {rid}: unknown photo {photo!r}")
        h, w = photos[photo]["height"], photos[photo]["width"]
        reg["box"] = _box(reg.get("box"), f"region {rid}", h, w)
        colour, size, position = reg.get("colour"), reg.get("size"), reg.get("position")
        if colour is not None and colour not in world.COLOURS:
            raise DataError(f"region {rid}: colour {colour!r} is not one of the world's {list(world.COLOURS)}")
        if size is not None and size != size_word(reg["box"], h, w):
            raise DataError(f"region {rid}: size {size!r}, but the world's rule gives {size_word(reg['box'], h, w)}")
        if position is not None and position != position_word(reg["box"], h, w):
            raise DataError(f"region {rid}: position {position!r}, but the rule gives "
                            f"{position_word(reg['box'], h, w)}")
    for i, rel in enumerate(relations):
        a, b, kind = rel.get("a"), rel.get("b"), rel.get("relation")
        if a not in regions or b not in regions or regions[a]["photo"] != regions[b]["photo"] or a == b:
            raise DataError(f"relation {i}: regions {a!r}, {b!r} must be two regions of one photo")
        if kind == "same_colour":
            colours = (regions[a].get("colour"), regions[b].get("colour"))
            if None in colours or rel.get("holds") != (colours[0] == colours[1]):
                raise DataError(f"relation {i}: same_colour needs both regions' colours and must follow them")
            continue
        if kind not in RELATION_YESNO or rel.get("form") not in ("yesno", "which"):
            raise DataError(f"relation {i}: unknown relation {kind!r} or form {rel.get('form')!r}")
        if rel["form"] == "which" and kind not in RELATION_WHICH:
            raise DataError(f"relation {i}: {kind} has no 'which' question")
        shape = photos[regions[a]["photo"]]
        holds = relation_holds(kind, regions[a]["box"], regions[b]["box"], shape["height"], shape["width"])
        if holds is None or holds != rel.get("holds"):
            raise DataError(f"relation {i}: {a} {kind} {b} is {holds} by the world's rule, annotated {rel.get('holds')}")
    return {"photos": photos, "regions": regions, "relations": relations}


def questions(annotations: dict[str, Any], templates: dict[str, str] | None = None) -> list[Question]:
    """Every question of the annotations, in the world's phrasing, with its expected answer."""
    templates = templates or region_qa_templates()
    regions = annotations["regions"]
    out = []
    for rid, reg in regions.items():
        for kind in REGION_QA_KINDS:
            if reg.get(kind) is not None:
                out.append(Question(f"{rid}/{kind}", kind, reg["photo"], [reg["box"]], templates[kind], reg[kind]))
    for rel in annotations["relations"]:
        a, b, kind = regions[rel["a"]], regions[rel["b"]], rel["relation"]
        rid = f"{rel['a']}|{rel['b']}/{kind}"
        if kind == "same_colour":
            text, answer, skill = RELATION_YESNO[kind], "yes" if rel["holds"] else "no", "same_colour"
        elif rel["form"] == "which":
            text, answer, skill = RELATION_WHICH[kind], "<region0>" if rel["holds"] else "<region1>", "relation"
            rid += "/which"
        else:
            text, answer, skill = RELATION_YESNO[kind], "yes" if rel["holds"] else "no", "relation"
        out.append(Question(rid, skill, a["photo"], [a["box"], b["box"]], TWO_REGIONS + text, answer))
    return out
