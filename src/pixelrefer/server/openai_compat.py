"""Read an OpenAI chat-completions request: media from ``image_url``/``video_url`` data URLs, regions from
``{"type": "region", "region": {...}}`` content parts or a top-level ``regions`` list, text from text parts.

One conversation turn is answered: system/developer messages are ignored and a request carrying earlier
assistant turns is refused (use ``pixelrefer chat`` or the Python ``ChatSession`` for conversations).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pixelrefer.server.errors import ApiError
from pixelrefer.server.schemas import ChatCompletionBody

_MEDIA_PARTS = {"image_url": "image", "video_url": "video", "input_image": "image"}


@dataclass
class ChatInput:
    media_url: str | None = None
    regions: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""


def _url(part: dict[str, Any], key: str) -> str:
    value = part.get(key)
    if isinstance(value, dict):
        value = value.get("url")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "invalid_request", f"a {part.get('type')} part needs {{\"{key}\": {{\"url\": \"data:...\"}}}}")
    return value


def _read_parts(content: str | list[dict[str, Any]] | None, out: ChatInput) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in _MEDIA_PARTS:
            if out.media_url is not None:
                raise ApiError(400, "invalid_request", "one image or video per request")
            out.media_url = _url(part, kind if kind != "input_image" else "image_url")
        elif kind == "region":
            region = part.get("region")
            if not isinstance(region, dict):
                raise ApiError(422, "invalid_region", "a region part is {\"type\": \"region\", \"region\": {...}}")
            out.regions.append(region)
        else:
            raise ApiError(400, "unsupported_content", f"unsupported content part type {kind!r}")
    return texts


def parse_chat(body: ChatCompletionBody) -> ChatInput:
    """The media, regions and question of the request (one user turn; several user messages are joined)."""
    out = ChatInput()
    texts: list[str] = []
    for message in body.messages:
        if message.role in ("system", "developer"):
            continue
        if message.role == "assistant":
            raise ApiError(400, "unsupported_conversation",
                           "earlier assistant turns are not supported; send the media, regions and one question")
        texts.extend(_read_parts(message.content, out))
    if body.regions:
        out.regions.extend(body.regions)
    out.text = "\n".join(t for t in texts if t.strip()).strip()
    if not out.text:
        raise ApiError(400, "invalid_request", "the user message has no text")
    return out


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n"
