"""HTTP errors with a JSON body ``{"error": {"type", "message", "code"}}`` (the OpenAI error shape).

:func:`api_error` is the one mapping from the package's input errors (:class:`pixelrefer.errors.PixelReferError`
and its subclasses) to a 4xx: bad input never becomes a 500, wherever it is raised (request handler, decode
thread, model thread, stream).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelrefer.errors import LimitError, MediaError, PixelReferError, PromptError, RegionError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client caused (4xx) or a refusal to serve (429/503/504), with a one-line message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


# most specific first: LimitError before the generic PixelReferError
_INPUT_ERRORS: tuple[tuple[type[PixelReferError], int, str], ...] = (
    (LimitError, 413, "limit_exceeded"),
    (RegionError, 422, "invalid_region"),
    (PromptError, 400, "invalid_prompt"),
    (MediaError, 400, "invalid_media"),
    (PixelReferError, 400, "invalid_request"),
)


def input_error(exc: PixelReferError) -> ApiError:
    """The 4xx of an input error."""
    status, name = next((s, n) for kind, s, n in _INPUT_ERRORS if isinstance(exc, kind))
    return ApiError(status, name, str(exc))


def api_error(exc: BaseException) -> ApiError | None:
    """The 4xx (or refusal) an exception stands for, or ``None`` for a server fault."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PixelReferError):
        return input_error(exc)
    return None


def error_body(status: int, kind: str, message: str) -> dict:
    return {"error": {"type": kind, "message": message, "code": status}}


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return JSONResponse(error_body(status, kind, message), status_code=status, headers=headers)


def internal_error(exc: BaseException) -> JSONResponse:
    """A 500 for a server fault: logged with its traceback, answered without internals."""
    logger.error("unhandled error: %r", exc, exc_info=exc)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__})")


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON; unexpected ones are logged and become a 500 without internals."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.kind, exc.message)

    @app.exception_handler(PixelReferError)
    async def _input_error(_: Request, exc: PixelReferError) -> JSONResponse:
        err = input_error(exc)
        return error_response(err.status, err.kind, err.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc)
