"""Instruction generators: templated, exact question/answer pairs about regions of a scene or video.

Every generator takes a rendered scene (or video), a random generator and the objects allowed as the
primary target, and returns an :class:`Instruction` or ``None`` when the task does not apply (for
example a part question on a scene without composite objects). Questions use the official evaluation
prompts where they exist; answers are deterministic functions of the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pixelrefer.constants import REGION_PLACEHOLDER
from pixelrefer.processing.prompts import TASK_PROMPTS, inline_choices, lettered
from pixelrefer.synth import world
from pixelrefer.synth.scenes import MIN_PART_PIXELS, Box, Scene, SceneObject
from pixelrefer.synth.videos import MOTIONS, Track, Video

CATEGORY_PROMPT = TASK_PROMPTS["category"]
PART_PROMPT = TASK_PROMPTS["part_category"]
BRIEF_PROMPT = TASK_PROMPTS["brief"]
DETAIL_PROMPT = TASK_PROMPTS["detailed"]
VIDEO_BRIEF_PROMPT = TASK_PROMPTS["video_brief"]
VIDEO_DETAIL_PROMPT = TASK_PROMPTS["video_detailed"]
TWO_REGIONS = "There are two regions in the image: <region0><region>, <region1><region>. "
TWO_OBJECTS = "There are two objects in the video: <object0><region>, <object1><region>. "
LETTERS = "ABCD"

SEPARATION = 0.1  # centre distance (fraction of the image side) for a left/right or above/below answer
AREA_RATIO = 1.6  # visible-area ratio for a larger/smaller answer
THIRD_MARGIN = 0.03  # keep position answers away from the borders of the thirds
OCCLUDED_BELOW = 0.85  # visible fraction under which an object counts as "partly hidden"
DISTANCE_CHANGE = 0.12  # change of centre distance (fraction of the short side) for closer/further
DISTANCE_STEADY = 0.04

IMAGE_TASKS: dict[str, float] = {
    "category": 0.24,
    "part_category": 0.12,
    "brief": 0.12,
    "detail": 0.08,
    "relation": 0.16,
    "region_qa": 0.14,
    "multiple_choice": 0.14,
}
VIDEO_TASKS: dict[str, float] = {
    "category": 0.2,
    "brief": 0.1,
    "detail": 0.1,
    "motion": 0.15,
    "temporal": 0.15,
    "interaction": 0.12,
    "multiple_choice": 0.18,
}


@dataclass(frozen=True)
class Target:
    """A referred region: an object (or video track) index and optionally one of its parts."""

    obj: int
    part: str | None = None


@dataclass
class Instruction:
    task: str
    question: str  # without the media tag; one <region> per target, in order
    answer: str
    targets: list[Target]
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.question.count(REGION_PLACEHOLDER) != len(self.targets):
            raise ValueError(f"{self.task}: {self.question!r} does not have {len(self.targets)} <region>")


# ------------------------------------------------------------------------------------------- phrases


def noun_phrase(size: str, colour: str, pattern: str, category: str) -> str:
    words = [size, colour] + ([pattern] if pattern != "solid" else []) + [category]
    return f"{world.article(size)} {' '.join(words)}"


def motion_phrase(motion: str) -> str:
    return "that stays still" if motion == "static" else f"moving {motion}"


def _centre(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)


def _pick(rng: np.random.Generator, items: Sequence[int]) -> int:
    return int(items[int(rng.integers(len(items)))])


def _multiple_choice(rng: np.random.Generator, question: str, correct: str, pool: Sequence[str]
                     ) -> tuple[str, str, list[str]]:
    """Question with up to four shuffled options, the correct letter and the options."""
    wrong = [p for p in pool if p != correct]
    picked = [wrong[int(i)] for i in rng.permutation(len(wrong))[: len(LETTERS) - 1]]
    options = [picked[int(i)] for i in rng.permutation(len(picked))]
    options.insert(int(rng.integers(len(options) + 1)), correct)
    return inline_choices(question, lettered(options)), LETTERS[options.index(correct)], options


# -------------------------------------------------------------------------------------- image tasks

ImageTask = Callable[[Scene, np.random.Generator, list[int]], "Instruction | None"]


def _obj_meta(*objs: SceneObject) -> dict[str, object]:
    return {"objects": [o.facts() for o in objs]}


def image_category(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    obj = scene.objects[_pick(rng, primary)]
    return Instruction("category", CATEGORY_PROMPT, obj.category, [Target(obj.index)], _obj_meta(obj))


def image_part_category(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction | None:
    parts = [(i, p.name, p.label) for i in primary for p in scene.objects[i].parts if p.area >= MIN_PART_PIXELS]
    if not parts or rng.random() < 0.25:
        obj = scene.objects[_pick(rng, primary)]
        return Instruction("part_category", PART_PROMPT, obj.category, [Target(obj.index)], _obj_meta(obj))
    i, name, label = parts[int(rng.integers(len(parts)))]
    meta = _obj_meta(scene.objects[i]) | {"part": name}
    return Instruction("part_category", PART_PROMPT, label, [Target(i, name)], meta)


def image_brief(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    answer = noun_phrase(o.size, o.colour, o.pattern, o.category)
    return Instruction("brief", BRIEF_PROMPT, answer, [Target(o.index)], _obj_meta(o))


def describe_object(o: SceneObject, width: int, height: int) -> str:
    """The detailed description: fixed sentence order, each sentence a fact of the ground truth."""
    cx, cy = _centre(o.box)
    pattern = "It has a solid colour." if o.pattern == "solid" else f"It is {o.pattern}."
    out = [f"This is {noun_phrase(o.size, o.colour, 'solid', o.category)}.", pattern,
           f"It is in the {world.position_phrase(cx / width, cy / height)} of the image."]
    if o.parts:
        names = [p.name for p in o.parts]
        out.append(f"It has a {', a '.join(names[:-1])} and a {names[-1]}.")
    if o.visible_fraction < OCCLUDED_BELOW:
        out.append("It is partly hidden by another object.")
    return " ".join(out)


def image_detail(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    answer = describe_object(o, scene.width, scene.height)
    return Instruction("detail", DETAIL_PROMPT, answer, [Target(o.index)], _obj_meta(o))


def _clear_position(o: SceneObject, width: int, height: int) -> str | None:
    cx, cy = _centre(o.box)
    fx, fy = cx / width, cy / height
    for f in (fx, fy):
        if min(abs(f - 1 / 3), abs(f - 2 / 3)) < THIRD_MARGIN:
            return None
    return world.position_phrase(fx, fy)


def image_region_qa(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    kinds: list[tuple[str, str, str]] = [
        ("colour", "What colour is <region>?", o.colour),
        ("size", "How big is <region>? Answer tiny, small, medium or large.", o.size),
    ]
    if o.size != "tiny":
        kinds.append(("pattern", "What pattern does <region> have?", o.pattern))
    position = _clear_position(o, scene.width, scene.height)
    if position is not None:
        kinds.append(("position", "Where is <region> in the image?", position))
    if o.visible_fraction < OCCLUDED_BELOW or o.visible_fraction >= 0.999:
        kinds.append(("occluded", "Is <region> partly hidden by another object?",
                      "yes" if o.visible_fraction < OCCLUDED_BELOW else "no"))
    kind, question, answer = kinds[int(rng.integers(len(kinds)))]
    return Instruction("region_qa", question, answer, [Target(o.index)], _obj_meta(o) | {"question_type": kind})


def _relations(a: SceneObject, b: SceneObject, width: int, height: int) -> list[tuple[str, bool]]:
    """(relation of a to b, whether it holds) for every relation that is clear-cut for this pair."""
    (ax, ay), (bx, by) = _centre(a.box), _centre(b.box)
    out: list[tuple[str, bool]] = []
    if abs(ax - bx) >= SEPARATION * width:
        out += [("left_of", ax < bx), ("right_of", ax > bx)]
    if abs(ay - by) >= SEPARATION * height:
        out += [("above", ay < by), ("below", ay > by)]
    big, small = max(a.area, b.area), max(min(a.area, b.area), 1)
    if big / small >= AREA_RATIO:
        out += [("larger_than", a.area > b.area), ("smaller_than", a.area < b.area)]
    out += [("same_colour", a.colour == b.colour), ("same_category", a.category == b.category)]
    return out


RELATION_YESNO = {
    "left_of": "Is <region0> to the left of <region1>?",
    "right_of": "Is <region0> to the right of <region1>?",
    "above": "Is <region0> above <region1>?",
    "below": "Is <region0> below <region1>?",
    "larger_than": "Is <region0> larger than <region1>?",
    "smaller_than": "Is <region0> smaller than <region1>?",
    "same_colour": "Do <region0> and <region1> have the same colour?",
    "same_category": "Are <region0> and <region1> the same kind of object?",
}
RELATION_WHICH = {
    "left_of": "Which is further to the left, <region0> or <region1>?",
    "right_of": "Which is further to the right, <region0> or <region1>?",
    "above": "Which is higher, <region0> or <region1>?",
    "below": "Which is lower, <region0> or <region1>?",
    "larger_than": "Which is larger, <region0> or <region1>?",
    "smaller_than": "Which is smaller, <region0> or <region1>?",
}


def image_relation(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction | None:
    if len(scene.objects) < 2:
        return None
    a = scene.objects[_pick(rng, primary)]
    b = scene.objects[_pick(rng, [o.index for o in scene.objects if o.index != a.index])]
    relations = _relations(a, b, scene.width, scene.height)
    relation, holds = relations[int(rng.integers(len(relations)))]
    if relation in RELATION_WHICH and rng.random() < 0.5:
        question, answer, form = RELATION_WHICH[relation], "<region0>" if holds else "<region1>", "which"
    else:
        question, answer, form = RELATION_YESNO[relation], "yes" if holds else "no", "yesno"
    meta = _obj_meta(a, b) | {"relation": relation, "holds": holds, "form": form}
    return Instruction("relation", TWO_REGIONS + question, answer, [Target(a.index), Target(b.index)], meta)


def image_multiple_choice(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    kinds = [("category", "What is the category of <region>?", o.category, world.CATEGORIES),
             ("colour", "What colour is <region>?", o.colour, tuple(world.COLOURS)),
             ("size", "How big is <region>?", o.size, world.SIZE_ORDER)]
    if o.size != "tiny":
        kinds.append(("pattern", "What pattern does <region> have?", o.pattern, world.PATTERNS))
    kind, question, correct, pool = kinds[int(rng.integers(len(kinds)))]
    text, letter, options = _multiple_choice(rng, question, correct, pool)
    meta = _obj_meta(o) | {"question_type": kind, "options": options, "correct": correct}
    return Instruction("multiple_choice", text, letter, [Target(o.index)], meta)


IMAGE_GENERATORS: dict[str, ImageTask] = {
    "category": image_category,
    "part_category": image_part_category,
    "brief": image_brief,
    "detail": image_detail,
    "relation": image_relation,
    "region_qa": image_region_qa,
    "multiple_choice": image_multiple_choice,
}


# -------------------------------------------------------------------------------------- video tasks

VideoTask = Callable[[Video, np.random.Generator, list[int]], "Instruction | None"]


def _track_meta(*tracks: Track) -> dict[str, object]:
    return {"objects": [t.facts() for t in tracks]}


def video_category(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    return Instruction("category", CATEGORY_PROMPT, tr.category, [Target(tr.index)], _track_meta(tr))


def video_brief(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    answer = f"{noun_phrase(tr.spec.size, tr.colour, tr.spec.pattern, tr.category)} {motion_phrase(tr.motion)}"
    return Instruction("brief", VIDEO_BRIEF_PROMPT, answer, [Target(tr.index)], _track_meta(tr))


def describe_track(tr: Track) -> str:
    pattern = "" if tr.spec.pattern == "solid" else f" {tr.spec.pattern}"
    out = [f"This is {world.article(tr.spec.size)} {tr.spec.size} {tr.colour}{pattern} {tr.category}."]
    out.append("It stays still." if tr.motion == "static" else f"It moves {tr.motion}.")
    if tr.appears_late:
        out.append("It appears after the start of the video.")
    if tr.leaves_early:
        out.append("It disappears before the end of the video.")
    change = tr.colour_change
    if change is not None:
        out.append(f"It changes colour from {change[0]} to {change[1]}.")
    return " ".join(out)


def video_detail(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    return Instruction("detail", VIDEO_DETAIL_PROMPT, describe_track(tr), [Target(tr.index)], _track_meta(tr))


def direction_answer(motion: str) -> str:
    return "it does not move" if motion == "static" else motion


def video_motion(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    if rng.random() < 0.6:
        kind, question, answer = "direction", "In which direction does <region> move?", direction_answer(tr.motion)
    else:
        kind, question, answer = "moves", "Does <region> move?", "no" if tr.motion == "static" else "yes"
    return Instruction("motion", question, answer, [Target(tr.index)], _track_meta(tr) | {"question_type": kind})


def event_answer(tr: Track) -> str:
    if tr.appears_late:
        return "it appears later"
    if tr.leaves_early:
        return "it leaves early"
    return "it stays in view"


def video_temporal(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    change = tr.colour_change
    kinds = [
        ("event", "Does <region> appear later, leave early, or stay in view for the whole video?", event_answer(tr)),
        ("whole_video", "Is <region> visible during the whole video?",
         "no" if tr.appears_late or tr.leaves_early else "yes"),
        ("colour_change", "Does <region> change colour?",
         f"yes, from {change[0]} to {change[1]}" if change else "no"),
    ]
    if not tr.leaves_early:
        end = tr.colours[-1]
        kinds.append(("final_colour", "What colour is <region> at the end of the video?", str(end)))
    kind, question, answer = kinds[int(rng.integers(len(kinds)))]
    return Instruction("temporal", question, answer, [Target(tr.index)], _track_meta(tr) | {"question_type": kind})


def distance_trend(a: Track, b: Track, short_side: int) -> str | None:
    """`closer`, `further away` or `neither` over the frames where both are visible; None if unclear."""
    common = [t for t in a.present if t in set(b.present)]
    if len(common) < 2:
        return None
    first, last = common[0], common[-1]

    def dist(t: int) -> float:
        (ax, ay), (bx, by) = _centre(a.box(t)), _centre(b.box(t))
        return float(np.hypot(ax - bx, ay - by))

    change = (dist(last) - dist(first)) / short_side
    if change <= -DISTANCE_CHANGE:
        return "closer"
    if change >= DISTANCE_CHANGE:
        return "further away"
    if abs(change) <= DISTANCE_STEADY:
        return "neither"
    return None


def video_interaction(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction | None:
    if len(video.tracks) < 2:
        return None
    a = video.tracks[_pick(rng, primary)]
    b = video.tracks[_pick(rng, [t.index for t in video.tracks if t.index != a.index])]
    movers = [tr for tr in (a, b) if tr.motion != "static"]
    trend = distance_trend(a, b, min(video.height, video.width))
    kinds: list[tuple[str, str, str]] = []
    if trend is not None:
        kinds.append(("distance", "Does <object0> move closer to <object1>, further away, or neither?", trend))
    if len(movers) == 1:
        answer = "<object0>" if movers[0] is a else "<object1>"
        kinds.append(("which_moves", "Which one moves, <object0> or <object1>?", answer))
    kinds.append(("same_colour", "Do <object0> and <object1> have the same colour at the start?",
                  "yes" if a.colour == b.colour else "no"))
    kind, question, answer = kinds[int(rng.integers(len(kinds)))]
    meta = _track_meta(a, b) | {"question_type": kind}
    return Instruction("interaction", TWO_OBJECTS + question, answer, [Target(a.index), Target(b.index)], meta)


def video_multiple_choice(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    motions = tuple("it stays still" if m == "static" else f"it moves {m}" for m in MOTIONS)
    kinds = [
        ("motion", "How does <region> move?", motions[MOTIONS.index(tr.motion)], motions),
        ("category", "What is the category of <region>?", tr.category, world.CATEGORIES),
        ("event", "What happens to <region> during the video?", event_answer(tr),
         ("it appears later", "it leaves early", "it stays in view")),
    ]
    kind, question, correct, pool = kinds[int(rng.integers(len(kinds)))]
    text, letter, options = _multiple_choice(rng, question, correct, pool)
    meta = _track_meta(tr) | {"question_type": kind, "options": options, "correct": correct}
    return Instruction("multiple_choice", text, letter, [Target(tr.index)], meta)


VIDEO_GENERATORS: dict[str, VideoTask] = {
    "category": video_category,
    "brief": video_brief,
    "detail": video_detail,
    "motion": video_motion,
    "temporal": video_temporal,
    "interaction": video_interaction,
    "multiple_choice": video_multiple_choice,
}

# ------------------------------------------------------------------------------------------ sampling


def _sample_task(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def image_instruction(scene: Scene, rng: np.random.Generator, primary: list[int] | None = None,
                      task: str | None = None, weights: dict[str, float] | None = None) -> Instruction:
    """One instruction about `scene`; the first region is drawn from `primary` (all objects if None)."""
    primary = primary if primary is not None else [o.index for o in scene.objects]
    name = task or _sample_task(rng, weights or IMAGE_TASKS)
    out = IMAGE_GENERATORS[name](scene, rng, primary)
    return out if out is not None else image_category(scene, rng, primary)


def video_instruction(video: Video, rng: np.random.Generator, primary: list[int] | None = None,
                      task: str | None = None, weights: dict[str, float] | None = None) -> Instruction:
    """One instruction about `video`; the first region is drawn from `primary` (all tracks if None)."""
    primary = primary if primary is not None else [t.index for t in video.tracks]
    name = task or _sample_task(rng, weights or VIDEO_TASKS)
    out = VIDEO_GENERATORS[name](video, rng, primary)
    return out if out is not None else video_category(video, rng, primary)
