"""Shared plumbing of the `pixelrefer` commands: errors and exit codes, model-loading options, media loading and
the one region-options parser (:func:`region_options`, :func:`collect_regions`).

How every command ends on an error: one line on stderr, a meaningful exit code, no traceback.

Exit codes: 2 bad input (any :class:`~pixelrefer.errors.PixelReferError`, a bad option value, a missing file),
3 a model or checkpoint that cannot be loaded (:class:`~pixelrefer.errors.CheckpointError`), 130 interrupted.
Anything else escaping is a bug and keeps its traceback (exit 1). :func:`handle_errors` wraps each command once
(see :mod:`pixelrefer.cli.main`); :class:`PixelReferTyper` does the same for click's own parse errors, which
happen before a command runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer 0.29 vendors click; not re-exported

from pixelrefer.errors import CheckpointError, PixelReferError, RegionError
from pixelrefer.media.sampling import DEFAULT_SAMPLING

if TYPE_CHECKING:  # numpy, media and the model stack are imported only when a command runs
    from pixelrefer.inference.api import PixelRefer
    from pixelrefer.media import Media
    from pixelrefer.regions import Region

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130

# Input mistakes that are not (yet) ours: typer/click parameter errors and missing or malformed user files.
INPUT_ERRORS = (PixelReferError, typer.BadParameter, json.JSONDecodeError, FileNotFoundError, IsADirectoryError,
                NotADirectoryError, UnicodeDecodeError)

console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(code: int, message: str) -> NoReturn:
    """Print a one-line error and exit with ``code``."""
    console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False)
    raise typer.Exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, typer.BadParameter):
        return exc.format_message()
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not valid UTF-8 text (byte {exc.start})"
    return str(exc) or type(exc).__name__


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn known failures into one-line errors with the exit codes above."""
    try:
        yield
    except typer.Exit:
        raise
    except CheckpointError as exc:
        fail(EXIT_MODEL, f"model: {exc}")
    except INPUT_ERRORS as exc:
        fail(EXIT_BAD_INPUT, _describe(exc))
    except KeyboardInterrupt:
        fail(EXIT_INTERRUPTED, "interrupted")


def handle_errors(func: F) -> F:
    """Decorate a command so that its errors end as :func:`cli_errors` says (typer still sees its signature)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PixelReferTyper(typer.Typer):
    """A Typer app whose parse errors (bad option values, unknown options) are one line and exit code 2."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:  # `pixelrefer` alone: the help text, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            name = exc.ctx.command_path if exc.ctx is not None else "pixelrefer"
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))} (see `{name} --help`)",
                          highlight=False)
            sys.exit(EXIT_BAD_INPUT)
        except typer.TyperException as exc:  # click's other errors (file errors, ...)
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))}", highlight=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            console.print("[bold red]error:[/] interrupted", highlight=False)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


# ------------------------------------------------------------------------------------------- option injection
def _with_options(func: F, name: str, options: dict[str, tuple[Any, Any]], build: Callable[[dict[str, Any]], Any]) -> F:
    """``func`` with ``options`` (name -> (typer annotation, default)) added to its command-line signature; it
    receives them gathered by ``build`` as its ``name`` argument. Typer reads the new signature."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p for p in signature.parameters.values() if p.name != name]
    added = [inspect.Parameter(opt, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
             for opt, (annotation, default) in options.items()]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {opt: kwargs.pop(opt) for opt in options}
        return func(*args, **{name: build(given)}, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in kept},
                               **{opt: annotation for opt, (annotation, _) in options.items()}}
    del wrapper.__wrapped__  # typer reads the new signature, not the wrapped function's
    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------- model loading
# The one place for the options that choose and load a model (add a new one to MODEL_OPTIONS, ModelArgs and
# load_pipeline); every command that loads a model takes them with @model_options.
DEFAULT_MODEL = "nano"  # the bundled trained model: the default of every command
FALLBACK_MODEL = "tiny"  # used (with a warning) only when the bundled default is not installed

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="bundled model (nano), preset (tiny) or checkpoint folder")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16, float16")]
QuantizeOpt = Annotated[str, typer.Option(help="quantise the LLM: none, int8 (CPU or CUDA), int4 (CUDA; torchao)")]
MODEL_OPTIONS: dict[str, tuple[Any, Any]] = {"model": (ModelOpt, DEFAULT_MODEL), "device": (DeviceOpt, "auto"),
                                             "dtype": (DtypeOpt, "auto"), "quantize": (QuantizeOpt, "none")}


@dataclass
class ModelArgs:
    """The model-loading options as given on the command line."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    quantize: str = "none"


def model_options(func: F) -> F:
    """Add the model-loading options (:data:`MODEL_OPTIONS`) to a command; it receives them as ``model_args``."""
    return _with_options(func, "model_args", MODEL_OPTIONS, lambda given: ModelArgs(**given))


def warn_random_weights(model: str, what: str) -> bool:
    """Say loudly when ``model`` names a random-weight preset (its answers are meaningless); returns whether it does."""
    from pixelrefer.presets import RANDOM_PRESETS

    if model not in RANDOM_PRESETS:
        return False
    console.print(f"[bold yellow]warning:[/] {model!r} is a preset with RANDOM weights: {what} will be meaningless. "
                  f"Use the bundled {DEFAULT_MODEL!r} (the default) or --model PATH for trained weights.")
    return True


def load_pipeline(args: ModelArgs) -> PixelRefer:
    """Load the predictor with a status line; the bundled default falls back to the random tiny preset if absent."""
    from pixelrefer.inference.api import PixelRefer
    from pixelrefer.presets import BUNDLED

    model, device, dtype = args.model, args.device, args.dtype
    if model == DEFAULT_MODEL and not BUNDLED[DEFAULT_MODEL].is_dir():
        console.print(f"[yellow]warning:[/] the bundled model {DEFAULT_MODEL!r} is not installed; using the random "
                      f"{FALLBACK_MODEL!r} preset (its answers are meaningless). Pass --model PATH for real weights.")
        model = FALLBACK_MODEL
    with console.status(f"Loading model {model} …"):
        try:
            pipeline = PixelRefer.from_pretrained(model, device=device, dtype=dtype, quantize=args.quantize)
        except PixelReferError:  # a bad --device / --dtype, or the checkpoint's own CheckpointError
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot load {model!r}: {exc}") from exc
    logger.info("loaded %s on %s", model, pipeline.device)
    return pipeline


# ------------------------------------------------------------------------------------------- questions
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="longest answer in tokens", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")]

# ------------------------------------------------------------------------------------------- media
# Video sampling options; their defaults are those of the one sampling default, DEFAULT_SAMPLING.
FpsOpt = Annotated[float | None, typer.Option(
    "--fps", help="video: sample this many frames per second (default: --max-frames spread over the clip)", min=0.01)]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", help="video: at most this many frames", min=1)]
DEFAULT_FPS = DEFAULT_SAMPLING.fps
DEFAULT_MAX_FRAMES = DEFAULT_SAMPLING.max_frames


def read_media(path: Path, fps: float | None, max_frames: int) -> Media:
    """An image or a video's sampled frames as :class:`~pixelrefer.media.Media` (a status line while decoding)."""
    from pixelrefer.media import MediaError, load_media, media_kind

    if not path.exists():
        raise MediaError(f"file not found: {path}")
    if media_kind(path) != "video":
        return load_media(path)
    with console.status(f"Decoding video {path.name} …"):
        media = load_media(path, DEFAULT_SAMPLING.replace(fps=fps, max_frames=max_frames))
    console.print(f"decoded {media.num_frames} frames of {path.name}", style="dim")
    return media


# ------------------------------------------------------------------------------------------- regions
# One parser for the region options of every command (ask, describe, chat, segment); errors are RegionError.
REGION_OPTIONS: dict[str, tuple[Any, Any]] = {  # name -> (annotation, default)
    "regions": (Annotated[Path | None, typer.Option(
        "--regions", help="JSON file: a list of region objects (server schema; their frames, like --frame, are "
                          "SOURCE frame indices)")], None),
    "mask": (Annotated[list[Path], typer.Option("--mask", help="a region: mask image (alpha, else non-zero pixels)")], []),
    "rle": (Annotated[list[Path], typer.Option(
        "--rle", help="a region: JSON file with a COCO RLE (or a list of them)")], []),
    "polygon": (Annotated[list[str], typer.Option("--polygon", help="a region: x0,y0,x1,y1,x2,y2,... (repeatable)")], []),
    "box": (Annotated[list[str], typer.Option(
        "--box", help="a region: x0,y0,x1,y1 in pixels (repeat for more regions)")], []),
    "point": (Annotated[list[str], typer.Option(
        "--point", help="one click x,y[,label] (label 1 = on the object, 0 = background); repeated --point build ONE region")], []),
    "points": (Annotated[list[str], typer.Option(
        "--points", help="another point region: 'x,y[,label];x,y[,label]' (repeat for more regions)")], []),
    "scribble": (Annotated[list[str], typer.Option("--scribble", help="a region: a stroke 'x,y;x,y;...' (repeatable)")], []),
    "frame": (Annotated[int, typer.Option("--frame", min=0, help=(
        "video: the SOURCE frame index the prompts are drawn on (0-based, as in the file; the nearest sampled "
        "frame is used and reported)"))], 0),
}
REGION_ORDER = "--regions, --mask, --rle, --polygon, --box, --point, --points, --scribble"


@dataclass
class RegionArgs:
    """Region options as given on the command line; regions are numbered in :data:`REGION_ORDER`."""

    regions_file: Path | None = None
    masks: list[Path] = field(default_factory=list)
    rles: list[Path] = field(default_factory=list)
    polygons: list[str] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    point: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    scribbles: list[str] = field(default_factory=list)
    frame: int = 0


def region_options(func: F) -> F:
    """Add the region options (:data:`REGION_OPTIONS`) to a command; it receives them as ``region_args``."""
    return _with_options(func, "region_args", REGION_OPTIONS, lambda given: RegionArgs(
        regions_file=given["regions"], masks=list(given["mask"] or []), rles=list(given["rle"] or []),
        polygons=list(given["polygon"] or []), boxes=list(given["box"] or []), point=list(given["point"] or []),
        points=list(given["points"] or []), scribbles=list(given["scribble"] or []), frame=given["frame"]))


def _numbers(text: str, what: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError as exc:
        raise RegionError(f"{what} {text!r}: expected comma-separated numbers") from exc
    if count is not None and len(values) != count:
        raise RegionError(f"{what} {text!r}: expected {count} numbers, got {len(values)}")
    return values


def _point_list(items: list[str], what: str) -> tuple[list[list[float]], list[int]]:
    points, labels = [], []
    for item in items:
        values = _numbers(item, what)
        if len(values) not in (2, 3) or (len(values) == 3 and values[2] not in (0, 1)):
            raise RegionError(f"{what} {item!r}: expected x,y or x,y,label with label 0 or 1")
        points.append(values[:2])
        labels.append(int(values[2]) if len(values) == 3 else 1)
    return points, labels


def _json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise RegionError(f"{what} file not found: {path}")
    return json.loads(path.read_text())


def _region_items(args: RegionArgs) -> list[dict[str, Any] | Path]:
    """The one parse of the region options: each region as its JSON object (the server schema, with ``"frame"``,
    a source frame index) or, for ``--mask``, the mask file's path; in :data:`REGION_ORDER`. Stdlib only."""
    frame = args.frame
    items: list[dict[str, Any] | Path] = []
    if args.regions_file is not None:
        data = _json_file(args.regions_file, "--regions")
        items += [{"frame": frame, **d} if isinstance(d, dict) and d.get("type") != "frames" else d
                  for d in (data if isinstance(data, list) else [data])]
    for path in args.masks:
        if not path.is_file():
            raise RegionError(f"mask file not found: {path}")
        items.append(path)
    for path in args.rles:
        data = _json_file(path, "--rle")
        items += [{"type": "rle", "rle": d, "frame": frame} for d in (data if isinstance(data, list) else [data])]
    for text in args.polygons:
        values = _numbers(text, "--polygon")
        if len(values) < 6 or len(values) % 2:
            raise RegionError(f"--polygon {text!r}: expected at least 3 points (x,y pairs)")
        items.append({"type": "polygon", "polygons": [values], "frame": frame})
    items += [{"type": "box", "box": _numbers(b, "--box", 4), "frame": frame} for b in args.boxes]
    if args.point:
        pts, labels = _point_list(args.point, "--point")
        items.append({"type": "points", "points": pts, "labels": labels, "frame": frame})
    for group in args.points:
        pts, labels = _point_list([p for p in group.split(";") if p.strip()], "--points")
        items.append({"type": "points", "points": pts, "labels": labels, "frame": frame})
    for stroke in args.scribbles:
        pts, _ = _point_list([p for p in stroke.split(";") if p.strip()], "--scribble")
        items.append({"type": "scribble", "strokes": [pts], "frame": frame})
    return items


def collect_regions(args: RegionArgs) -> list[Region]:
    """Regions from the options, in :data:`REGION_ORDER`, each on ``args.frame`` (a source frame index)."""
    from pixelrefer.regions import Region

    return [Region.from_mask_file(item, frame=args.frame) if isinstance(item, Path) else Region.from_dict(item)
            for item in _region_items(args)]


def region_json(args: RegionArgs) -> list[dict[str, Any]]:
    """The regions as JSON objects for a server (``--mask`` files inlined as base64 ``mask_png``); stdlib only."""
    import base64

    return [{"type": "mask_png", "data": base64.b64encode(item.read_bytes()).decode(), "frame": args.frame}
            if isinstance(item, Path) else item for item in _region_items(args)]


def regions_on_media(regions: list[Region], media: Media, frame: int) -> tuple[list[Region], int]:
    """The regions on the media's frames: on a video, ``frame`` (a SOURCE frame index) moves to the sampled frame
    nearest it; returns the regions and that sampled position (0 for an image, where only frame 0 exists)."""
    if not media.is_video:
        if frame != 0:
            raise RegionError(f"--frame {frame} given for a still image (only frame 0 exists)")
        return regions, 0
    from pixelrefer.inference.resolve import on_sampled_frames
    from pixelrefer.media import map_frames

    position = map_frames([frame], media)[frame]
    mapped, _ = on_sampled_frames(regions, media)
    note_nearest_frame(frame, media.frame_indices[position], position)
    return mapped, position


def note_nearest_frame(frame: int, source: int, position: int) -> None:
    """Say (dimly) when source frame ``frame`` is not sampled and its prompts go on sampled ``position`` (``source``)."""
    if source != frame:
        console.print(f"frame {frame} is not sampled; the prompts go on the nearest sampled frame {source} "
                      f"(sampled position {position})", style="dim")


def prepare(media_path: Path, args: RegionArgs, model_args: ModelArgs, fps: float | None, max_frames: int):
    """Shared by ask/describe/chat: parse the regions (before any decoding), decode the media, load the model.
    Returns the predictor, the media, the regions (moved onto sampled frames) and the sampled position of
    ``--frame``. The regions are resolved by the predictor, once, when it answers."""
    regions = collect_regions(args)
    media = read_media(media_path, fps, max_frames)
    regions, position = regions_on_media(regions, media, args.frame)
    pipeline = load_pipeline(model_args)
    return pipeline, media, regions, position
