"""MVBench-style video multiple choice (20 task JSONs + video folders), accuracy per task.

``--data`` is the folder of task JSONs (or one of them); ``--media-root`` the folder holding the
per-source video folders listed in :data:`TASKS`. Questions carry no region.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.masks import require_file
from pixelrefer.eval.metrics.mcq import accuracy_by_type, mvbench_choice
from pixelrefer.eval.tasks.base import (
    Record,
    ScoreContext,
    Task,
    TaskResult,
    counts_of,
    failure_notes,
    require,
)
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest
from pixelrefer.media import OFFICIAL_EVAL_SAMPLING
from pixelrefer.processing.prompts import listed_choices

# task name -> (json file, video folder under the media root, read as frames, has start/end bound)
TASKS: dict[str, tuple[str, str, bool, bool]] = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480/", False, True),
    "Action Prediction": ("action_prediction.json", "star/Charades_v1_480/", False, True),
    "Action Antonym": ("action_antonym.json", "ssv2_video/", False, False),
    "Fine-grained Action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos/", False, False),
    "Unexpected Action": ("unexpected_action.json", "FunQA_test/test/", False, False),
    "Object Existence": ("object_existence.json", "clevrer/video_validation/", False, False),
    "Object Interaction": ("object_interaction.json", "star/Charades_v1_480/", False, True),
    "Object Shuffle": ("object_shuffle.json", "perception/videos/", False, False),
    "Moving Direction": ("moving_direction.json", "clevrer/video_validation/", False, False),
    "Action Localization": ("action_localization.json", "sta/sta_video/", False, True),
    "Scene Transition": ("scene_transition.json", "scene_qa/video/", False, False),
    "Action Count": ("action_count.json", "perception/videos/", False, False),
    "Moving Count": ("moving_count.json", "clevrer/video_validation/", False, False),
    "Moving Attribute": ("moving_attribute.json", "clevrer/video_validation/", False, False),
    "State Change": ("state_change.json", "perception/videos/", False, False),
    "Fine-grained Pose": ("fine_grained_pose.json", "nturgbd/", False, False),
    "Character Order": ("character_order.json", "perception/videos/", False, False),
    "Egocentric Navigation": ("egocentric_navigation.json", "vlnqa/", False, False),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq/", True, True),
    "Counterfactual Inference": ("counterfactual_inference.json", "clevrer/video_validation/", False, False),
}
FRAME_FOLDER_FPS = 3.0


class MVBench(Task):
    name = "mvbench"
    title = "MVBench"
    modality = "video"
    anchor_key = "mvbench"

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        files = {spec[0]: name for name, spec in TASKS.items()}
        paths = (
            [data / spec[0] for spec in TASKS.values() if (data / spec[0]).exists()]
            if data.is_dir()
            else [data]
        )
        if not paths:
            raise FileNotFoundError(f"no MVBench task JSON ({', '.join(files)}) in {data}")
        items: list[EvalItem] = []
        for path in paths:
            task_name = files.get(path.name, path.stem)
            spec = TASKS.get(task_name, (path.name, "", False, False))
            for number, entry in enumerate(load_json_or_jsonl(path)):
                item_id = f"{path.stem}-{number}"
                candidates = entry.get("candidates") if isinstance(entry, dict) else None
                options = [str(c) for c in candidates] if isinstance(candidates, list) else []
                answer = entry.get("answer") if isinstance(entry, dict) else None
                gt = options.index(str(answer)) if str(answer) in options else -1
                ref = {"task_type": task_name, "options": options, "gt": gt}
                items.append(
                    EvalItem(item_id, len(items), ref, self._builder(item_id, entry, media_root, spec))
                )
        return items

    def _builder(
        self, item_id: str, entry: Any, media_root: Path, spec: tuple[str, str, bool, bool]
    ) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            if not isinstance(entry, dict):
                raise BadItem("entry is not an object")
            video, question, options, answer = require(entry, "video", "question", "candidates", "answer")
            if not isinstance(options, list) or len(options) < 2:
                raise BadItem("'candidates' must be a list of at least two options")
            if str(answer) not in [str(c) for c in options]:
                raise BadItem("the answer is not one of the candidates")
            path = require_file(media_root / spec[1] / str(video))
            sampling = OFFICIAL_EVAL_SAMPLING.replace(
                folder_fps=FRAME_FOLDER_FPS,
                start=entry.get("start") if spec[3] else None,
                end=entry.get("end") if spec[3] else None,
            )
            return EvalRequest(
                item_id, path, listed_choices(str(question), [str(o) for o in options]), [], sampling
            )

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        outcomes, items = [], []
        for r in records:
            choice = None if r.get("error") else mvbench_choice(r["pred"], r["ref"]["options"])
            correct = choice is not None and choice == r["ref"]["gt"]
            outcomes.append((r["ref"]["task_type"], correct))
            items.append(
                {"id": r["id"], "task_type": r["ref"]["task_type"], "choice": choice, "correct": correct}
            )
        per_task, overall, _ = accuracy_by_type(outcomes)
        return TaskResult(
            metrics={"Avg": overall},
            counts=counts_of(records),
            groups={"accuracy_per_task": per_task},
            notes=failure_notes(records),
            item_scores=items,
        )
