"""Every prompt rule in one place: the chat template, `<region>` placeholders, and every prompt template.

Templates owned here (and imported by the API, CLI, server, demo, evaluation and synthetic data alike):
:data:`TASK_PROMPTS` (the paper's one-region tasks), :data:`BENCHMARK_PROMPTS` (each benchmark's official wording,
most of them a task prompt), the multiple-choice layouts (:func:`inline_choices`, :func:`listed_choices`, one
:data:`MCQ_SUFFIX`), the menu of tasks a UI offers (:data:`MENU_TASKS`, :func:`menu_question`), the relation and
several-regions wording (:func:`relation_question`, :func:`multi_region_prefix`). Placeholder rules:
:func:`count_region_placeholders`, :func:`check_placeholders`, :func:`expand_regions`; task validation:
:func:`task_prompt`.

Rendering (identical to the official processor):

* image turn: ``<|im_start|>user\\n<image>\\n{text}<|im_end|>\\n``
* video turn: ``<|im_start|>user\\nTime 0.0s:<image>,Time 1.0s:<image>\\n{text}<|im_end|>\\n``
* assistant:  ``<|im_start|>assistant\\n{answer}<|im_end|>\\n``

A ``<image>``/``<video>`` the user wrote stays where it is: the turn is split there, each text chunk is
``.strip()``-ed (empty chunks dropped) and the media item goes between them (:func:`split_at_media`), so
``"Look at <image> and describe <region>."`` renders ``Look at<image>\\nand describe [<REGION>].``. Without a
written tag the media goes first (the official default).

Each ``<image>`` is later expanded to one placeholder per visual token, and each ``<region>`` in user text
becomes ``[<REGION>]`` (PixelRefer) or ``[Time t:<REGION>,...]`` (Lite, video) whose single ``<REGION>`` is
expanded to one placeholder per object token. Expansion happens at id level in
:mod:`pixelrefer.processing.processor`, which gives the same ids as expanding the text because both
placeholders are special tokens.

Control tokens typed by a user (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<REGION>``, or any other
special token of the tokenizer) are refused with a :class:`PromptError` naming the token, in
:func:`check_control_tokens`, which the processor applies to every turn. They are not silently escaped: a
special token in a question is either an attempt to forge a turn or a mistake (``<REGION>`` for ``<region>``),
and both deserve to be told. ``<image>``/``<video>`` tags are removed (the processor places the media), and the
check runs after that removal, so ``<ima<image>ge>`` cannot assemble a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pixelrefer.constants import IMAGE_TOKEN, REGION_PLACEHOLDER, REGION_TOKEN, SPECIAL_TOKENS, VIDEO_TAG
from pixelrefer.errors import PromptError
from pixelrefer.limits import check_question

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- elif item['type'] == 'video' -%}"
    "{%- for t in item['timestamps'] -%}{{ 'Time ' + (t | round(1) | string) + 's:<image>' }}"
    "{%- if not loop.last -%}{{ ',' }}{%- endif -%}{%- endfor -%}{{ '\\n' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

ASSISTANT_HEADER = "<|im_start|>assistant\n"

_REGION_RE = re.compile(re.escape(REGION_PLACEHOLDER))
_MEDIA_TAG_RE = re.compile(rf"{re.escape(IMAGE_TOKEN)}|{re.escape(VIDEO_TAG)}")

# Task prompts of the paper's benchmarks (spec §7), shared by the API, CLI, server, demo and evaluation.
TASK_PROMPTS: dict[str, str] = {
    "category": "What is the category of <region>? Using only one word or phrase.",
    "part_category": (
        "What is the category of <region>? It maybe a subpart of an object. If it is a subpart, output in the "
        "format of 'category:subcategory', else just output the category."
    ),
    "brief": "Please describe <region> briefly.",
    "detailed": "Please describe the <region> in the image in detail.",
    "video_detailed": "Please describe in detail the marked object <region> in the video.",
    "video_brief": "Please describe the object <region> in brief in the video.",
}
RELATION_TASK = "relation"
TASK_NAMES = sorted([*TASK_PROMPTS, RELATION_TASK])

# Each benchmark's prompt, as its official evaluation words it (spec §7); `<video>` is placed by the processor.
BENCHMARK_PROMPTS: dict[str, str] = {
    "lvis": TASK_PROMPTS["category"],
    "paco": TASK_PROMPTS["part_category"],
    "vg": TASK_PROMPTS["brief"],
    "hc_stvg": TASK_PROMPTS["video_brief"],
    "videorefer_d": TASK_PROMPTS["video_detailed"],
    "refl4": "Please describe <region> in brief.",
    "refl4_clair": "Please describe <region> in detail.",
    "dlc_bench": "Please describe the region <region> in the image in detail. Do not describe anything else.",
    "hc_stvg_lite": (
        "There is one object in the video: <region>.\n"
        "Please give a description of the highlighted object in the video. Using only one sentense."
    ),
    "videorefer_d_lite": (
        "There is one object in the video: <region>.\nPlease describe in detail the marked object in the video."
    ),
}
FERRET_LITE_PREFIX = "There is 1 region in the image: <region> "  # Ferret-Bench (Lite): the question's own <region>s go
MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."
MCQ_BEST_OPTION_SUFFIX = MCQ_SUFFIX.removesuffix(".") + " and only give the best option."  # MVBench's wording

# The tasks a UI offers (the demo's menu): "question" sends the typed text; the others a task prompt.
QUESTION_TASK = "question"
MENU_TASKS = (QUESTION_TASK, "category", "brief", "detailed", RELATION_TASK)


def count_region_placeholders(text: str) -> int:
    return len(_REGION_RE.findall(text))


def count_media_tags(text: str) -> int:
    return len(_MEDIA_TAG_RE.findall(text))


def strip_media_tags(text: str) -> str:
    """Remove user-written `<image>`/`<video>` tags (for turns that carry no media)."""
    return _MEDIA_TAG_RE.sub("", text).strip()


def split_at_media(text: str) -> list[str | None]:
    """The official layout of the user turn that carries the media: ``None`` marks where the media item goes.

    The text is split at its `<image>`/`<video>` tag and each chunk ``.strip()``-ed, empty chunks dropped; with no
    tag the media goes first. At most one tag (one media item per sample)."""
    chunks = _MEDIA_TAG_RE.split(text)
    if len(chunks) > 2:
        raise PromptError(
            f"the prompt has {len(chunks) - 1} {IMAGE_TOKEN}/{VIDEO_TAG} tags but one image or video is given; "
            "write the tag once, where the media should go"
        )
    if len(chunks) == 1:
        chunks = ["", text]
    pieces: list[str | None] = []
    for i, chunk in enumerate(chunks):
        if i:
            pieces.append(None)
        if chunk.strip():
            pieces.append(chunk.strip())
    return pieces
def control_tokens(tokenizer: Any = None) -> frozenset[str]:
    """Token texts a user may not type: the format's special tokens plus every special token of ``tokenizer``."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return frozenset(SPECIAL_TOKENS) | {t.content for t in added.values() if getattr(t, "special", False)}


def control_token_pattern(tokens: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any of ``tokens`` (longest first)."""
    return re.compile("|".join(re.escape(t) for t in sorted(set(tokens), key=len, reverse=True)))


_DEFAULT_CONTROL = control_token_pattern(control_tokens())


def check_control_tokens(text: str, pattern: re.Pattern[str] | None = None, what: str = "the question") -> str:
    """Raise :class:`PromptError` if ``text`` holds a control token (``pattern`` from :func:`control_token_pattern`;
    default: the format's own special tokens); returns ``text``."""
    match = (pattern or _DEFAULT_CONTROL).search(text)
    if match is None:
        return text
    token = match.group(0)
    if token == REGION_TOKEN:
        raise PromptError(f"{what} contains {REGION_TOKEN}, the model's internal region token; write "
                          f"{REGION_PLACEHOLDER} (lower case) where each region goes")
    raise PromptError(f"{what} contains the control token {token!r} at character {match.start()}; control tokens "
                      "cannot be typed in user text (remove it)")


def check_user_text(text: str, pattern: re.Pattern[str] | None = None, what: str = "the question") -> str:
    """Refuse control tokens in a user turn; its `<image>`/`<video>` tag is allowed (it marks where the media goes).
    Returns ``text`` unchanged."""
    check_control_tokens(strip_media_tags(text), pattern, what)
    return text


def expand_regions(text: str, region_groups: Sequence[Sequence[float] | None]) -> str:
    """Replace each `<region>` (left to right) by its bracketed placeholder group.

    ``region_groups[i]`` is ``None`` for a plain group ``[<REGION>]`` or the list of timestamps (seconds) of a
    multi-frame Lite object, giving ``[Time 0.0:<REGION>,Time 1.0:<REGION>]`` (official Lite format, no 's').
    Raises :class:`PromptError` when the number of placeholders and regions differ.
    """
    n_placeholders = count_region_placeholders(text)
    if n_placeholders != len(region_groups):
        raise PromptError(
            f"the text has {n_placeholders} {REGION_PLACEHOLDER} placeholder(s) but {len(region_groups)} region(s) "
            "were given; write one <region> per region, in order"
        )
    groups = iter(region_groups)

    def group_text(_: re.Match) -> str:
        stamps = next(groups)
        if stamps is None:
            return f"[{REGION_TOKEN}]"
        return "[" + ",".join(f"Time {round(float(t), 1)}:{REGION_TOKEN}" for t in stamps) + "]"

    return _REGION_RE.sub(group_text, text)


def multi_region_prefix(num_regions: int) -> str:
    """The official demo's prefix naming several regions: 'There are 2 regions in the image: <region0><region>, ...'."""
    noun = "region" if num_regions == 1 else "regions"
    verb = "is" if num_regions == 1 else "are"
    names = ", ".join(f"<region{i}>{REGION_PLACEHOLDER}" for i in range(num_regions))
    return f"There {verb} {num_regions} {noun} in the image: {names}. "


def relation_question(num_regions: int) -> str:
    """'What is the relationship between <region> and <region>?' for two or more regions."""
    if num_regions < 2:
        raise PromptError("the relation task needs at least two regions")
    names = [REGION_PLACEHOLDER] * num_regions
    return f"What is the relationship between {', '.join(names[:-1])} and {names[-1]}?"


def task_prompt(task: str) -> str:
    """The prompt of a one-region task; :class:`PromptError` naming the choices for any other name."""
    if task == RELATION_TASK:
        raise PromptError("the relation task asks about several regions at once; it has no one-region prompt")
    if task not in TASK_PROMPTS:
        raise PromptError(f"unknown task {task!r}; choose one of {TASK_NAMES}")
    return TASK_PROMPTS[task]


def check_placeholders(text: str, num_regions: int, what: str = "the question") -> str:
    """Raise :class:`PromptError` unless ``text`` has exactly ``num_regions`` `<region>` placeholders."""
    found = count_region_placeholders(text)
    if found != num_regions:
        raise PromptError(f"{what} needs exactly {num_regions} {REGION_PLACEHOLDER} placeholder(s), found {found}")
    return text


def lettered(options: Sequence[str]) -> list[str]:
    """``["(A) first", "(B) second", ...]``."""
    return [f"({chr(ord('A') + i)}) {option}" for i, option in enumerate(options)]


def inline_choices(question: str, lettered_options: Sequence[str]) -> str:
    """VideoRefer-Bench-Q's layout (also the synthetic data's): ``"Q (A) x (B) y. Answer with the option's ..."``."""
    return f"{question} {' '.join(lettered_options)}. {MCQ_SUFFIX}"


def listed_choices(question: str, options: Sequence[str]) -> str:
    """MVBench's layout: ``"Question: Q\\nOptions:\\n(A) x\\n(B) y\\nAnswer with ... the best option."``."""
    lines = "".join(f"{line}\n" for line in lettered(options))
    return f"Question: {question}\nOptions:\n{lines}{MCQ_BEST_OPTION_SUFFIX}"


def compose_question(question: str | None, num_regions: int, task: str | None = None) -> str:
    """The question sent to the model: a task prompt, or the user's text with region placeholders in front
    ("There are 2 regions in the image: ...") when it names none. Shared by the CLI, server and demo."""
    if task:
        if task == RELATION_TASK:
            return relation_question(num_regions)
        prompt = task_prompt(task)
        if num_regions != 1:
            raise PromptError(f"the {task} task asks about one region; {num_regions} were given")
        return prompt
    text = check_user_text(check_question(question or "")).strip()
    if not strip_media_tags(text):
        raise PromptError("the question is empty")
    if num_regions and count_region_placeholders(text) == 0:
        text = multi_region_prefix(num_regions) + text
    return text


def menu_question(task: str, question: str | None, num_regions: int, is_video: bool = False) -> str:
    """The text sent for a task picked from :data:`MENU_TASKS`: the typed question (``"question"``), else the task's
    prompt (its video wording on a video), asked about each region at once when there are several."""
    if is_video and f"video_{task}" in TASK_PROMPTS:
        task = f"video_{task}"
    if task in ("", QUESTION_TASK):
        return compose_question(question, num_regions)
    if task != RELATION_TASK and num_regions > 1:
        return compose_question(task_prompt(task).replace(REGION_PLACEHOLDER, "each region"), num_regions)
    return compose_question(None, num_regions, task)
