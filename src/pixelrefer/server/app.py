"""The HTTP API: ``create_app(pipeline, settings)`` builds a FastAPI app around one loaded model.

Endpoints: ``/health``, ``/v1/models``, ``/v1/ask`` (+ ``/upload``), ``/v1/describe`` (+ ``/upload``),
``/v1/segment`` (+ ``/upload``), OpenAI-compatible ``/v1/chat/completions``; OpenAPI at ``/openapi.json``.
All model work runs on one worker thread behind a bounded queue (see :mod:`pixelrefer.server.worker`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import astuple
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import StreamingResponse

from pixelrefer.processing.prompts import PromptError, compose_question
from pixelrefer.server import openai_compat as oa
from pixelrefer.server.errors import ApiError, error_response, install_error_handlers
from pixelrefer.server.media_io import DecodedMedia, decode_base64, decode_media
from pixelrefer.server.runtime import DecodeSlots, PieceStream, sse, submit, wait
from pixelrefer.server.schemas import (
    AskBody,
    AskResponse,
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletion,
    ChatCompletionBody,
    DescribeBody,
    DescribeResponse,
    ErrorOut,
    HealthOut,
    ModelCard,
    ModelList,
    SegmentBody,
    SegmentResponse,
    Usage,
)
from pixelrefer.server.service import (
    ModelService,
    Question,
    answer_out,
    generation_config,
    parse_regions,
    region_out,
)
from pixelrefer.server.settings import ServerSettings
from pixelrefer.server.worker import ModelWorker

logger = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 404, 413, 415, 422, 429, 503, 504)
}
BODY_SLACK = 256 * 1024


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413.

    A declared Content-Length is checked up front (the server enforces it); a chunked body without one is
    read here first, up to the limit, and replayed to the app.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length", b"")
        too_big = error_response(413, "payload_too_large", f"the request body exceeds {self.limit} bytes")
        if length.isdigit():
            if int(length) > self.limit:
                await too_big(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def create_app(pipeline: Any, settings: ServerSettings | None = None, segmenter: Any = None) -> FastAPI:
    """A FastAPI app serving ``pipeline`` (a :class:`pixelrefer.PixelRefer`); one worker thread owns it."""
    settings = settings or ServerSettings()
    service = ModelService(pipeline, segmenter)
    worker = ModelWorker(settings.max_queue, batch_fn=service.ask_batch, max_batch=settings.max_batch)
    slots = DecodeSlots(settings.max_queue + 2)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        logger.info("shutting down: refusing new requests, finishing the running one")
        worker.close()

    app = FastAPI(title="PixelRefer", version="0.1.0", lifespan=lifespan,
                  description="Ask about regions (boxes, points, scribbles, polygons, masks) of images and videos.")
    app.state.worker = worker
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes * 4 // 3 + BODY_SLACK)
    _add_info_routes(app, settings, worker)
    _add_region_routes(app, settings, service, worker, slots)
    _add_openai_routes(app, settings, service, worker, slots)
    return app


def _add_info_routes(app: FastAPI, settings: ServerSettings, worker: ModelWorker) -> None:
    @app.get("/health", response_model=HealthOut)
    async def health() -> HealthOut:
        return HealthOut(status="shutting_down" if worker.closing else "ok", model=settings.model_name,
                         queue_waiting=worker.depth, queue_limit=settings.max_queue, busy=worker.busy)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name)])


def _question(text: str | None, num_regions: int, task: str | None = None) -> str:
    try:
        return compose_question(text, num_regions, task)
    except PromptError as exc:
        raise ApiError(400, "invalid_prompt", str(exc)) from exc


def _add_region_routes(app: FastAPI, settings: ServerSettings, service: ModelService, worker: ModelWorker,
                       slots: DecodeSlots) -> None:
    # Long on purpose: the shared handlers (ask, describe, segment) and the six routes that call them close over
    # the same settings/service/worker, so they are registered together.
    async def load(data: bytes) -> DecodedMedia:
        return await slots.decode(decode_media, data, settings)

    async def ask(media: DecodedMedia, raw_regions: list, text: str, max_new_tokens: int | None,
                  stream: bool) -> Any:
        regions = parse_regions(raw_regions, media, settings)
        question = Question(media, regions, _question(text, len(regions)),
                            generation_config(settings, max_new_tokens))
        start = time.perf_counter()
        if stream:
            return _stream_answer(worker, service, question, settings, regions)
        key = astuple(question.generation)
        answer = await wait(submit(lambda: worker.submit_batchable(question, key)), settings.request_timeout_s)
        return AskResponse(model=settings.model_name, media=media.kind, question=question.text,
                           answer=answer_out(answer, regions), latency_s=round(time.perf_counter() - start, 3))

    async def describe(media: DecodedMedia, raw_regions: list, task: str, max_new_tokens: int | None) -> DescribeResponse:
        regions = parse_regions(raw_regions, media, settings)
        if not regions:
            raise ApiError(422, "invalid_region", "describe needs at least one region")
        _question(None, 1, task)
        generation = generation_config(settings, max_new_tokens)
        start = time.perf_counter()
        future = submit(lambda: worker.submit(lambda: service.describe(media, regions, task, generation)))
        answers = await wait(future, settings.request_timeout_s)
        return DescribeResponse(model=settings.model_name, media=media.kind, task=task,
                                answers=[answer_out(a, [r]) for a, r in zip(answers, regions)],
                                latency_s=round(time.perf_counter() - start, 3))

    async def segment(media: DecodedMedia, raw_regions: list, propagate: bool) -> SegmentResponse:
        regions = parse_regions(raw_regions, media, settings)
        future = submit(lambda: worker.submit(lambda: service.segment(media, regions, propagate)))
        resolved = await wait(future, settings.request_timeout_s)
        height, width = media.size
        return SegmentResponse(media=media.kind, height=height, width=width,
                               regions=[region_out(i, r, m) for i, (r, m) in enumerate(zip(regions, resolved))])

    @app.post("/v1/ask", response_model=AskResponse, responses=ERRORS, tags=["regions"])
    async def ask_json(body: AskBody) -> Any:
        """Ask a question about regions of an image or video sent inline (base64 / data URL)."""
        media = await load(decode_base64(body.media.data, settings))
        return await ask(media, body.regions, body.question, body.max_new_tokens, body.stream)

    @app.post("/v1/ask/upload", response_model=AskResponse, responses=ERRORS, tags=["regions"])
    async def ask_upload(
        file: Annotated[UploadFile, File(description="the image or video")],
        question: Annotated[str, Form()],
        regions: Annotated[str, Form(description="JSON list of regions")] = "[]",
        masks: Annotated[list[UploadFile] | None, File(description="mask images (alpha, else non-zero), a region each")] = None,
        max_new_tokens: Annotated[int | None, Form()] = None,
        stream: Annotated[bool, Form()] = False,
    ) -> Any:
        """Multipart form version of ``/v1/ask``."""
        media = await load(await _read(file, settings))
        raw = _regions_form(regions) + [await _mask_region(m, settings) for m in masks or []]
        return await ask(media, raw, question, max_new_tokens, stream)

    @app.post("/v1/describe", response_model=DescribeResponse, responses=ERRORS, tags=["regions"])
    async def describe_json(body: DescribeBody) -> DescribeResponse:
        """Describe each region separately (one answer per region, the media encoded once)."""
        media = await load(decode_base64(body.media.data, settings))
        return await describe(media, body.regions, body.task, body.max_new_tokens)

    @app.post("/v1/describe/upload", response_model=DescribeResponse, responses=ERRORS, tags=["regions"])
    async def describe_upload(
        file: Annotated[UploadFile, File()],
        regions: Annotated[str, Form()] = "[]",
        masks: Annotated[list[UploadFile] | None, File()] = None,
        task: Annotated[str, Form()] = "brief",
        max_new_tokens: Annotated[int | None, Form()] = None,
    ) -> DescribeResponse:
        """Multipart form version of ``/v1/describe``."""
        media = await load(await _read(file, settings))
        raw = _regions_form(regions) + [await _mask_region(m, settings) for m in masks or []]
        return await describe(media, raw, task, max_new_tokens)

    @app.post("/v1/segment", response_model=SegmentResponse, responses=ERRORS, tags=["regions"])
    async def segment_json(body: SegmentBody) -> SegmentResponse:
        """Turn box / point / scribble prompts into masks (compressed COCO RLE per frame)."""
        media = await load(decode_base64(body.media.data, settings))
        return await segment(media, body.regions, body.propagate)

    @app.post("/v1/segment/upload", response_model=SegmentResponse, responses=ERRORS, tags=["regions"])
    async def segment_upload(file: Annotated[UploadFile, File()], regions: Annotated[str, Form()],
                             propagate: Annotated[bool, Form()] = False) -> SegmentResponse:
        """Multipart form version of ``/v1/segment``."""
        media = await load(await _read(file, settings))
        return await segment(media, _regions_form(regions), propagate)


async def _read(upload: UploadFile, settings: ServerSettings) -> bytes:
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "payload_too_large", f"the upload is larger than {settings.max_upload_bytes} bytes")
    return data


def _regions_form(text: str) -> list:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_region_json", f"regions is not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ApiError(400, "invalid_region_json", "regions must be a JSON list of region objects")
    return value


async def _mask_region(upload: UploadFile, settings: ServerSettings) -> dict:
    return {"type": "mask_png", "data": base64.b64encode(await _read(upload, settings)).decode()}


def _stream_answer(worker: ModelWorker, service: ModelService, question: Question, settings: ServerSettings,
                   regions: list) -> StreamingResponse:
    stream = PieceStream(settings.request_timeout_s)
    stream.start(worker, lambda s: service.stream(question, s.emit, s.stopped))

    async def body() -> AsyncIterator[str]:
        async for kind, value in stream.events():
            if kind == "piece":
                yield sse({"text": value})
            elif kind == "result":
                outs = [region_out(i, r, m).model_dump() for i, (r, m) in enumerate(zip(regions, value))]
                yield sse({"done": True, "question": question.text, "regions": outs})
            else:
                yield f"event: error\n{sse(value)}"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _add_openai_routes(app: FastAPI, settings: ServerSettings, service: ModelService, worker: ModelWorker,
                       slots: DecodeSlots) -> None:
    served = {settings.model_name, "pixelrefer"}

    @app.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS, tags=["openai"])
    async def chat_completions(body: ChatCompletionBody) -> Any:
        """OpenAI-compatible chat completions with images/videos as data URLs and region prompts."""
        if body.model not in served:
            raise ApiError(404, "model_not_found", f"model {body.model!r} is not served here; use {settings.model_name!r}")
        parsed = oa.parse_chat(body)
        if parsed.media_url is None:
            raise ApiError(400, "invalid_request", "send an image_url (or video_url) content part as a data: URL")
        media = await slots.decode(decode_media, decode_base64(parsed.media_url, settings, "image_url"), settings)
        regions = parse_regions(parsed.regions, media, settings)
        generation = generation_config(settings, body.max_completion_tokens or body.max_tokens, body.temperature,
                                       body.top_p, body.seed)
        question = Question(media, regions, _question(parsed.text, len(regions)), generation)
        cid = oa.completion_id()
        if body.stream:
            return _openai_stream(worker, service, question, settings, cid)
        key = astuple(generation)
        answer = await wait(submit(lambda: worker.submit_batchable(question, key)), settings.request_timeout_s)
        used = len(answer.token_ids)
        finish = "length" if used >= generation.max_new_tokens else "stop"
        return ChatCompletion(id=cid, created=int(time.time()), model=settings.model_name,
                              choices=[ChatChoice(message=ChatChoiceMessage(content=answer.text), finish_reason=finish)],
                              usage=Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=used,
                                          total_tokens=answer.prompt_tokens + used))


def _openai_stream(worker: ModelWorker, service: ModelService, question: Question, settings: ServerSettings,
                   cid: str) -> StreamingResponse:
    stream = PieceStream(settings.request_timeout_s)
    stream.start(worker, lambda s: service.stream(question, s.emit, s.stopped))
    model = settings.model_name

    async def body() -> AsyncIterator[str]:
        yield oa.chunk(cid, model, {"role": "assistant", "content": ""})
        async for kind, value in stream.events():
            if kind == "piece":
                yield oa.chunk(cid, model, {"content": value})
            elif kind == "result":
                yield oa.chunk(cid, model, {}, finish="stop")
            else:
                yield sse(value)
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
