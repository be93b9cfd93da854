"""`pixelrefer chat`: a multi-turn conversation about regions of one image or video, the media encoded once.

Questions are read line by line from stdin (interactive with a prompt on a terminal, or piped):
``printf 'What is <region>?\\nWhat colour is it?\\n' | pixelrefer chat scene.png --box 30,20,80,60``.
Follow-ups without ``<region>`` refer to the conversation so far (the KV cache is reused).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TextIO

import typer

from pixelrefer.cli.common import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    FpsOpt,
    JsonOpt,
    MaxFramesOpt,
    ModelArgs,
    RegionArgs,
    TokensOpt,
    cli_errors,
    console,
    model_options,
    prepare,
    region_options,
)
from pixelrefer.constants import DEFAULT_ANSWER_TOKENS
from pixelrefer.processing.prompts import PromptError, compose_question

QUIT = {"/quit", "/exit", ":q"}


def _questions(stream: TextIO, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            console.print("[bold cyan]you>[/] ", end="")
        line = stream.readline()
        if not line:
            return
        line = line.strip()
        if line in QUIT:
            return
        if line:
            yield line


def chat(
    media: Annotated[Path, typer.Argument(help="image or video file (or a folder of frames)")],
    region_args: RegionArgs,
    model_args: ModelArgs,
    max_new_tokens: TokensOpt = DEFAULT_ANSWER_TOKENS,
    as_json: JsonOpt = False,
    fps: FpsOpt = DEFAULT_FPS,
    max_frames: MaxFramesOpt = DEFAULT_MAX_FRAMES,
) -> None:
    """Talk about regions of an image or video; one question per line on stdin, /quit to stop.

    Example: pixelrefer chat scene.png --box 30,20,80,60   then type: What is <region>?
    """
    with cli_errors():
        pipeline, clip, region_list, _ = prepare(media, region_args, model_args, fps, max_frames)
        from pixelrefer.engines.generation import GenerationConfig

        with console.status("Segmenting regions …"):
            session = pipeline.chat(clip, region_list)
        generation = GenerationConfig(max_new_tokens=max_new_tokens)
        interactive = sys.stdin.isatty()
        if interactive:
            console.print(f"{len(region_list)} region(s) on {media.name}; ask with <region> placeholders, /quit to stop")
        for turn, line in enumerate(_questions(sys.stdin, interactive)):
            question = compose_question(line, len(region_list)) if turn == 0 else line
            start = time.perf_counter()
            try:
                answer = session.ask(question, generation=generation)
            except PromptError as exc:  # a bad line should not end the conversation
                console.print(f"[bold red]error:[/] {exc}")
                continue
            latency = time.perf_counter() - start
            text = answer.text or f"(empty answer, {len(answer.token_ids)} tokens)"
            if as_json:
                print(json.dumps({"turn": turn, "question": question, "answer": answer.text,
                                  "completion_tokens": len(answer.token_ids), "latency_s": round(latency, 3)},
                                 ensure_ascii=False), flush=True)
            else:
                print(f"assistant> {text}", flush=True)


chat = model_options(region_options(chat))
