"""The one definition of what shapes a synthetic dataset (:class:`SynthConfig`, its defaults also those of
:func:`~pixelrefer.synth.scenes.render_scene` and :func:`~pixelrefer.synth.videos.render_video`) and of the small
models' tokenizer size; ``pixelrefer synth``, the dataset build and the recipes' ``data.synth`` section use it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelrefer.errors import ConfigError

MIN_IMAGE_SIZE = 8  # smaller scenes cannot hold an object
MAX_IMAGE_SIZE = 4096
VIDEO_MASKS = ("first", "all")
DEFAULT_VOCAB_SIZE = 1024  # the small models' tokenizer, special tokens included
# The tokenizer's pre-tokenizer split rules (synth/tokenizer.py). "qwen2" is the Qwen2/Qwen2.5 models' regex (their
# tokenizer.json). "words" is the same with no space attached to a word or a punctuation run: every space is a token
# (or a run) of its own, so a word is the same tokens after a space and at the start of a turn (54 % more text
# tokens). "options" is "qwen2" except that a space between a closing parenthesis and a letter is a token of its own,
# so the word after an option's letter, "(B) pink", is the open answer's "pink" (docs/training.md, experiment 12).
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                r"\s+(?!\S)|\s+")
PRETOKENIZERS = {
    "qwen2": _QWEN2_SPLIT,
    "words": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "options": r"(?<=\)) (?=\p{L})|" + _QWEN2_SPLIT,
}
DEFAULT_PRETOKENIZER = "qwen2"

IMAGE_SIZE = (448, 448)  # (height, width) of scenes and video frames (the scale the bundled models were trained at)
SCENE_OBJECTS = (3, 6)  # objects per image scene (inclusive range)
VIDEO_OBJECTS = (2, 4)  # tracks per video
VIDEO_FRAMES = (4, 8)  # frames per video
VIDEO_FPS = 1.0
PHRASING_SET_NAMES = ("v1", "v2")  # the keys of synth/tasks.py PHRASING_SETS (v2: more wordings per family)
MAX_FOLLOW_UPS = 6  # follow-up turns per sample (each asks about one or two regions)
OBJECT_ASPECT = (0.88, 1.14)  # width / height stretch of an object's unit shape
BACKGROUNDS = ("smooth", "natural")
MAX_NOISE = 64.0


def check_pretokenizer(pretokenizer: str) -> None:
    if pretokenizer not in PRETOKENIZERS:
        raise ConfigError(f"pretokenizer must be one of {', '.join(PRETOKENIZERS)}, got {pretokenizer!r}")


@dataclass(frozen=True)
class Variety:
    """What real photos vary and the plain world does not; every default is off (the bundled models' data).

    ``background``: ``"smooth"`` (muted low-frequency noise) or ``"natural"`` (fractal 1/f noise over a two-colour
    gradient, sometimes a horizon and a grain texture). ``shading``: the largest brightness change across an object
    (a linear light, 0.4 = +-40 %). ``noise``: the standard deviation of Gaussian pixel noise (0..255 scale).
    ``jpeg_quality``: a JPEG round trip at a quality drawn from this range (0, 0 = lossless). ``aspect``: the range of
    an object's width/height stretch. ``clutter``: how many unnamed off-palette blobs are painted on the background
    (never referred to; named objects cover them).
    """

    background: str = "smooth"
    shading: float = 0.0
    noise: float = 0.0
    jpeg_quality: tuple[int, int] = (0, 0)
    aspect: tuple[float, float] = OBJECT_ASPECT
    clutter: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"variety.background must be one of {BACKGROUNDS}, got {self.background!r}")
        if not 0.0 <= self.shading <= 1.0:
            raise ConfigError(f"variety.shading must be in [0, 1], got {self.shading!r}")
        if not 0.0 <= self.noise <= MAX_NOISE:
            raise ConfigError(f"variety.noise must be in [0, {MAX_NOISE}], got {self.noise!r}")
        lo, hi = self.jpeg_quality
        if (lo, hi) != (0, 0) and not 5 <= lo <= hi <= 100:
            raise ConfigError(f"variety.jpeg_quality must be (0, 0) (off) or 5 <= low <= high <= 100, got {self.jpeg_quality}")
        if not 0.25 <= self.aspect[0] <= self.aspect[1] <= 4.0:
            raise ConfigError(f"variety.aspect must be a range within [0.25, 4], got {self.aspect}")
        if not 0 <= self.clutter[0] <= self.clutter[1] <= 32:
            raise ConfigError(f"variety.clutter must be a range within [0, 32], got {self.clutter}")


DEFAULT_VARIETY = Variety()


@dataclass(frozen=True)
class SynthConfig:
    """Every argument that shapes the output; recorded verbatim in ``dataset_info.json``.

    ``image_size`` may be given as one side (square scenes); it is kept as ``(height, width)``.
    ``video_masks="first"`` stores each referred object's mask on its first visible frame only (one region per
    object, as PixelRefer trains); ``"all"`` on every frame where it is visible (PixelRefer-Lite style).
    """

    n_train: int = 2000
    n_val: int = 200
    n_test: int = 200
    n_heldout: int = 200
    seed: int = 0
    video_fraction: float = 0.2
    image_size: int | tuple[int, int] = IMAGE_SIZE
    samples_per_scene: int = 2
    n_objects: tuple[int, int] = SCENE_OBJECTS
    video_objects: tuple[int, int] = VIDEO_OBJECTS
    num_frames: tuple[int, int] = VIDEO_FRAMES
    fps: float = VIDEO_FPS
    video_masks: str = "first"
    variety: Variety = field(default_factory=Variety)  # still scenes only; videos keep the plain world
    # Question wording (synth/tasks.py PHRASINGS): off, every question is asked in its one default wording (the
    # bundled data); on, in a wording drawn per sample from its family (train/val: trained wordings only; test and
    # heldout: any wording, held-out ones included, recorded in meta["phrasing"]). Answers and regions do not change.
    paraphrases: bool = False
    phrasing_set: str = "v1"  # which wordings paraphrases draw from (v1: the bundled data's; v2: about twice as many)
    # Share of the train split's image scenes painted in random off-palette colours (as the vision pretraining paints
    # them) and asked category and part questions only: the readout then sees every category outside the palette
    # too, so it cannot learn which named colour each category lacks (the held-out split's). 0: the bundled data.
    off_palette_categories: float = 0.0
    # Follow-up turns appended to every train-split sample: more short questions (region, relation, multiple-choice,
    # category; motion and events in videos) about the same scene, each with its own <region> masks, so one forward
    # pass over the image teaches several answers. Drawn from their own generators: the first turn, and so every
    # val/test/heldout sample, is the same as without them. 0: the bundled data.
    follow_ups: int = 0
    # The share of multiple-choice questions among those follow-up turns (the other tasks keep their proportions;
    # synth/tasks.py, with_share). None: the tables as they are (0.2). A from-scratch LLM learns to answer with an
    # option's letter only after a plateau whose length grows as this share falls (docs/training.md, experiment 12).
    follow_up_mcq: float | None = None

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        try:
            size = (int(size[0]), int(size[1]))  # type: ignore[index]
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"image_size must be a side or (height, width) in pixels, got {self.image_size!r}") from exc
        object.__setattr__(self, "image_size", size)
        for name in ("n_train", "n_val", "n_test", "n_heldout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
        if not (isinstance(self.video_fraction, int | float) and 0.0 <= self.video_fraction <= 1.0):
            raise ConfigError(f"video_fraction must be in [0, 1], got {self.video_fraction!r}")
        if not all(MIN_IMAGE_SIZE <= s <= MAX_IMAGE_SIZE for s in size):
            raise ConfigError(f"image_size must be within {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} pixels, got {size}")
        if self.samples_per_scene < 1:
            raise ConfigError(f"samples_per_scene must be at least 1, got {self.samples_per_scene}")
        if self.video_masks not in VIDEO_MASKS:
            raise ConfigError(f"video_masks must be 'first' or 'all', got {self.video_masks!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.paraphrases, bool):
            raise ConfigError(f"paraphrases must be true or false, got {self.paraphrases!r}")
        share = self.off_palette_categories
        if isinstance(share, bool) or not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
            raise ConfigError(f"off_palette_categories must be in [0, 1], got {share!r}")
        if self.phrasing_set not in PHRASING_SET_NAMES:
            raise ConfigError(f"phrasing_set must be one of {', '.join(PHRASING_SET_NAMES)}, got {self.phrasing_set!r}")
        if isinstance(self.follow_ups, bool) or not isinstance(self.follow_ups, int) or not 0 <= self.follow_ups <= MAX_FOLLOW_UPS:
            raise ConfigError(f"follow_ups must be a whole number in 0..{MAX_FOLLOW_UPS}, got {self.follow_ups!r}")
        mcq = self.follow_up_mcq
        if mcq is not None and (isinstance(mcq, bool) or not (isinstance(mcq, int | float) and 0.0 <= mcq < 1.0)):
            raise ConfigError(f"follow_up_mcq must be in [0, 1) or null, got {mcq!r}")

    @property
    def side(self) -> int:
        """The side of square scenes (the height)."""
        return self.image_size[0]  # type: ignore[index]

    def count(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test, "heldout": self.n_heldout}[split]
