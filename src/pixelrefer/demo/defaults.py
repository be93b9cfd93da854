"""The demo's answer settings, defined once (the ``pixelrefer demo`` flags, the page's sliders and
:meth:`pixelrefer.demo.session.DemoController.ask` start from them); free of gradio and torch so the CLI can read it."""

from __future__ import annotations

from dataclasses import dataclass

from pixelrefer.constants import DEFAULT_ANSWER_TOKENS


@dataclass(frozen=True)
class DemoDefaults:
    max_new_tokens: int = DEFAULT_ANSWER_TOKENS
    temperature: float = 0.0  # 0 = greedy


DEMO_DEFAULTS = DemoDefaults()
