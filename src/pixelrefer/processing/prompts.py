"""Every prompt rule in one place: the chat template, `<region>` expansion and task prompts.

Rendering (identical to the official processor):

* image turn: ``<|im_start|>user\\n<image>\\n{text}<|im_end|>\\n``
* video turn: ``<|im_start|>user\\nTime 0.0s:<image>,Time 1.0s:<image>\\n{text}<|im_end|>\\n``
* assistant:  ``<|im_start|>assistant\\n{answer}<|im_end|>\\n``

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
TURN_END = "<|im_end|>\n"

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
MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."


def count_region_placeholders(text: str) -> int:
    return len(_REGION_RE.findall(text))


def strip_media_tags(text: str) -> str:
    """Remove user-written `<image>`/`<video>` tags; the processor places the media itself."""
    return _MEDIA_TAG_RE.sub("", text).strip()


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


def clean_user_text(text: str, pattern: re.Pattern[str] | None = None) -> str:
    """A user turn as the processor uses it: media tags removed, then control tokens refused."""
    return check_control_tokens(strip_media_tags(text), pattern)


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


RELATION_TASK = "relation"


def relation_question(num_regions: int) -> str:
    """'What is the relationship between <region> and <region>?' for two or more regions."""
    if num_regions < 2:
        raise PromptError("the relation task needs at least two regions")
    names = ["<region>"] * num_regions
    return f"What is the relationship between {', '.join(names[:-1])} and {names[-1]}?"


def compose_question(question: str | None, num_regions: int, task: str | None = None) -> str:
    """The question sent to the model: a task prompt, or the user's text with region placeholders in front
    ("There are 2 regions in the image: ...") when it names none. Shared by the CLI, server and demo."""
    if task:
        if task == RELATION_TASK:
            return relation_question(num_regions)
        if task not in TASK_PROMPTS:
            raise PromptError(f"unknown task {task!r}; choose one of {sorted([*TASK_PROMPTS, RELATION_TASK])}")
        if num_regions != 1:
            raise PromptError(f"the {task} task asks about one region; {num_regions} were given")
        return TASK_PROMPTS[task]
    text = clean_user_text(check_question(question or ""))
    if not text:
        raise PromptError("the question is empty")
    if num_regions and count_region_placeholders(text) == 0:
        text = multi_region_prefix(num_regions) + text
    return text
