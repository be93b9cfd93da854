"""The HTTP API server (FastAPI + uvicorn; ``pip install pixelrefer[serve]``): ``create_app(pipeline, settings)``."""

from pixelrefer.server.app import create_app
from pixelrefer.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
