"""Local-metric benchmarks end to end on tiny files in each benchmark's own format (fake predictor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_files import BenchmarkFiles, hc_stvg, mvbench, osprey, synthetic, vg, videorefer_q
from eval_helpers import SIZE, FakePredictor, square_mask, write_video

from pixelrefer.eval.harness import predict, score
from pixelrefer.eval.io import read_jsonl
from pixelrefer.eval.tasks import ScoreContext, get_task
from pixelrefer.eval.types import EvalRequest

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _run(
    name: str,
    files: BenchmarkFiles,
    out: Path,
    predictor: FakePredictor,
    options: dict | None = None,
    variant: str = "full",
) -> dict:
    task = get_task(name, variant=variant)
    items = task.load(files.data, files.media_root)
    predict(task, items, predictor, out, run_info={"model": "fake", "data": str(files.data)})
    ctx = ScoreContext(out_dir=out, aux=files.aux, options={"meteor": False, **(options or {})})
    return score(task, out, ctx)


@pytest.mark.parametrize("name", ["lvis", "paco"])
def test_category_benchmarks(name: str, tmp_path: Path, embedder) -> None:
    answers = {"0-0": "Dog.", "0-1": "dining table", "1-0": "table:leg"}
    predictor = FakePredictor(lambda r: answers[r.id])
    report = _run(name, osprey(tmp_path / "d"), tmp_path / "out", predictor, options={"embedder": embedder})
    prompt = predictor.seen[0].question
    assert prompt.startswith("What is the category of <region>?")
    assert ("subpart" in prompt) == (name == "paco")
    assert report["counts"] == {"items": 5, "predicted": 3, "failed": 2}  # empty mask + missing image
    # SIoU per item: 1, 1, 1/3 (chair:leg vs table:leg), 0, 0 -> mean over 5
    assert report["metrics"]["SIoU"] == pytest.approx(100 * (1 + 1 + 1 / 3) / 5)
    assert 100 * 2 / 5 < report["metrics"]["SSim"] < 100 * 3 / 5
    assert report["paper"]["PixelRefer-7B"]["SSim"] == (90.5 if name == "lvis" else 91.7)
    assert "| SSim |" in (tmp_path / "out" / "results.md").read_text()


def test_vg_captions(tmp_path: Path) -> None:
    predictor = FakePredictor(lambda r: f"a red square {r.id}")
    report = _run("vg", vg(tmp_path / "d"), tmp_path / "out", predictor)
    assert predictor.seen[0].question == "Please describe <region> briefly."
    mask = predictor.seen[2].regions[0][0]
    assert mask.sum() == 10 * 16 and mask[8:24, 8:18].all()  # box [8, 8, 10, 16] filled as a rectangle
    assert report["metrics"]["BLEU-4"] == pytest.approx(100.0, abs=1e-3)
    assert report["metrics"]["CIDEr"] > 0 and "METEOR" not in report["metrics"]


def test_videorefer_q(tmp_path: Path) -> None:
    files = videorefer_q(tmp_path / "d")
    predictor = FakePredictor(lambda r: {"0": "(B) moving", "1": "B"}[r.id])
    report = _run("videorefer_q", files, tmp_path / "out", predictor)
    first = predictor.seen[0]
    assert first.question == (
        "What is <region> doing? (A) sleeping (B) moving. "
        "Answer with the option's letter from the given choices directly."
    )
    assert list(first.regions[0]) == [2] and first.video is not None and first.video.fps == 1.0
    assert report["metrics"] == {"BQ": 100.0, "RlQ": 0.0, "FP": 0.0, "Avg": pytest.approx(100 / 3)}
    assert report["counts"]["failed"] == 1  # item 2: no mask on frame 1
    lite = _run("videorefer_q", files, tmp_path / "lite", FakePredictor(lambda r: "A"), variant="lite")
    assert lite["counts"]["failed"] == 0  # Lite uses every annotated frame, so item 2 is usable


def test_hc_stvg(tmp_path: Path) -> None:
    predictor = FakePredictor(lambda r: "a man walks to the left")
    report = _run("hc_stvg", hc_stvg(tmp_path / "d"), tmp_path / "out", predictor)
    assert predictor.seen[1].question == "Please describe the object <region> in brief in the video."
    assert list(predictor.seen[1].regions[0]) == [3]
    assert 0 < report["metrics"]["BLEU-1"] < 100 and report["paper"]["PixelRefer-7B"]["CIDEr"] == 97.4


def test_mvbench(tmp_path: Path) -> None:
    predictor = FakePredictor(
        lambda r: {
            "action_sequence-0": "(B) stood.",
            "action_sequence-1": "B",
            "object_shuffle-0": "the middle",
        }[r.id]
    )
    report = _run("mvbench", mvbench(tmp_path / "d"), tmp_path / "out", predictor)
    first = predictor.seen[0]
    assert first.question == (
        "Question: What happened first?\nOptions:\n(A) sat\n(B) stood\nAnswer with the "
        "option's letter from the given choices directly and only give the best option."
    )
    assert (
        first.regions == [] and first.video is not None and (first.video.start, first.video.end) == (0.5, 2.0)
    )
    assert report["metrics"]["Avg"] == pytest.approx(40.0)  # 2 right of 5, the 2 bad items included
    per_task = report["groups"]["accuracy_per_task"]
    assert per_task == {"Action Sequence": 50.0, "Object Shuffle": pytest.approx(100 / 3)}
    assert report["counts"] == {"items": 5, "predicted": 3, "failed": 2}


def test_synthetic_benchmark_from_synth_build(tmp_path: Path) -> None:
    files = synthetic(tmp_path / "synth")
    samples = json.loads(files.data.read_text())
    truth = {s["id"]: s["meta"]["answer"] for s in samples}
    oracle = _run("synthetic", files, tmp_path / "oracle", FakePredictor(lambda r: truth[r.id]))
    assert oracle["counts"] == {"items": len(samples), "predicted": len(samples), "failed": 0}
    accuracies = {k: v for k, v in oracle["metrics"].items() if k.endswith(" acc")}
    assert accuracies and all(v == 100.0 for v in accuracies.values())
    wrong = _run("synthetic", files, tmp_path / "wrong", FakePredictor(lambda r: "zzz"))
    assert all(v == 0.0 for k, v in wrong["metrics"].items() if k.endswith(" acc"))
    predictions = read_jsonl(tmp_path / "oracle" / "predictions.jsonl")
    assert {p["ref"]["media"] for p in predictions} == {"image", "video"}

    size = {p["id"]: p["ref"]["size"] for p in predictions}
    category = {s["id"] for s in samples if s["meta"]["task"] in ("category", "part_category")}
    sizes = {size[i] for i in category}
    assert len(sizes) >= 2, "the fixture should ask about objects of several sizes"
    small = min(sizes, key=["tiny", "small", "medium", "large"].index)
    only_small = _run("synthetic", files, tmp_path / "small", FakePredictor(
        lambda r: truth[r.id] if r.id in category and size[r.id] == small else "zzz"))
    per_size = only_small["groups"]["category_accuracy_per_object_size"]
    assert per_size == {s: (100.0 if s == small else 0.0) for s in sizes}


def test_synthetic_benchmark_reports_held_out_phrasings(tmp_path: Path) -> None:
    files = synthetic(tmp_path / "synth", n=40, paraphrases=True)
    samples = json.loads(files.data.read_text())
    held = {s["id"] for s in samples if s["meta"]["phrasing"]["held_out"]}
    assert held and len(held) < len(samples)
    truth = {s["id"]: s["meta"]["answer"] for s in samples}
    report = _run("synthetic", files, tmp_path / "held", FakePredictor(lambda r: truth[r.id] if r.id in held else "zzz"))
    held_metrics = {k: v for k, v in report["metrics"].items() if k.startswith("held-out phrasings ")}
    trained_metrics = {k: v for k, v in report["metrics"].items() if k.startswith("trained phrasings ")}
    assert held_metrics and all(v == 100.0 for v in held_metrics.values())
    assert trained_metrics and all(v == 0.0 for v in trained_metrics.values())
    plain = synthetic(tmp_path / "plain", n=12)
    report = _run("synthetic", plain, tmp_path / "plain-run", FakePredictor(lambda r: "zzz"))
    assert not any("phrasings" in k for k in report["metrics"])


def test_synthetic_benchmark_reports_each_question_family(tmp_path: Path) -> None:
    files = synthetic(tmp_path / "synth", n=40, paraphrases=True)
    samples = json.loads(files.data.read_text())
    family = {s["id"]: s["meta"]["phrasing"]["family"] for s in samples if s["meta"]["task"] not in ("brief", "detail")}
    families = sorted(set(family.values()))
    assert len(families) >= 3, "the fixture should ask questions of several families"
    right = families[0]
    truth = {s["id"]: s["meta"]["answer"] for s in samples}
    report = _run("synthetic", files, tmp_path / "one", FakePredictor(
        lambda r: truth[r.id] if family.get(r.id) == right else "zzz"))
    per_family = report["groups"]["accuracy_per_question_family"]
    assert per_family == {f: (100.0 if f == right else 0.0) for f in families}
    counts = report["groups"]["items_per_question_family"]
    assert counts == {f: sum(v == f for v in family.values()) for f in families}


def test_predictor_adapter_maps_video_frames(tmp_path: Path) -> None:
    from pixelrefer.eval.predictor import to_media_and_regions
    from pixelrefer.eval.types import VideoSampling

    path = write_video(tmp_path / "v.mp4", num_frames=8, fps=4.0)
    request = EvalRequest("x", str(path), "What is <region>?", [{5: square_mask()}], VideoSampling(fps=1.0))
    clip, regions = to_media_and_regions(request)
    resolved = regions[0].resolve(clip.height, clip.width, clip.num_frames).masks
    (frame,) = resolved
    assert 0 <= frame < clip.num_frames and clip.frame_indices[frame] in (4, 5, 6)
    assert (resolved[frame] == square_mask().astype(bool)).all()
    image_media, image_regions = to_media_and_regions(
        EvalRequest("y", "img.png", "<region>", [{0: square_mask()}])
    )
    assert image_media == "img.png" and list(image_regions[0].resolve(SIZE, SIZE).masks) == [0]
