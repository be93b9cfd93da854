"""`pixelrefer synth`: build the synthetic dataset, or write one sample scene to try `pixelrefer ask` on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

from pixelrefer.synth import world
from pixelrefer.synth.build import build_dataset
from pixelrefer.synth.config import DEFAULT_PRETOKENIZER, DEFAULT_VOCAB_SIZE, SynthConfig, check_pretokenizer
from pixelrefer.synth.scenes import Box, clearest_object, mask_box, sample_scene
from pixelrefer.synth.tasks import CATEGORY_PROMPT, ask, noun_phrase
from pixelrefer.synth.videos import render_video

logger = logging.getLogger(__name__)

DEFAULTS = SynthConfig()
SAMPLE_FPS = DEFAULTS.fps  # the sample clip plays at the frame rate of the training videos
MOTION_PROMPT = ask("direction")


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    n_train: Annotated[int, typer.Option(help="Training samples.")] = DEFAULTS.n_train,
    n_val: Annotated[int, typer.Option(help="Validation samples.")] = DEFAULTS.n_val,
    n_test: Annotated[int, typer.Option(help="Test samples.")] = DEFAULTS.n_test,
    n_heldout: Annotated[int, typer.Option(help="Samples about unseen (category, colour) combinations.")] = DEFAULTS.n_heldout,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives byte-identical files.")] = DEFAULTS.seed,
    video_fraction: Annotated[float, typer.Option(help="Share of scenes that are videos.")] = DEFAULTS.video_fraction,
    image_size: Annotated[int, typer.Option(help="Side of the square images and frames, in pixels.")] = DEFAULTS.side,
    samples_per_scene: Annotated[int, typer.Option(help="Questions asked about each rendered scene.")] = DEFAULTS.samples_per_scene,
    video_masks: Annotated[str, typer.Option(help="'first' (one frame per object) or 'all' frames.")] = DEFAULTS.video_masks,
    paraphrases: Annotated[bool, typer.Option(help="Ask each question in one of its wordings (held-out wordings in "
                                                    "test/heldout only).")] = DEFAULTS.paraphrases,
    off_palette_categories: Annotated[float, typer.Option(help="Share of training image scenes painted off-palette, "
                                                          "asked category questions only.")] = DEFAULTS.off_palette_categories,
    workers: Annotated[int, typer.Option(help="Worker processes (output does not depend on it).")] = 1,
    tokenizer: Annotated[bool, typer.Option(help="Also train the small models' tokenizer into OUT/tokenizer.")] = False,
    vocab_size: Annotated[int, typer.Option(help="Tokenizer vocabulary size, special tokens included.")] = DEFAULT_VOCAB_SIZE,
    pretokenizer: Annotated[str, typer.Option(help="Tokenizer split rule: qwen2, words (spaces split off every "
                                                   "word) or options (off the word after '(B)').")] = DEFAULT_PRETOKENIZER,
    sample: Annotated[bool, typer.Option("--sample", help="Write one scene with masks and print its boxes.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate the synthetic object-referring world in the official training-data format."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if tokenizer:
        from pixelrefer.synth.tokenizer import check_vocab_size

        check_vocab_size(vocab_size)  # before the dataset is built, not after
        check_pretokenizer(pretokenizer)
    if sample:
        write_sample(out, seed, image_size)
        return
    config = SynthConfig(n_train=n_train, n_val=n_val, n_test=n_test, n_heldout=n_heldout, seed=seed,
                         video_fraction=video_fraction, image_size=image_size, samples_per_scene=samples_per_scene,
                         video_masks=video_masks, paraphrases=paraphrases,
                         off_palette_categories=off_palette_categories)
    info = build_dataset(out, config, workers=workers, progress=progress)
    for split, summary in info["splits"].items():  # type: ignore[union-attr]
        typer.echo(f"{split}: {summary['samples']} samples -> {out / (split + '.json')}")
    if tokenizer:
        from pixelrefer.synth.tokenizer import corpus_texts, train_tokenizer

        tok = train_tokenizer(corpus_texts(out, ("train.json",)), out / "tokenizer", vocab_size=vocab_size,
                              pretokenizer=pretokenizer)
        typer.echo(f"tokenizer: {len(tok)} tokens -> {out / 'tokenizer'}")


def _box_arg(box: Box) -> str:
    return ",".join(str(v) for v in box)


def write_sample(out: Path, seed: int, image_size: int) -> None:
    """One scene (PNG), one mask PNG per object and a JSON of the ground truth; prints ready commands."""
    scene = sample_scene(seed, image_size)
    out.mkdir(parents=True, exist_ok=True)
    image_path = out / "scene.png"
    Image.fromarray(scene.image).save(image_path)
    truth = []
    for obj in scene.objects:
        mask_path = out / f"mask_{obj.index}.png"
        Image.fromarray(obj.mask.astype(np.uint8) * 255).save(mask_path)
        truth.append(obj.facts() | {"mask": mask_path.name, "phrase": noun_phrase(obj.size, obj.colour,
                                                                                  obj.pattern, obj.category)})
    (out / "scene.json").write_text(json.dumps({"image": image_path.name, "objects": truth}, indent=2) + "\n")
    typer.echo(f"wrote {image_path} ({scene.width}x{scene.height}), {len(scene.objects)} objects, "
               f"masks mask_<i>.png and ground truth scene.json in {out}")
    for obj in scene.objects:
        parts = f"  parts: {', '.join(world.part_label(obj.category, p.name) for p in obj.parts)}" if obj.parts else ""
        typer.echo(f"object {obj.index}: --box {_box_arg(obj.box)}  truth: {obj.category} "
                   f"({noun_phrase(obj.size, obj.colour, obj.pattern, obj.category)}){parts}")
    clearest = clearest_object(scene)
    typer.echo(f'try: pixelrefer ask {image_path} --box {_box_arg(clearest.box)} "{CATEGORY_PROMPT}"')
    write_sample_video(out, seed, image_size)


def write_sample_video(out: Path, seed: int, image_size: int) -> None:
    """A short clip (MP4 at 1 fps) of moving objects, its ground truth, and ready commands for objects on frame 0."""
    from pixelrefer.media import write_video

    video = render_video(np.random.default_rng(seed), (image_size, image_size), fps=SAMPLE_FPS)
    clip_path = write_video(video.frames, out / "clip.mp4", fps=SAMPLE_FPS)
    truth = [{"index": tr.index, "category": tr.spec.category, "colours": tr.colours, "motion": tr.motion,
              "first_frame": tr.first_frame, "last_frame": tr.last_frame,
              "box_on_first_frame": list(mask_box(tr.masks[tr.first_frame]))}
             for tr in video.tracks]
    (out / "clip.json").write_text(json.dumps({"video": clip_path.name, "fps": SAMPLE_FPS, "frames": len(video.frames),
                                               "objects": truth}, indent=2) + "\n")
    typer.echo(f"wrote {clip_path} ({len(video.frames)} frames at {SAMPLE_FPS:g} fps) and its ground truth clip.json")
    on_first = [tr for tr in video.tracks if tr.first_frame == 0]
    for tr in on_first:
        typer.echo(f"track {tr.index} on frame 0: --box {_box_arg(mask_box(tr.masks[0]))}  truth: {tr.spec.category}, "
                   f"motion {tr.motion}")
    if on_first:
        typer.echo(f'try: pixelrefer ask {clip_path} --box {_box_arg(mask_box(on_first[0].masks[0]))} --frame 0 '
                   f'"{MOTION_PROMPT}" --overlay {out / "asked.gif"}')
