"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI schema).

Regions use the JSON schema of :mod:`pixelrefer.regions` (``box``, ``points``, ``scribble``, ``polygon``,
``rle``, ``mask_png``, ``mask``, ``frames``); each region object may carry ``"frame": N`` for videos.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RegionJSON = dict[str, Any]

_REGIONS_DOC = (
    "Regions, in the order of the <region> placeholders: objects such as {\"type\": \"box\", \"box\": [x0, y0, x1, y1]}, "
    "{\"type\": \"points\", \"points\": [[x, y]], \"labels\": [1]}, {\"type\": \"polygon\", \"polygons\": [[x0, y0, ...]]}, "
    "{\"type\": \"rle\", \"rle\": {\"size\": [h, w], \"counts\": \"...\"}}, {\"type\": \"mask_png\", \"data\": \"<base64 PNG>\"}. "
    "Empty: an RGBA image's own alpha channel is the region."
)


class MediaIn(BaseModel):
    """Inline media: base64 bytes or a ``data:`` URL of an image or video. URLs and server paths are refused."""

    data: str = Field(..., description="base64 or data: URL of a PNG/JPEG/GIF/BMP/TIFF/WebP image or MP4/WebM/AVI video")


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media: MediaIn
    regions: list[RegionJSON] = Field(default_factory=list, description=_REGIONS_DOC)
    question: str = Field(..., min_length=1, description="text with one <region> per region (added in front if absent)")
    max_new_tokens: int | None = Field(None, ge=1)
    stream: bool = Field(False, description="answer as server-sent events: data: {\"text\": piece} ... data: [DONE]")


class DescribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media: MediaIn
    regions: list[RegionJSON] = Field(default_factory=list, description=_REGIONS_DOC)
    task: str = Field("brief", description="category, part_category, brief, detailed, video_brief, video_detailed")
    max_new_tokens: int | None = Field(None, ge=1)


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media: MediaIn
    regions: list[RegionJSON] = Field(..., min_length=1, description="box / points / scribble prompts to segment")
    propagate: bool = Field(False, description="video: carry each mask to every sampled frame")


class RegionOut(BaseModel):
    """A resolved region: its mask per frame (compressed COCO RLE), pixel area and xyxy box per frame."""

    index: int
    kind: str
    frames: list[int]
    masks: dict[str, dict[str, Any]]
    area: dict[str, int]
    bbox: dict[str, list[int]]
    segmenter: str | None = None
    source_frames: list[int] | None = Field(
        None, description="video: the source frame index of each sampled frame in `frames` (a region's `frame` is a "
                          "source frame index, moved to the nearest sampled frame)")


class AnswerOut(BaseModel):
    text: str
    completion_tokens: int
    prompt_tokens: int
    regions: list[RegionOut]


class AskResponse(BaseModel):
    model: str
    media: Literal["image", "video"]
    question: str
    answer: AnswerOut
    latency_s: float


class DescribeResponse(BaseModel):
    model: str
    media: Literal["image", "video"]
    task: str
    answers: list[AnswerOut]
    latency_s: float


class SegmentResponse(BaseModel):
    media: Literal["image", "video"]
    height: int
    width: int
    regions: list[RegionOut]


class HealthOut(BaseModel):
    status: Literal["ok", "shutting_down"]
    model: str
    queue_waiting: int
    queue_limit: int
    busy: bool


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "pixelrefer"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    type: str
    message: str
    code: int


class ErrorOut(BaseModel):
    error: ErrorDetail


# ----------------------------------------------------------------------------------------- OpenAI-compatible
class ChatMessage(BaseModel):
    """``content``: a string, or parts ``{"type": "text"|"image_url"|"video_url"|"region", ...}``."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionBody(BaseModel):
    """OpenAI chat completions request. Region prompts: content parts ``{"type": "region", "region": {...}}``,
    a top-level ``regions`` list (``extra_body`` in the openai client), or an RGBA image whose alpha is the mask."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    regions: list[RegionJSON] | None = Field(None, description=_REGIONS_DOC)


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatChoiceMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
