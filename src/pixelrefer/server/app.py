"""The HTTP API: ``create_app(pipeline, settings)`` builds a FastAPI app around one loaded model.

Endpoints: ``/health``, ``/v1/models``, ``/v1/ask`` (+ ``/upload``), ``/v1/describe`` (+ ``/upload``),
``/v1/segment`` (+ ``/upload``), OpenAI-compatible ``/v1/chat/completions``; OpenAPI at ``/openapi.json``.
All model work runs on one worker thread behind a bounded queue (see :mod:`pixelrefer.server.worker`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, UploadFile

from pixelrefer.limits import check_question
from pixelrefer.media import Media
from pixelrefer.processing.prompts import compose_question
from pixelrefer.server import openai_compat as oa
from pixelrefer.server.errors import ApiError, install_error_handlers
from pixelrefer.server.guards import BodyLimit, RequestGuard, WithLimits
from pixelrefer.server.inputs import Prepared, prepare
from pixelrefer.server.runtime import EventStream, PieceStream, PrepareSlots, sse, submit, wait
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
    region_out,
)
from pixelrefer.server.settings import ServerSettings
from pixelrefer.server.worker import ModelWorker

logger = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 404, 408, 413, 415, 422, 429, 503, 504)
}
BODY_SLACK = 256 * 1024
LIGHT_PATHS = ("/health", "/v1/models")


def create_app(pipeline: Any, settings: ServerSettings | None = None, segmenter: Any = None) -> FastAPI:
    """A FastAPI app serving ``pipeline`` (a :class:`pixelrefer.PixelRefer`); one worker thread owns it.

    Run it with :func:`pixelrefer.server.protocol.uvicorn_config` to get the connection-level defences too.
    """
    settings = settings or ServerSettings()
    service = ModelService(pipeline, segmenter)
    worker = ModelWorker(settings.max_queue, batch_fn=service.ask_batch, max_batch=settings.max_batch)
    slots = PrepareSlots(settings.prepare_limit)

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
    app.add_middleware(WithLimits, limits=settings.limits)
    app.add_middleware(RequestGuard, max_active=settings.active_request_limit, light_paths=LIGHT_PATHS)
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


def _add_region_routes(app: FastAPI, settings: ServerSettings, service: ModelService, worker: ModelWorker,
                       slots: PrepareSlots) -> None:
    # Long on purpose: the shared handlers (ask, describe, segment) and the six routes that call them close over
    # the same settings/service/worker, so they are registered together.
    async def load(data: bytes | str, raw_regions: list, masks: Sequence[bytes] = ()) -> Prepared:
        return await slots.run(prepare, settings, data, raw_regions, masks)

    async def ask(data: bytes | str, raw_regions: list, text: str, max_new_tokens: int | None, stream: bool,
                  masks: Sequence[bytes] = ()) -> Any:
        check_question(text)  # cheap limits first: a 100 KB question is refused before any decoding
        generation = generation_config(settings, max_new_tokens)
        got = await load(data, raw_regions, masks)
        question = Question(got.media, got.regions, compose_question(text, len(got.regions)), generation)
        start = time.perf_counter()
        if stream:
            return await _stream_answer(worker, service, question, settings)
        key = astuple(question.generation)
        answer = await wait(submit(lambda: worker.submit_batchable(question, key)), settings.request_timeout_s,
                            question.cancel)
        return AskResponse(model=settings.model_name, media=got.media.kind, question=question.text,
                           answer=answer_out(answer, got.regions), latency_s=round(time.perf_counter() - start, 3))

    async def describe(data: bytes | str, raw_regions: list, task: str, max_new_tokens: int | None,
                       masks: Sequence[bytes] = ()) -> DescribeResponse:
        compose_question(None, 1, task)
        generation = generation_config(settings, max_new_tokens)
        got = await load(data, raw_regions, masks)
        if not got.regions:
            raise ApiError(422, "invalid_region", "describe needs at least one region")
        start = time.perf_counter()
        cancel = threading.Event()
        future = submit(lambda: worker.submit(
            lambda: service.describe(got.media, got.regions, task, generation, cancel)))
        answers = await wait(future, settings.request_timeout_s, cancel)
        return DescribeResponse(model=settings.model_name, media=got.media.kind, task=task,
                                answers=[answer_out(a, [r]) for a, r in zip(answers, got.regions)],
                                latency_s=round(time.perf_counter() - start, 3))

    async def segment(data: bytes | str, raw_regions: list, propagate: bool) -> SegmentResponse:
        got = await load(data, raw_regions)
        cancel = threading.Event()
        future = submit(lambda: worker.submit(lambda: service.segment(got.media, got.regions, propagate, cancel)))
        resolved = await wait(future, settings.request_timeout_s, cancel)
        height, width = got.media.size
        return SegmentResponse(media=got.media.kind, height=height, width=width,
                               regions=[region_out(i, r, m, _source_frames(got.media))
                                        for i, (r, m) in enumerate(zip(got.regions, resolved))])

    @app.post("/v1/ask", response_model=AskResponse, responses=ERRORS, tags=["regions"])
    async def ask_json(body: AskBody) -> Any:
        """Ask a question about regions of an image or video sent inline (base64 / data URL)."""
        return await ask(body.media.data, body.regions, body.question, body.max_new_tokens, body.stream)

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
        return await ask(await _read(file, settings), _regions_form(regions), question, max_new_tokens, stream,
                         [await _read(m, settings) for m in masks or []])

    @app.post("/v1/describe", response_model=DescribeResponse, responses=ERRORS, tags=["regions"])
    async def describe_json(body: DescribeBody) -> DescribeResponse:
        """Describe each region separately (one answer per region, the media encoded once)."""
        return await describe(body.media.data, body.regions, body.task, body.max_new_tokens)

    @app.post("/v1/describe/upload", response_model=DescribeResponse, responses=ERRORS, tags=["regions"])
    async def describe_upload(
        file: Annotated[UploadFile, File()],
        regions: Annotated[str, Form()] = "[]",
        masks: Annotated[list[UploadFile] | None, File()] = None,
        task: Annotated[str, Form()] = "brief",
        max_new_tokens: Annotated[int | None, Form()] = None,
    ) -> DescribeResponse:
        """Multipart form version of ``/v1/describe``."""
        return await describe(await _read(file, settings), _regions_form(regions), task, max_new_tokens,
                              [await _read(m, settings) for m in masks or []])

    @app.post("/v1/segment", response_model=SegmentResponse, responses=ERRORS, tags=["regions"])
    async def segment_json(body: SegmentBody) -> SegmentResponse:
        """Turn box / point / scribble prompts into masks (compressed COCO RLE per frame)."""
        return await segment(body.media.data, body.regions, body.propagate)

    @app.post("/v1/segment/upload", response_model=SegmentResponse, responses=ERRORS, tags=["regions"])
    async def segment_upload(file: Annotated[UploadFile, File()], regions: Annotated[str, Form()],
                             propagate: Annotated[bool, Form()] = False) -> SegmentResponse:
        """Multipart form version of ``/v1/segment``."""
        return await segment(await _read(file, settings), _regions_form(regions), propagate)


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


async def _open_stream(worker: ModelWorker, service: ModelService, question: Question,
                       settings: ServerSettings) -> PieceStream:
    """A started stream whose input was accepted: bad input, a full queue or a timeout raise here, before any
    200 is sent."""
    stream = PieceStream(settings.request_timeout_s, question.cancel)
    stream.start(worker, lambda s: service.stream(question, s.emit, s.ready))
    await stream.opened()
    return stream


def _source_frames(media: Media) -> list[int] | None:
    return list(media.frame_indices) if media.is_video else None


async def _stream_answer(worker: ModelWorker, service: ModelService, question: Question,
                         settings: ServerSettings) -> EventStream:
    stream = await _open_stream(worker, service, question, settings)

    async def body() -> AsyncIterator[str]:
        async for kind, value in stream.events():
            if kind == "piece":
                yield sse({"text": value})
            elif kind == "result":
                outs = [region_out(i, r, m, _source_frames(question.media)).model_dump()
                        for i, (r, m) in enumerate(zip(question.regions, value))]
                yield sse({"done": True, "question": question.text, "regions": outs})
            else:
                yield f"event: error\n{sse(value)}"
        yield "data: [DONE]\n\n"

    return EventStream(body(), stream.close)


def _add_openai_routes(app: FastAPI, settings: ServerSettings, service: ModelService, worker: ModelWorker,
                       slots: PrepareSlots) -> None:
    served = {settings.model_name, "pixelrefer"}

    @app.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS, tags=["openai"])
    async def chat_completions(body: ChatCompletionBody) -> Any:
        """OpenAI-compatible chat completions with images/videos as data URLs and region prompts."""
        if body.model not in served:
            raise ApiError(404, "model_not_found", f"model {body.model!r} is not served here; use {settings.model_name!r}")
        parsed = oa.parse_chat(body)
        if parsed.media_url is None:
            raise ApiError(400, "invalid_request", "send an image_url (or video_url) content part as a data: URL")
        check_question(parsed.text)
        generation = generation_config(settings, body.max_completion_tokens or body.max_tokens, body.temperature,
                                       body.top_p, body.seed)
        got = await slots.run(prepare, settings, parsed.media_url, parsed.regions, (), "image_url")
        question = Question(got.media, got.regions, compose_question(parsed.text, len(got.regions)), generation)
        cid = oa.completion_id()
        if body.stream:
            return await _openai_stream(worker, service, question, settings, cid)
        key = astuple(generation)
        answer = await wait(submit(lambda: worker.submit_batchable(question, key)), settings.request_timeout_s,
                            question.cancel)
        used = len(answer.token_ids)
        finish = "length" if used >= generation.max_new_tokens else "stop"
        return ChatCompletion(id=cid, created=int(time.time()), model=settings.model_name,
                              choices=[ChatChoice(message=ChatChoiceMessage(content=answer.text), finish_reason=finish)],
                              usage=Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=used,
                                          total_tokens=answer.prompt_tokens + used))


async def _openai_stream(worker: ModelWorker, service: ModelService, question: Question, settings: ServerSettings,
                         cid: str) -> EventStream:
    stream = await _open_stream(worker, service, question, settings)
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

    return EventStream(body(), stream.close)
