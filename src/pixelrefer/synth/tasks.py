"""Instruction generators: templated, exact question/answer pairs about regions of a scene or video.

Every generator takes a rendered scene (or video), a random generator and the objects allowed as the
primary target, and returns an :class:`Instruction` or ``None`` when the task does not apply (for
example a part question on a scene without composite objects). Questions use the official evaluation
prompts where they exist; answers are deterministic functions of the ground truth.

Every question is one phrasing family of :data:`PHRASINGS` (its first phrasing is the one generators write, the
official prompt where there is one); :func:`rephrase` swaps it for another phrasing of the family, drawn from the
trained phrasings for training data and from all of them, held-out ones included, for evaluation data
(``SynthConfig.paraphrases``), so a model can be scored on wordings it never saw.
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
MCQ_TASK = "multiple_choice"

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
OFF_PALETTE_TASKS = {t: IMAGE_TASKS[t] for t in ("category", "part_category")}  # scenes whose colours have no name
# Follow-up turns of a training sample (SynthConfig.follow_ups): short answers only, the region questions weighted
# up (they are the ones a single answer per forward pass teaches slowest: docs/training.md, experiment 9)
IMAGE_FOLLOW_UP_TASKS: dict[str, float] = {
    "category": 0.15,
    "part_category": 0.1,
    "relation": 0.3,
    "region_qa": 0.25,
    "multiple_choice": 0.2,
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
VIDEO_FOLLOW_UP_TASKS: dict[str, float] = {
    "category": 0.15,
    "motion": 0.25,
    "temporal": 0.2,
    "interaction": 0.2,
    "multiple_choice": 0.2,
}


def with_share(weights: dict[str, float], task: str, share: float | None) -> dict[str, float]:
    """``weights`` with ``task`` at ``share`` of the total and the other tasks scaled to the rest; ``None``: as is."""
    if share is None:
        return weights
    others = sum(w for name, w in weights.items() if name != task)
    return {name: share if name == task else (1.0 - share) * w / others for name, w in weights.items()}


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
    phrasing: str | None = None  # the PHRASINGS family of the question (None: no alternative wording)

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


# ----------------------------------------------------------------------------------------- phrasings


@dataclass(frozen=True)
class Phrasing:
    """One wording of a question; ``held_out`` wordings never appear in training data (only in evaluation data)."""

    text: str
    held_out: bool = False


def _family(default: str, trained: Sequence[str] = (), held_out: Sequence[str] = ()) -> tuple[Phrasing, ...]:
    return (Phrasing(default), *(Phrasing(t) for t in trained), *(Phrasing(t, True) for t in held_out))


# Family key -> phrasings; the first is the generators' (and, with `paraphrases` off, the only) wording.
PHRASINGS: dict[str, tuple[Phrasing, ...]] = {
    "category": _family(CATEGORY_PROMPT,
                        ["What is <region>?", "Name the object in <region>.", "What object is <region>?",
                         "Which shape or object is <region>? Answer with its name."],
                        ["What kind of object is <region>?", "Identify the object in <region>."]),
    "part_category": _family(PART_PROMPT,
                             ["What is <region>? For a part of an object answer 'object:part', else the object.",
                              "Name <region>; if it is a part, answer in the form 'category:subcategory'."],
                             ["Which object or object part is <region>? Answer 'object:part' for a part."]),
    "brief": _family(BRIEF_PROMPT, ["Describe <region> in a few words.", "Give a short description of <region>."],
                     ["Briefly describe <region>."]),
    "detail": _family(DETAIL_PROMPT, ["Describe <region> in detail.", "Give a detailed description of <region>."],
                      ["Tell me everything you see about <region>."]),
    "video_brief": _family(VIDEO_BRIEF_PROMPT, ["Describe the object <region> in the video in a few words."],
                           ["Briefly describe <region> in the video."]),
    "video_detail": _family(VIDEO_DETAIL_PROMPT, ["Describe <region> in the video in detail."],
                            ["Give a detailed description of <region> in the video."]),
    "colour": _family("What colour is <region>?", ["What is the colour of <region>?", "Which colour does <region> have?"],
                      ["Tell me the colour of <region>."]),
    "size": _family("How big is <region>? Answer tiny, small, medium or large.",
                    ["What size is <region>? Answer tiny, small, medium or large.",
                     "Is <region> tiny, small, medium or large?"],
                    ["How large is <region>: tiny, small, medium or large?"]),
    "pattern": _family("What pattern does <region> have?", ["What is the pattern of <region>?"],
                       ["Which pattern is on <region>?"]),
    "position": _family("Where is <region> in the image?",
                        ["In which part of the image is <region>?", "Where in the image is <region> located?"],
                        ["Which part of the image is <region> in?"]),
    "occluded": _family("Is <region> partly hidden by another object?", ["Is <region> partly covered by another object?"],
                        ["Is another object hiding part of <region>?"]),
    "left_of": _family("Is <region0> to the left of <region1>?", ["Is <region0> left of <region1>?"],
                       ["Does <region0> lie to the left of <region1>?"]),
    "right_of": _family("Is <region0> to the right of <region1>?", ["Is <region0> right of <region1>?"],
                        ["Does <region0> lie to the right of <region1>?"]),
    "above": _family("Is <region0> above <region1>?", ["Is <region0> higher up than <region1>?"],
                     ["Does <region0> sit above <region1>?"]),
    "below": _family("Is <region0> below <region1>?", ["Is <region0> lower down than <region1>?"],
                     ["Does <region0> sit below <region1>?"]),
    "larger_than": _family("Is <region0> larger than <region1>?", ["Is <region0> bigger than <region1>?"],
                           ["Does <region0> cover more of the image than <region1>?"]),
    "smaller_than": _family("Is <region0> smaller than <region1>?", ["Is <region0> less big than <region1>?"],
                            ["Does <region0> cover less of the image than <region1>?"]),
    "same_colour": _family("Do <region0> and <region1> have the same colour?",
                           ["Are <region0> and <region1> the same colour?"],
                           ["Is <region0> coloured like <region1>?"]),
    "same_category": _family("Are <region0> and <region1> the same kind of object?",
                             ["Are <region0> and <region1> the same object category?"],
                             ["Do <region0> and <region1> belong to the same category?"]),
    "which_left_of": _family("Which is further to the left, <region0> or <region1>?",
                             ["Which one is more to the left, <region0> or <region1>?"],
                             ["Of <region0> and <region1>, which is further left?"]),
    "which_right_of": _family("Which is further to the right, <region0> or <region1>?",
                              ["Which one is more to the right, <region0> or <region1>?"],
                              ["Of <region0> and <region1>, which is further right?"]),
    "which_above": _family("Which is higher, <region0> or <region1>?", ["Which one is higher up, <region0> or <region1>?"],
                           ["Of <region0> and <region1>, which is higher?"]),
    "which_below": _family("Which is lower, <region0> or <region1>?", ["Which one is lower down, <region0> or <region1>?"],
                           ["Of <region0> and <region1>, which is lower?"]),
    "which_larger_than": _family("Which is larger, <region0> or <region1>?", ["Which one is bigger, <region0> or <region1>?"],
                                 ["Of <region0> and <region1>, which is larger?"]),
    "which_smaller_than": _family("Which is smaller, <region0> or <region1>?",
                                  ["Which one is less big, <region0> or <region1>?"],
                                  ["Of <region0> and <region1>, which is smaller?"]),
    "mc_category": _family("What is the category of <region>?", ["What is <region>?", "Which object is <region>?"],
                           ["What kind of object is <region>?"]),
    "mc_size": _family("How big is <region>?", ["What size is <region>?"], ["How large is <region>?"]),
    "direction": _family("In which direction does <region> move?", ["Which way does <region> move?"],
                         ["What direction is <region> moving in?"]),
    "moves": _family("Does <region> move?", ["Is <region> moving?"], ["Does <region> change its position?"]),
    "event": _family("Does <region> appear later, leave early, or stay in view for the whole video?",
                     ["Does <region> come in later, leave early, or stay in view for the whole video?"],
                     ["Over the video, does <region> appear later, leave early, or stay in view?"]),
    "whole_video": _family("Is <region> visible during the whole video?", ["Can <region> be seen for the whole video?"],
                           ["Is <region> in view from start to end of the video?"]),
    "colour_change": _family("Does <region> change colour?", ["Does the colour of <region> change?"],
                             ["Is the colour of <region> different later in the video?"]),
    "final_colour": _family("What colour is <region> at the end of the video?",
                            ["What colour does <region> have at the end of the video?"],
                            ["At the end of the video, what colour is <region>?"]),
    "distance": _family("Does <object0> move closer to <object1>, further away, or neither?",
                        ["Does <object0> get closer to <object1>, further away, or neither?"],
                        ["Is <object0> moving closer to <object1>, further away, or neither?"]),
    "which_moves": _family("Which one moves, <object0> or <object1>?", ["Which one is moving, <object0> or <object1>?"],
                           ["Of <object0> and <object1>, which moves?"]),
    "same_colour_start": _family("Do <object0> and <object1> have the same colour at the start?",
                                 ["At the start, are <object0> and <object1> the same colour?"],
                                 ["Are <object0> and <object1> coloured alike at the start of the video?"]),
    "mc_motion": _family("How does <region> move?", ["What is the motion of <region>?"],
                         ["How is <region> moving?"]),
    "mc_event": _family("What happens to <region> during the video?", ["What does <region> do during the video?"],
                        ["During the video, what happens to <region>?"]),
}

# More wordings per family (`SynthConfig.phrasing_set: v2`): the v1 wordings, then these, trained ones and held-out
# ones each written for the family, not derived from another family's held-out wordings. v1 stays as it was, so the
# data of earlier recipes is rebuilt byte for byte.
_MORE_WORDINGS: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "category": (["What type of object is <region>?", "Tell me what <region> is.", "What do you see in <region>?",
                  "Which object is shown in <region>?", "What is the object in <region>?", "Name <region>.",
                  "What is shown in <region>? Answer with one word.", "Can you name the object in <region>?",
                  "What kind of shape is <region>?", "Identify <region>."],
                 ["What would you call <region>?", "Which thing is marked by <region>?", "Say what <region> is.",
                  "What is this object: <region>?"]),
    "colour": (["What colour does <region> have?", "Name the colour of <region>.", "Which colour is <region>?",
                "What is <region>'s colour?", "Tell me which colour <region> is."],
               ["What colour would you say <region> is?", "Say the colour of <region>."]),
    "size": (["How big is <region>: tiny, small, medium or large?", "Which size is <region>: tiny, small, medium or large?",
              "Would you call <region> tiny, small, medium or large?",
              "Tell me the size of <region>. Answer tiny, small, medium or large."],
             ["Is <region> a tiny, small, medium or large object?",
              "What is the size of <region>? Say tiny, small, medium or large."]),
    "pattern": (["Which pattern does <region> have?", "Tell me the pattern of <region>.",
                 "Is <region> dotted, striped or solid?", "What does the surface of <region> look like: dotted, striped or solid?"],
                ["Name the pattern of <region>.", "What pattern is <region> painted with?"]),
    "position": (["Where does <region> appear in the image?", "Tell me where <region> is in the image.",
                  "Which part of the picture is <region> in?", "In what part of the image is <region>?"],
                 ["Where can <region> be found in the image?", "Say where in the image <region> is."]),
    "left_of": (["Is <region0> on the left of <region1>?", "Is <region0> further left than <region1>?"],
                ["Is <region0> located to the left of <region1>?"]),
    "right_of": (["Is <region0> on the right of <region1>?", "Is <region0> further right than <region1>?"],
                 ["Is <region0> located to the right of <region1>?"]),
    "above": (["Is <region0> higher than <region1>?", "Is <region0> over <region1>?"],
              ["Is <region0> located above <region1>?"]),
    "below": (["Is <region0> lower than <region1>?", "Is <region0> under <region1>?"],
              ["Is <region0> located below <region1>?"]),
    "larger_than": (["Is <region0> bigger in size than <region1>?", "Does <region0> look larger than <region1>?"],
                    ["Is <region0> the larger of the two, compared with <region1>?"]),
    "smaller_than": (["Is <region0> tinier than <region1>?", "Does <region0> look smaller than <region1>?"],
                     ["Is <region0> the smaller of the two, compared with <region1>?"]),
    "same_colour": (["Do <region0> and <region1> share a colour?", "Is the colour of <region0> the same as that of <region1>?"],
                    ["Are <region0> and <region1> painted in one colour?"]),
    "same_category": (["Are <region0> and <region1> the same type of object?", "Is <region0> the same object as <region1>?"],
                      ["Are <region0> and <region1> one kind of thing?"]),
    "which_left_of": (["Which one is on the left, <region0> or <region1>?"], ["Which lies more to the left: <region0> or <region1>?"]),
    "which_right_of": (["Which one is on the right, <region0> or <region1>?"],
                       ["Which lies more to the right: <region0> or <region1>?"]),
    "which_above": (["Which one is on top, <region0> or <region1>?"], ["Which sits higher: <region0> or <region1>?"]),
    "which_below": (["Which one is at the bottom, <region0> or <region1>?"], ["Which sits lower: <region0> or <region1>?"]),
    "which_larger_than": (["Which one is larger, <region0> or <region1>?"], ["Which is the bigger one: <region0> or <region1>?"]),
    "which_smaller_than": (["Which one is smaller, <region0> or <region1>?"],
                           ["Which is the smaller one: <region0> or <region1>?"]),
    "mc_category": (["Which of these is <region>?", "What type of object is <region>?"], ["Pick the name of <region>."]),
    "mc_size": (["Which size is <region>?", "What is the size of <region>?"], ["Pick the size of <region>."]),
}
PHRASING_SETS: dict[str, dict[str, tuple[Phrasing, ...]]] = {
    "v1": PHRASINGS,
    "v2": {key: family + tuple(Phrasing(t) for t in _MORE_WORDINGS.get(key, ((), ()))[0])
           + tuple(Phrasing(t, True) for t in _MORE_WORDINGS.get(key, ((), ()))[1]) for key, family in PHRASINGS.items()},
}


def ask(family: str) -> str:
    """The generators' wording of a phrasing family (its first phrasing)."""
    return PHRASINGS[family][0].text


def rephrase(ins: Instruction, rng: np.random.Generator, unseen: bool, phrasing_set: str = "v1") -> Instruction:
    """``ins`` asked in a phrasing of its family in ``PHRASING_SETS[phrasing_set]`` drawn from ``rng``: a trained
    phrasing, or any phrasing (held-out ones included) when ``unseen``; ``meta["phrasing"]`` records which. Answers
    and regions stay as they are."""
    if ins.phrasing is None:
        return ins
    family = PHRASING_SETS[phrasing_set][ins.phrasing]
    default = family[0].text
    if default not in ins.question:
        raise ValueError(f"{ins.task}: {ins.question!r} does not contain its phrasing {default!r}")
    choices = [i for i, p in enumerate(family) if unseen or not p.held_out]
    index = choices[int(rng.integers(len(choices)))]
    question = ins.question.replace(default, family[index].text, 1)
    meta = ins.meta | {"phrasing": {"family": ins.phrasing, "index": index, "held_out": family[index].held_out}}
    return Instruction(ins.task, question, ins.answer, ins.targets, meta, ins.phrasing)


# -------------------------------------------------------------------------------------- image tasks

ImageTask = Callable[[Scene, np.random.Generator, list[int]], "Instruction | None"]


def _obj_meta(*objs: SceneObject) -> dict[str, object]:
    return {"objects": [o.facts() for o in objs]}


def image_category(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    obj = scene.objects[_pick(rng, primary)]
    return Instruction("category", CATEGORY_PROMPT, obj.category, [Target(obj.index)], _obj_meta(obj), "category")


def image_part_category(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction | None:
    parts = [(i, p.name, p.label) for i in primary for p in scene.objects[i].parts if p.area >= MIN_PART_PIXELS]
    if not parts or rng.random() < 0.25:
        obj = scene.objects[_pick(rng, primary)]
        return Instruction("part_category", PART_PROMPT, obj.category, [Target(obj.index)], _obj_meta(obj),
                           "part_category")
    i, name, label = parts[int(rng.integers(len(parts)))]
    meta = _obj_meta(scene.objects[i]) | {"part": name}
    return Instruction("part_category", PART_PROMPT, label, [Target(i, name)], meta, "part_category")


def image_brief(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    answer = noun_phrase(o.size, o.colour, o.pattern, o.category)
    return Instruction("brief", BRIEF_PROMPT, answer, [Target(o.index)], _obj_meta(o), "brief")


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
    return Instruction("detail", DETAIL_PROMPT, answer, [Target(o.index)], _obj_meta(o), "detail")


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
        ("colour", ask("colour"), o.colour),
        ("size", ask("size"), o.size),
    ]
    if o.size != "tiny":
        kinds.append(("pattern", ask("pattern"), o.pattern))
    position = _clear_position(o, scene.width, scene.height)
    if position is not None:
        kinds.append(("position", ask("position"), position))
    if o.visible_fraction < OCCLUDED_BELOW or o.visible_fraction >= 0.999:
        kinds.append(("occluded", ask("occluded"), "yes" if o.visible_fraction < OCCLUDED_BELOW else "no"))
    kind, question, answer = kinds[int(rng.integers(len(kinds)))]
    return Instruction("region_qa", question, answer, [Target(o.index)], _obj_meta(o) | {"question_type": kind}, kind)


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


RELATIONS = ("left_of", "right_of", "above", "below", "larger_than", "smaller_than", "same_colour", "same_category")
RELATION_YESNO = {r: ask(r) for r in RELATIONS}
RELATION_WHICH = {r: ask(f"which_{r}") for r in RELATIONS[:6]}  # the relations with a "which one" form


def image_relation(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction | None:
    if len(scene.objects) < 2:
        return None
    a = scene.objects[_pick(rng, primary)]
    b = scene.objects[_pick(rng, [o.index for o in scene.objects if o.index != a.index])]
    relations = _relations(a, b, scene.width, scene.height)
    relation, holds = relations[int(rng.integers(len(relations)))]
    if relation in RELATION_WHICH and rng.random() < 0.5:
        family, answer, form = f"which_{relation}", "<region0>" if holds else "<region1>", "which"
    else:
        family, answer, form = relation, "yes" if holds else "no", "yesno"
    meta = _obj_meta(a, b) | {"relation": relation, "holds": holds, "form": form}
    return Instruction("relation", TWO_REGIONS + ask(family), answer, [Target(a.index), Target(b.index)], meta,
                       family)


def image_multiple_choice(scene: Scene, rng: np.random.Generator, primary: list[int]) -> Instruction:
    o = scene.objects[_pick(rng, primary)]
    kinds = [("category", "mc_category", o.category, world.CATEGORIES),
             ("colour", "colour", o.colour, tuple(world.COLOURS)),
             ("size", "mc_size", o.size, world.SIZE_ORDER)]
    if o.size != "tiny":
        kinds.append(("pattern", "pattern", o.pattern, world.PATTERNS))
    kind, family, correct, pool = kinds[int(rng.integers(len(kinds)))]
    text, letter, options = _multiple_choice(rng, ask(family), correct, pool)
    meta = _obj_meta(o) | {"question_type": kind, "options": options, "correct": correct}
    return Instruction(MCQ_TASK, text, letter, [Target(o.index)], meta, family)


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
    return Instruction("category", CATEGORY_PROMPT, tr.category, [Target(tr.index)], _track_meta(tr), "category")


def video_brief(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    answer = f"{noun_phrase(tr.spec.size, tr.colour, tr.spec.pattern, tr.category)} {motion_phrase(tr.motion)}"
    return Instruction("brief", VIDEO_BRIEF_PROMPT, answer, [Target(tr.index)], _track_meta(tr), "video_brief")


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
    return Instruction("detail", VIDEO_DETAIL_PROMPT, describe_track(tr), [Target(tr.index)], _track_meta(tr),
                       "video_detail")


def direction_answer(motion: str) -> str:
    return "it does not move" if motion == "static" else motion


def video_motion(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    if rng.random() < 0.6:
        kind, answer = "direction", direction_answer(tr.motion)
    else:
        kind, answer = "moves", "no" if tr.motion == "static" else "yes"
    return Instruction("motion", ask(kind), answer, [Target(tr.index)], _track_meta(tr) | {"question_type": kind},
                       kind)


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
        ("event", event_answer(tr)),
        ("whole_video", "no" if tr.appears_late or tr.leaves_early else "yes"),
        ("colour_change", f"yes, from {change[0]} to {change[1]}" if change else "no"),
    ]
    if not tr.leaves_early:
        kinds.append(("final_colour", str(tr.colours[-1])))
    kind, answer = kinds[int(rng.integers(len(kinds)))]
    return Instruction("temporal", ask(kind), answer, [Target(tr.index)], _track_meta(tr) | {"question_type": kind},
                       kind)


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
    kinds: list[tuple[str, str, str]] = []  # question type, phrasing family, answer
    if trend is not None:
        kinds.append(("distance", "distance", trend))
    if len(movers) == 1:
        kinds.append(("which_moves", "which_moves", "<object0>" if movers[0] is a else "<object1>"))
    kinds.append(("same_colour", "same_colour_start", "yes" if a.colour == b.colour else "no"))
    kind, family, answer = kinds[int(rng.integers(len(kinds)))]
    meta = _track_meta(a, b) | {"question_type": kind}
    return Instruction("interaction", TWO_OBJECTS + ask(family), answer, [Target(a.index), Target(b.index)], meta,
                       family)


def video_multiple_choice(video: Video, rng: np.random.Generator, primary: list[int]) -> Instruction:
    tr = video.tracks[_pick(rng, primary)]
    motions = tuple("it stays still" if m == "static" else f"it moves {m}" for m in MOTIONS)
    kinds = [
        ("motion", "mc_motion", motions[MOTIONS.index(tr.motion)], motions),
        ("category", "mc_category", tr.category, world.CATEGORIES),
        ("event", "mc_event", event_answer(tr), ("it appears later", "it leaves early", "it stays in view")),
    ]
    kind, family, correct, pool = kinds[int(rng.integers(len(kinds)))]
    text, letter, options = _multiple_choice(rng, ask(family), correct, pool)
    meta = _track_meta(tr) | {"question_type": kind, "options": options, "correct": correct}
    return Instruction(MCQ_TASK, text, letter, [Target(tr.index)], meta, family)


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
