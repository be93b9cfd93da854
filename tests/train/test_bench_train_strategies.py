"""The pure helpers of benchmarks/bench_train_strategies.py: the reduced-depth model overrides (which must cut
depth only, so the dry-run estimate of the reduced config is the recipe's minus whole layers), the ratio, the
markdown table and the argument parsers. The timing itself is not tested."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench = pytest.importorskip("bench_train_strategies")

from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.presets import RANDOM_PRESETS, preset_config
from pixelrefer.train.plan import QWEN2_VOCAB, _PlanTokenizer


def _params(config) -> int:
    with torch.device("meta"):
        model = PixelReferForConditionalGeneration(config)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize("preset", ["2b", "7b"])
def test_reduced_overrides_cut_whole_layers_only(preset):
    tok = _PlanTokenizer(QWEN2_VOCAB)
    full_llm = RANDOM_PRESETS[preset]["text"]["num_hidden_layers"]
    full_vision = RANDOM_PRESETS[preset]["vision"]["num_hidden_layers"]
    full = _params(preset_config(preset, tok))
    one = _params(preset_config(preset, tok, **bench.reduced_overrides(preset, tok, 1, 1)))
    two_llm = _params(preset_config(preset, tok, **bench.reduced_overrides(preset, tok, 2, 1)))
    two_vision = _params(preset_config(preset, tok, **bench.reduced_overrides(preset, tok, 1, 2)))
    llm_layer, vision_layer = two_llm - one, two_vision - one
    assert llm_layer > 0 and vision_layer > 0
    assert one + (full_llm - 1) * llm_layer + (full_vision - 1) * vision_layer == full


def test_reduced_overrides_vocab_and_token_ids():
    tok = _PlanTokenizer(320)
    over = bench.reduced_overrides("2b", tok, 1, 1, vocab=32768)
    config = preset_config("2b", tok, **over)
    assert config.text_config.vocab_size == 32768
    assert config.text_config.num_hidden_layers == 1 and config.vision_config.num_hidden_layers == 1
    assert config.text_config.eos_token_id == tok.eos_token_id
    assert config.text_config.hidden_size == RANDOM_PRESETS["2b"]["text"]["hidden_size"]
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        bench.reduced_overrides("2b", _PlanTokenizer(40000), 1, 1, vocab=32768)
    with pytest.raises(ValueError, match="layers must be >= 1"):
        bench.reduced_overrides("2b", tok, 0, 1)


def test_ratio_and_table():
    assert bench.ratio(3.0, 2.0) == 1.5
    assert bench.ratio(None, 2.0) is None and bench.ratio(3.0, 0.0) is None
    ok = {"recipe": "2b", "strategy": "fsdp2", "processes": 2, "grad_ckpt": True, "peak_gib": 3.0,
          "estimate_gib": 2.0, "step_s": 1.234, "full_estimate_gib": 12.3}
    bad = {"recipe": "7b", "strategy": "zero3", "processes": 2, "grad_ckpt": False, "estimate_gib": 2.0,
           "full_estimate_gib": 40.0, "error": "RuntimeError: boom"}
    lines = bench.markdown_table([ok, bad]).splitlines()
    assert len(lines) == 4
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| 3.00 | 2.00 | 1.50 | 1.23 | 12.3 |" in lines[2]
    assert "failed: RuntimeError: boom" in lines[3] and "| on |" in lines[2] and "| off |" in lines[3]


def test_worst_process_and_last_error():
    rows = [{"peak_gib": 1.0, "after_build_gib": 0.5, "step_s": 2.0, "steps_s": [3, 2], "loss": 1.0},
            {"peak_gib": 1.5, "after_build_gib": 0.4, "step_s": 1.0, "steps_s": [2, 1], "loss": 1.0}]
    worst = bench.worst_process(rows)
    assert (worst["peak_gib"], worst["after_build_gib"], worst["step_s"]) == (1.5, 0.5, 2.0)
    assert bench.last_error("ok\nValueError: a | b\nexit 1") == "ValueError: a / b"
    assert bench.last_error("") == "no output"


def test_parse_vocab():
    assert bench.parse_vocab("7b=8192, 2b=32768") == {"7b": 8192, "2b": 32768}
    for bad in ("9b=1", "7b", "7b=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_vocab(bad)


def test_kept_rows(tmp_path):
    path = tmp_path / "r.json"
    planned = {bench.row_key("7b", "zero2", True)}
    assert bench.kept_rows(path, planned) == []
    rows = [{"recipe": "2b", "strategy": "zero2", "grad_ckpt": True},
            {"recipe": "7b", "strategy": "zero2", "grad_ckpt": False},
            {"recipe": "7b", "strategy": "zero2", "grad_ckpt": True}]
    path.write_text(json.dumps({"args": {}, "rows": rows}))
    assert bench.kept_rows(path, planned) == rows[:2]
