"""The Python API: ``PixelRefer.from_pretrained(...)`` then ``ask`` / ``ask_batch`` / ``stream`` / ``describe_each`` / ``chat``.

Regions are :class:`pixelrefer.regions.Region` objects or binary masks; media are image paths, PIL images,
arrays, video paths or :class:`pixelrefer.media.Media` (anything :func:`pixelrefer.media.load_media` takes;
video files are sampled by :data:`pixelrefer.media.DEFAULT_SAMPLING`). Questions carry one ``<region>`` per region, in order.

:class:`PixelRefer` is the one predictor every front-end (CLI, server, demo, evaluation) goes through. Each call
resolves its media and regions once (:meth:`PixelRefer.prepare`, beside the processor: segmentation happens there,
never inside :class:`~pixelrefer.processing.processor.PixelReferProcessor`) and returns what it used with the
answer: :attr:`Answer.regions` (masks per region and sampled frame) and, for video, :attr:`Answer.source_frames`
(the source frame index of each sampled frame). ``stream`` returns an :class:`AnswerStream`, an iterator of text
pieces that carries the same two fields.

Cancellation: ``ask``, ``ask_batch`` (per :class:`AskRequest`), ``describe_each`` and ``stream`` take a
``threading.Event``; once it is set, generation stops at the next decoding step and the model lock is released
(the answer so far is returned). ``stream`` also stops when its consumer closes the iterator or drops it.

Engines: our model turns media, regions and text into LLM input embeddings; an engine
(:mod:`pixelrefer.engines`) generates from them - transformers ``generate`` here by default, or a vLLM server.
``ask``, ``ask_batch`` and ``stream`` go through the engine; ``describe_each`` shares one KV cache of the media
prefix on the transformers engine (and sends independent prompts to any other), ``chat`` keeps its KV cache and so
always runs here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from pixelrefer.constants import IM_END
from pixelrefer.engines.base import EmbedsPrompt, Engine
from pixelrefer.engines.generation import (
    CancelCriteria,
    GenerationConfig,
    cancel_checks,
    common_prefix_length,
    join_prefix_and_suffixes,
    shared_prefix_cache,
    stop_token_ids,
)
from pixelrefer.engines.transformers_engine import TransformersEngine, cut
from pixelrefer.inference.resolve import Prepared, prepare
from pixelrefer.limits import check_prompt_tokens, check_question, check_region_count
from pixelrefer.model.convert import CheckpointError
from pixelrefer.model.loading import load_checkpoint
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.model.quantize import QuantizeReport, check_quantize, quantize_model
from pixelrefer.processing.processor import (
    EncodedSample,
    Media,
    PixelReferProcessor,
    collate_visual,
)
from pixelrefer.processing.prompts import (
    PromptError,
    check_user_text,
    count_region_placeholders,
    task_prompt,
)
from pixelrefer.regions import ResolvedRegion
from pixelrefer.utils.device import resolve_device, resolve_dtype
from pixelrefer.utils.rng import seeded

logger = logging.getLogger(__name__)


@dataclass
class AskRequest:
    """One question of a batch; setting ``cancel`` stops its row (the others go on)."""

    media: Any
    regions: Sequence[Any]
    question: str
    cancel: threading.Event | None = None


@dataclass
class Answer:
    """The answer, with what it was computed from: ``regions`` (masks per region and sampled frame) and, for a
    video, ``source_frames`` (the source frame index of each sampled frame)."""

    text: str
    token_ids: list[int]
    regions: list[ResolvedRegion] = field(default_factory=list)
    prompt_tokens: int = 0
    source_frames: list[int] | None = None


class AnswerStream(Iterator[str]):
    """Text pieces of an answer while it is generated, with what the answer uses (as :class:`Answer`).

    ``close()`` (or dropping the stream) stops generation within one decoding step."""

    def __init__(self, pieces: Iterator[str], prepared: Prepared) -> None:
        self._pieces = pieces
        self.regions: list[ResolvedRegion] = prepared.regions
        self.source_frames: list[int] | None = prepared.source_frames

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def _random_model(name: str, device: torch.device, dtype: torch.dtype):
    from pixelrefer.model.tokenizer import byte_level_tokenizer
    from pixelrefer.presets import preset_config

    tokenizer = byte_level_tokenizer()
    config = preset_config(name, tokenizer)
    with seeded(0):
        model = PixelReferForConditionalGeneration(config)
    return model.to(device=device, dtype=dtype).eval(), tokenizer


class PixelRefer:
    """A loaded model with its tokenizer, processor and segmenter: the predictor every front-end uses."""

    def __init__(self, model: PixelReferForConditionalGeneration, tokenizer: Any, segmenter: Any = None,
                 engine: Engine | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.segmenter = segmenter
        self.processor = PixelReferProcessor(tokenizer, model.config)
        self.eos_id = tokenizer.convert_tokens_to_ids(IM_END)
        self.stop_ids = stop_token_ids(tokenizer, model.generation_config, self.eos_id)
        self._lock = threading.Lock()
        self.quantization: QuantizeReport | None = None  # set by from_pretrained(quantize=...)
        self.engine: Engine = engine if engine is not None else TransformersEngine(model, self.processor.pad_id, self._lock)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "nano",
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = "auto",
        segmenter: Any = "auto",
        engine: Engine | None = None,
        quantize: str | None = None,
        quantize_vision: bool = False,
    ) -> PixelRefer:
        """Load a bundled model (``nano``, ``nano-lite``), a random preset (``tiny``, ``2b``, ...), a checkpoint
        folder in our or the official format, or a hub id. ``engine``: where the LLM generates (default: here, with
        transformers; see :mod:`pixelrefer.engines`). ``quantize``: ``"int8"`` (CPU or CUDA) or ``"int4"`` (CUDA)
        for the LLM's linears, and the vision tower's too with ``quantize_vision`` (see
        :mod:`pixelrefer.model.quantize`)."""
        from pixelrefer.presets import BUNDLED, RANDOM_PRESETS

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        mode = check_quantize(quantize, dev, dt)
        name = str(name_or_path)
        if name in RANDOM_PRESETS:
            model, tokenizer = _random_model(name, dev, dt)
        else:
            path = BUNDLED.get(name, name_or_path)
            if name in BUNDLED and not Path(path).is_dir():
                raise CheckpointError(f"the bundled model {name!r} is not installed at {path}; reinstall the package")
            model, tokenizer = load_checkpoint(path, dev, dt)
        report = quantize_model(model, mode, dev, vision=quantize_vision) if mode is not None else None
        pipeline = cls(model, tokenizer, segmenter=_make_segmenter(segmenter, dev), engine=engine)
        pipeline.quantization = report
        return pipeline

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ------------------------------------------------------------------------------------------- resolution
    def prepare(self, media: Any, regions: Sequence[Any]) -> Prepared:
        """The media as encoded and every region's masks (clicks/boxes/scribbles segmented with this predictor's
        segmenter; Lite video regions given on one frame propagated). Passing the result's ``media`` and
        ``regions`` back in costs nothing: both are kept as they are."""
        return prepare(media, regions, self.model.config, self.segmenter)

    def resolve_regions(self, media: Any, regions: Sequence[Any]) -> list[ResolvedRegion]:
        """Masks of ``regions`` on ``media`` by this predictor's rule (see :meth:`prepare`)."""
        return self.prepare(media, regions).regions

    # ------------------------------------------------------------------------------------------- encoding
    def _check_input(self, question: Any, regions: Sequence[Any]) -> str:
        """Validate a question and its regions before any media or model work; returns the question as ``str``.

        Checks the :mod:`pixelrefer.limits` (question characters then tokens, region count), the text's encoding
        and control tokens typed in it (see :mod:`pixelrefer.processing.prompts`)."""
        question = check_question(question, self.tokenizer)
        if isinstance(regions, str | bytes | dict) or not hasattr(regions, "__len__"):
            raise PromptError(f"regions must be a list (of Region objects, masks or region dicts), got "
                              f"{type(regions).__name__}")
        check_region_count(len(regions))
        check_user_text(question, self.processor.control_pattern)
        return question

    def _encode(self, media: Media, regions: Sequence[ResolvedRegion], question: str, **kwargs: Any) -> EncodedSample:
        sample = self.processor.encode(media, regions, [{"role": "user", "content": question}], **kwargs)
        check_prompt_tokens(len(sample.input_ids), self.model.config)
        return sample

    def _generate(self, input_ids, attention_mask, visual, generation: GenerationConfig, return_dict: bool = False,
                  cancel: Sequence[threading.Event | None] = (), **kwargs):
        """``cancel``: an event per row (or one for all); a set event stops its row at the next step."""
        inputs = {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device)}
        if visual is not None:
            inputs["visual"] = visual.to(self.device, self.model.dtype)
        hf = generation.to_hf(self.stop_ids, self.processor.pad_id)
        hf.return_dict_in_generate = return_dict
        rows = list(cancel) * input_ids.shape[0] if len(cancel) == 1 else list(cancel)
        checks = cancel_checks(rows) if rows else None
        if checks is not None:
            kwargs["stopping_criteria"] = [CancelCriteria(checks)]
        with self._lock, torch.inference_mode(), seeded(generation.seed, self.device):
            return self.model.generate(**inputs, generation_config=hf, **kwargs)

    def _prompts(self, batch, cancels: Sequence[threading.Event | None]) -> list[EmbedsPrompt]:
        """Input embeddings of each row of a left-padded batch (one vision call for the batch), unpadded."""
        with self._lock, torch.inference_mode():
            visual = batch.visual.to(self.device, self.model.dtype) if batch.visual is not None else None
            embeds = self.model.embed(batch.input_ids.to(self.device), visual)
        prompts = []
        for row, ids, mask, cancel in zip(embeds, batch.input_ids.tolist(), batch.attention_mask.tolist(), cancels):
            start = mask.index(1)
            prompts.append(EmbedsPrompt(row[start:], token_ids=ids[start:], cancel=cancel))
        return prompts

    def _answers(self, rows: Sequence[list[int]], samples: Sequence[EncodedSample],
                 prepared: Sequence[Prepared]) -> list[Answer]:
        out = []
        for row, sample, used in zip(rows, samples, prepared):
            text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
            out.append(Answer(text=text, token_ids=row, regions=used.regions, prompt_tokens=len(sample.input_ids),
                              source_frames=used.source_frames))
        return out

    def _new_tokens(self, sequences: torch.Tensor, prompt_len: int) -> list[list[int]]:
        return [cut(row, self.stop_ids, self.processor.pad_id) for row in sequences[:, prompt_len:].tolist()]

    # ------------------------------------------------------------------------------------------- public
    def ask(self, media: Any, regions: Sequence[Any], question: str, generation: GenerationConfig | None = None,
            cancel: threading.Event | None = None) -> Answer:
        """Answer one question about ``regions`` of ``media``."""
        return self.ask_batch([AskRequest(media, regions, question, cancel)], generation)[0]

    def ask_batch(self, requests: Sequence[AskRequest], generation: GenerationConfig | None = None) -> list[Answer]:
        """Answer several independent requests in one left-padded batch."""
        if not requests:
            raise PromptError("ask_batch needs at least one request")
        requests = [replace(r, question=self._check_input(r.question, r.regions)) for r in requests]
        generation = generation or GenerationConfig()
        prepared = [self.prepare(r.media, r.regions) for r in requests]
        samples = [self._encode(p.media, p.regions, r.question) for p, r in zip(prepared, requests)]
        return self._engine_generate(samples, prepared, generation, [r.cancel for r in requests])

    def _engine_generate(self, samples: list[EncodedSample], prepared: Sequence[Prepared], generation: GenerationConfig,
                         cancels: Sequence[threading.Event | None]) -> list[Answer]:
        batch = self.processor.collate(samples, padding_side="left")
        rows = self.engine.generate(self._prompts(batch, cancels), generation, self.stop_ids)
        return self._answers(rows, samples, prepared)

    def describe_each(
        self, media: Any, regions: Sequence[Any], task: str = "brief", question: str | None = None,
        generation: GenerationConfig | None = None, cancel: threading.Event | None = None,
    ) -> list[Answer]:
        """One answer per region for the same question: the media prefix is encoded once and its KV cache
        shared by all regions, whose suffixes are decoded as one batch. ``cancel`` stops them all."""
        if question is None:
            question = task_prompt(task)
        question = self._check_input(question, regions)
        if not regions:
            raise PromptError("describe_each needs at least one region")
        if count_region_placeholders(question) != 1:
            raise PromptError("describe_each needs a question with exactly one <region>")
        used = self.prepare(media, regions)
        each = [Prepared(used.media, [r]) for r in used.regions]
        samples = [self._encode(p.media, p.regions, question) for p in each]
        return self._shared_prefix_generate(samples, each, generation or GenerationConfig(), cancel)

    def _shared_prefix_generate(self, samples: list[EncodedSample], prepared: list[Prepared],
                                generation: GenerationConfig, cancel: threading.Event | None = None) -> list[Answer]:
        rows = [s.input_ids for s in samples]
        plen = common_prefix_length(rows, {self.processor.region_id})
        if len(samples) == 1 or plen == 0 or not isinstance(self.engine, TransformersEngine):
            return self._engine_generate(samples, prepared, generation, [cancel] * len(samples))
        prefix = rows[0][:plen]
        prefix_visual = collate_visual([replace(samples[0], crops=[], global_views=[], crop_global_index=[])])
        with self._lock, torch.inference_mode():
            ids = torch.tensor([prefix], device=self.device)
            vis = prefix_visual.to(self.device, self.model.dtype) if prefix_visual is not None else None
            prefix_cache = self.model(input_ids=ids, visual=vis, use_cache=True, logits_to_keep=1).cache
        suffix_samples = [replace(s, media_patches=None, media_grid=[], media_keep=None) for s in samples]
        ids, mask = join_prefix_and_suffixes(prefix, [r[plen:] for r in rows], self.processor.pad_id)
        cache = shared_prefix_cache(prefix_cache, self.model.config.text_config, len(samples),
                                    ids.shape[1] + generation.max_new_tokens)
        del prefix_cache
        seqs = self._generate(ids, mask, collate_visual(suffix_samples), generation, cache=cache, cancel=[cancel])
        return self._answers(self._new_tokens(seqs, ids.shape[1]), samples, prepared)

    def stream(self, media: Any, regions: Sequence[Any], question: str, generation: GenerationConfig | None = None,
               cancel: threading.Event | None = None) -> AnswerStream:
        """An iterator over the answer's text pieces while it is generated; its ``regions`` and
        ``source_frames`` say what the answer uses (as :class:`Answer`).

        The input is checked and encoded here, so bad input raises before anything is generated. Generation
        runs when the iterator is first advanced, and stops within one decoding step (releasing the model) when
        the consumer closes the iterator, drops it unfinished, or sets ``cancel``.
        """
        question = self._check_input(question, regions)
        used = self.prepare(media, regions)
        sample = self._encode(used.media, used.regions, question)
        batch = self.processor.collate([sample], padding_side="left")
        return AnswerStream(self._stream_pieces(batch, generation or GenerationConfig(), cancel), used)

    def _stream_pieces(self, batch, generation: GenerationConfig, cancel: threading.Event | None) -> Iterator[str]:
        (prompt,) = self._prompts(batch, [cancel])
        tokens = self.engine.stream(prompt, generation, self.stop_ids)
        pieces = _Pieces(self.tokenizer)
        try:
            for token in tokens:
                pieces.put(torch.tensor([token]))
                yield from pieces.take()
            pieces.end()
            yield from pieces.take()
        finally:  # also on close() / garbage collection of an unfinished iterator: the engine stops within a step
            tokens.close()

    def chat(self, media: Any, regions: Sequence[Any] = ()) -> ChatSession:
        """A multi-turn conversation about ``media``; each turn reuses the KV cache of the previous ones."""
        return ChatSession(self, media, regions)


class ChatSession:
    """Explicit conversation state: token ids so far and their KV cache."""

    def __init__(self, pipeline: PixelRefer, media: Any, regions: Sequence[Any] = ()):
        self.pipeline = pipeline
        used = pipeline.prepare(media, regions)
        self.media: Media = used.media
        self.regions = used.regions
        self.ids: list[int] = []
        self.cache = None
        self.history: list[tuple[str, str]] = []

    def ask(self, question: str, regions: Sequence[Any] | None = None, generation: GenerationConfig | None = None) -> Answer:
        """Ask a question. ``regions`` default to the session's regions when the question names all of them
        (one ``<region>`` each), else to none."""
        p = self.pipeline
        question = p._check_input(question, regions if regions is not None else self.regions)
        n = count_region_placeholders(question)
        if regions is None:
            regions = self.regions if n == len(self.regions) else []
        used = p.prepare(self.media, regions)
        sample = p._encode(used.media, used.regions, question, include_media=self.cache is None)
        full = self.ids + sample.input_ids
        check_prompt_tokens(len(full), p.model.config)
        ids = torch.tensor([full])
        out = p._generate(ids, torch.ones_like(ids), collate_visual([sample]), generation or GenerationConfig(),
                          return_dict=True, cache=self.cache)
        new = out.sequences[0, len(full):].tolist()
        answer = p._answers(p._new_tokens(out.sequences, len(full)), [sample], [used])[0]
        closing = [] if (new and new[-1] in p.stop_ids) else p.processor._tokenize(IM_END)
        self.ids = full + new + closing + p.processor._tokenize("\n")
        self.cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self.history.append((question, answer.text))
        return answer


class _Pieces:
    """Text pieces of a token stream, cut where transformers' ``TextStreamer`` cuts them (whole words)."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import TextStreamer

        collected: list[str] = []

        class Collector(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                collected.append(text)

        self._collected = collected
        self._streamer = Collector(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self.put, self.end = self._streamer.put, self._streamer.end

    def take(self) -> list[str]:
        out = [t for t in self._collected if t]
        self._collected.clear()
        return out


def _make_segmenter(spec: Any, device: torch.device) -> Any:
    if spec is None or not isinstance(spec, str):
        return spec
    try:
        from pixelrefer.segment import get_segmenter
    except ImportError:
        logger.info("segmentation backends unavailable; only mask regions can be used")
        return None
    return get_segmenter(spec, device=device)
