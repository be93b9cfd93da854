"""The prompts module owns every template and the placeholder rules; benchmarks, the demo and the API import it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pixelrefer.errors import PromptError
from pixelrefer.processing import prompts
from pixelrefer.processing.prompts import (
    BENCHMARK_PROMPTS,
    MCQ_SUFFIX,
    MENU_TASKS,
    TASK_PROMPTS,
    check_placeholders,
    compose_question,
    inline_choices,
    lettered,
    listed_choices,
    menu_question,
    task_prompt,
)

SRC = Path(prompts.__file__).resolve().parents[1]


def test_benchmark_prompts_keep_the_official_wording() -> None:
    assert BENCHMARK_PROMPTS["lvis"] == "What is the category of <region>? Using only one word or phrase."
    assert BENCHMARK_PROMPTS["vg"] == "Please describe <region> briefly."
    assert BENCHMARK_PROMPTS["hc_stvg"] == "Please describe the object <region> in brief in the video."
    assert BENCHMARK_PROMPTS["videorefer_d"] == "Please describe in detail the marked object <region> in the video."
    assert BENCHMARK_PROMPTS["paco"].startswith("What is the category of <region>? It maybe a subpart of an object.")
    assert BENCHMARK_PROMPTS["refl4"] == "Please describe <region> in brief."
    assert BENCHMARK_PROMPTS["videorefer_d_lite"] == (
        "There is one object in the video: <region>.\nPlease describe in detail the marked object in the video.")
    for name, prompt in BENCHMARK_PROMPTS.items():
        assert prompt.count("<region>") == 1, name


def test_eval_tasks_use_the_shared_prompts() -> None:
    from pixelrefer.eval.tasks import category, dlc_bench, hc_stvg, refl4, refl4_clair, vg, videorefer_d

    assert category.LVIS.prompt is TASK_PROMPTS["category"] and category.PACO.prompt is TASK_PROMPTS["part_category"]
    assert vg.PROMPT is TASK_PROMPTS["brief"] and hc_stvg.PROMPT is TASK_PROMPTS["video_brief"]
    assert videorefer_d.PROMPT is TASK_PROMPTS["video_detailed"]
    assert videorefer_d.LITE_PROMPT is BENCHMARK_PROMPTS["videorefer_d_lite"]
    assert hc_stvg.LITE_PROMPT is BENCHMARK_PROMPTS["hc_stvg_lite"] and refl4.PROMPT is BENCHMARK_PROMPTS["refl4"]
    assert refl4_clair.PROMPT is BENCHMARK_PROMPTS["refl4_clair"] and dlc_bench.PROMPT is BENCHMARK_PROMPTS["dlc_bench"]


def test_each_template_is_written_once() -> None:
    """Grep the package for the opening words of every template: only the prompts module writes them."""
    templates = [*TASK_PROMPTS.values(), *BENCHMARK_PROMPTS.values(), MCQ_SUFFIX, prompts.FERRET_LITE_PREFIX]
    sources = {path: path.read_text() for path in SRC.rglob("*.py")}
    for template in templates:
        opening = template.split("\n")[0][:40]
        holders = sorted(str(path.relative_to(SRC)) for path, text in sources.items() if opening in text)
        assert holders == ["processing/prompts.py"], (opening, holders)


def test_multiple_choice_layouts() -> None:
    assert lettered(["cat", "dog"]) == ["(A) cat", "(B) dog"]
    assert inline_choices("Which is <region>?", ["(A) cat", "(B) dog"]) == (
        "Which is <region>? (A) cat (B) dog. Answer with the option's letter from the given choices directly.")
    assert listed_choices("Which?", ["cat", "dog"]) == (
        "Question: Which?\nOptions:\n(A) cat\n(B) dog\n"
        "Answer with the option's letter from the given choices directly and only give the best option.")
    assert MCQ_SUFFIX in listed_choices("q", ["a", "b"]).replace(" and only give the best option", "")


def test_mvbench_and_videorefer_q_build_their_questions_here() -> None:
    from pixelrefer.eval.tasks import mvbench, videorefer_q

    assert "listed_choices" in inspect.getsource(mvbench) and "inline_choices" in inspect.getsource(videorefer_q)
    assert "Answer with" not in inspect.getsource(mvbench) + inspect.getsource(videorefer_q)


def test_task_validation_has_one_owner() -> None:
    assert task_prompt("brief") == TASK_PROMPTS["brief"]
    with pytest.raises(PromptError, match="unknown task 'nope'.*relation"):
        task_prompt("nope")
    with pytest.raises(PromptError, match="several regions"):
        task_prompt("relation")
    with pytest.raises(PromptError, match="unknown task"):
        compose_question(None, 1, "nope")
    with pytest.raises(PromptError, match="one region"):
        compose_question(None, 2, "brief")


def test_placeholder_count_is_checked_in_one_place() -> None:
    assert check_placeholders("What is <region>?", 1) == "What is <region>?"
    with pytest.raises(PromptError, match=r"exactly 1 <region> placeholder\(s\), found 2"):
        check_placeholders("<region> and <region>", 1)
    api = (SRC / "inference" / "api.py").read_text()
    processor = (SRC / "processing" / "processor.py").read_text()
    assert '"<region>"' not in api and '"<region>"' not in processor


def test_menu_question_is_the_demos_task_mapping() -> None:
    from pixelrefer.demo import session

    assert session.TASKS is MENU_TASKS
    assert menu_question("brief", None, 1) == TASK_PROMPTS["brief"]
    assert menu_question("brief", None, 1, is_video=True) == TASK_PROMPTS["video_brief"]
    assert menu_question("category", None, 1, is_video=True) == TASK_PROMPTS["category"]
    assert menu_question("question", "What is it?", 1).endswith("What is it?")
    both = menu_question("detailed", None, 2)
    assert both.startswith("There are 2 regions in the image:") and both.count("<region>") == 2
    assert "each region" in both
    assert menu_question("relation", None, 2) == "What is the relationship between <region> and <region>?"
