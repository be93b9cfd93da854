"""`pixelrefer serve`: the HTTP API (FastAPI + uvicorn) around one loaded model, on 127.0.0.1 by default."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from pixelrefer.cli.common import (
    ModelArgs,
    cli_errors,
    console,
    fail,
    load_pipeline,
    model_options,
)
from pixelrefer.errors import ConfigError
from pixelrefer.limits import MIB
from pixelrefer.server.settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings

_DEFAULTS = ServerSettings()  # every serving default lives in ServerSettings

logger = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    model_args: ModelArgs,
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback exposes the model")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = DEFAULT_PORT,
    max_queue: Annotated[int, typer.Option(help="requests waiting beyond the running one; more get 429", min=0)] = _DEFAULTS.max_queue,
    max_upload_mb: Annotated[float, typer.Option(help="largest upload in MiB (413 above)", min=0.01)] = _DEFAULTS.max_upload_bytes / MIB,
    max_video_seconds: Annotated[float, typer.Option(help="longest video accepted", min=0.1)] = _DEFAULTS.max_video_seconds,
    max_video_frames: Annotated[int, typer.Option(help="frames sampled from a video", min=1)] = _DEFAULTS.max_video_frames,
    video_fps: Annotated[float | None, typer.Option(
        help="video sampling rate (default: spread the frames evenly over the clip)", min=0.01)] = _DEFAULTS.video_fps,
    timeout: Annotated[float, typer.Option(help="seconds before a request gets 504", min=0.1)] = _DEFAULTS.request_timeout_s,
    max_new_tokens: Annotated[int, typer.Option(help="default answer length in tokens", min=1)] = _DEFAULTS.max_new_tokens,
    max_batch: Annotated[int, typer.Option(help="concurrent questions answered in one batch", min=1)] = _DEFAULTS.max_batch,
    max_connections: Annotated[int, typer.Option(help="open connections; slow clients are dropped first", min=1)] = _DEFAULTS.max_connections,
    header_timeout: Annotated[float, typer.Option(help="seconds a client has to send its request headers", min=0.1)] = _DEFAULTS.header_timeout_s,
    body_timeout: Annotated[float, typer.Option(help="seconds a client has to send its request body", min=0.1)] = _DEFAULTS.body_timeout_s,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    engine: Annotated[str, typer.Option(help="where the LLM generates: transformers (here) or vllm (a vLLM server)")] = "transformers",
    vllm_url: Annotated[str | None, typer.Option(help="vLLM OpenAI-compatible server serving `pixelrefer export-llm` output")] = None,
    vllm_model: Annotated[str | None, typer.Option(help="model name on the vLLM server (default: the one it serves)")] = None,
) -> None:
    """Serve the REST and OpenAI-compatible API. Docs at http://HOST:PORT/docs.

    Example: pixelrefer serve --model nano --port 8000

    With vLLM (docs/serving.md): pixelrefer serve --model CKPT --engine vllm --vllm-url http://127.0.0.1:8001
    """
    try:
        import uvicorn

        from pixelrefer.server.app import create_app
        from pixelrefer.server.protocol import uvicorn_config
        from pixelrefer.server.settings import MALLOC_ARENAS
        from pixelrefer.utils.memory import cap_malloc_arenas
    except ImportError as exc:
        fail(1, f"the server needs the serve extra (pip install 'pixelrefer[serve]'): {exc}")
    with cli_errors():
        from pixelrefer.engines import check_engine_options

        if engine == "vllm" and model_args.quantize != "none":
            raise ConfigError("--quantize applies to the LLM generating here; with --engine vllm the LLM runs in "
                              "vLLM (quantise it there, e.g. `--quantization` of vllm serve)")
        check_engine_options(engine, vllm_url, vllm_model)
        if not _is_loopback(host):
            console.print(f"[yellow]warning:[/] binding {host}: the API has no authentication")
        cap_malloc_arenas(MALLOC_ARENAS)
        pipeline = load_pipeline(model_args)
        if engine == "vllm":
            from pixelrefer.engines import VLLMEngine

            pipeline.engine = VLLMEngine(vllm_url, model=vllm_model)
            console.print(f"generating with vLLM at {vllm_url} (model {pipeline.engine.model})")
        settings = ServerSettings(
            max_queue=max_queue, max_upload_bytes=int(max_upload_mb * MIB),
            max_video_seconds=max_video_seconds, max_video_frames=max_video_frames, video_fps=video_fps,
            request_timeout_s=timeout, max_new_tokens=max_new_tokens, max_batch=max_batch,
            max_connections=max_connections, header_timeout_s=header_timeout, body_timeout_s=body_timeout,
        )
        app = create_app(pipeline, settings)
        console.print(f"serving {model_args.model} on http://{host}:{port} (docs: /docs)")
        uvicorn.Server(uvicorn_config(app, settings, host, port, log_level)).run()


serve = model_options(serve)
