"""The supervised dataset (official JSON -> :class:`EncodedSample`) and its collator (-> :class:`ModelInputs`)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from pixelrefer.media import Media, load_image, load_media
from pixelrefer.processing.processor import EncodedSample, PixelReferProcessor
from pixelrefer.regions import ResolvedRegion
from pixelrefer.train.data import (
    DataError,
    ParsedSample,
    check_ids_unique,
    parse_sample,
    read_samples,
    sample_ref,
    validate_dataset,
)
from pixelrefer.types import ModelInputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskFocus:
    """Every sample whose ``meta.task`` is in ``tasks``, plus ``other_ratio`` times as many other samples picked
    with a seeded shuffle; the result is in sample-id order. Used to over-weight the category tasks, whose
    answers can only come from the pixels, while the model learns to look at its object tokens."""

    tasks: tuple[str, ...]
    other_ratio: float = 1.0
    seed: int = 0

    def select(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def task(s: dict[str, Any]) -> str | None:
            return (s.get("meta") or {}).get("task")

        focus = [s for s in samples if task(s) in self.tasks]
        others = [s for s in samples if task(s) not in self.tasks]
        random.Random(self.seed).shuffle(others)
        picked = focus + others[:round(self.other_ratio * len(focus))]
        return sorted(picked, key=lambda s: str(s.get("id")))


class SupervisedDataset(Dataset):
    """Samples of one data file, tokenised with answer-only labels by ``processor``.

    ``validate=True`` checks every sample up front (:func:`validate_dataset`); either way a sample that
    fails to parse or encode raises :class:`DataError` naming it, and is never replaced.
    """

    def __init__(self, path: str | Path, processor: PixelReferProcessor, root: str | Path | None = None,
                 validate: bool = True, limit: int | None = None, selection: TaskFocus | None = None) -> None:
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent
        self.processor = processor
        samples = read_samples(self.path)
        check_ids_unique(samples, self.path)
        if validate:
            validate_dataset(self.path, self.root)
        samples = selection.select(samples) if selection is not None else samples
        self.samples = samples[:limit] if limit is not None else samples

    def __len__(self) -> int:
        return len(self.samples)

    def length_estimate(self, index: int) -> int:
        """A cheap sequence-length estimate from the raw sample (no media read), for ``group_by_length``:
        about 4 characters per text token, the visual budget per sample, ``mask_num`` tokens per region."""
        raw = self.samples[index]
        turns = raw.get("conversations") or []
        chars = sum(len(t.get("value", "")) for t in turns if isinstance(t, dict) and isinstance(t.get("value"), str))
        masks = raw.get("masks")
        config = self.processor.config
        return chars // 4 + int(config.max_visual_tokens) + int(config.mask_num) * (len(masks) if isinstance(masks, list) else 0)

    def parsed(self, index: int) -> ParsedSample:
        raw = self.samples[index]
        return parse_sample(raw, sample_ref(raw, self.path, index), self.root)

    def __getitem__(self, index: int) -> EncodedSample:
        parsed = self.parsed(index)
        try:
            return encode_parsed(self.processor, parsed)
        except (ValueError, OSError) as exc:
            raise DataError(f"{parsed.ref}: cannot encode: {exc}") from exc


def sample_media(parsed: ParsedSample) -> Media:
    """A sample's image, or its video given as frame files with their timestamps (official JSON format)."""
    if parsed.image is not None:
        return load_media(parsed.image)
    return Media([load_image(f) for f in parsed.frames], parsed.timestamps)


def encode_parsed(processor: PixelReferProcessor, parsed: ParsedSample, with_labels: bool = True,
                  messages: Sequence[dict[str, str]] | None = None) -> EncodedSample:
    """Encode a parsed sample (``messages`` replaces its conversation, e.g. the question alone for generation)."""
    regions = [ResolvedRegion(masks=masks) for masks in parsed.regions]  # exact masks: nothing to segment
    return processor.encode(sample_media(parsed), regions, parsed.messages if messages is None else messages,
                            add_generation_prompt=not with_labels, with_labels=with_labels)


class Collator:
    """Pads a list of encoded samples into one batch (right padding for training)."""

    def __init__(self, processor: PixelReferProcessor, padding_side: str = "right") -> None:
        self.processor = processor
        self.padding_side = padding_side

    def __call__(self, samples: Sequence[EncodedSample]) -> ModelInputs:
        return self.processor.collate(samples, padding_side=self.padding_side)

