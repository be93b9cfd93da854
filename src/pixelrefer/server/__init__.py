"""The HTTP API server (FastAPI + uvicorn; ``pip install pixelrefer[serve]``): ``create_app(pipeline, settings)``.

``create_app`` is imported on first use, so :mod:`pixelrefer.server.settings` (the serving defaults the
``pixelrefer serve`` flags show) can be read without FastAPI.
"""

from __future__ import annotations

from typing import Any

from pixelrefer.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from pixelrefer.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
