"""Evaluation harness: every benchmark of the paper, with its own file format, prompt, metric and judge.

Typical use goes through ``pixelrefer eval BENCHMARK ...``; the pieces are importable:

* :func:`pixelrefer.eval.tasks.get_task` -> a :class:`~pixelrefer.eval.tasks.Task` (``load``, ``score``)
* :func:`pixelrefer.eval.harness.predict` / :func:`~pixelrefer.eval.harness.score` / ``merge_shards``
* :class:`~pixelrefer.eval.predictor.Predictor` (protocol) and ``PixelReferPredictor``
"""

from pixelrefer.eval.harness import merge_shards, predict, score
from pixelrefer.eval.judge import Judge, JudgeConfig, JudgeNotConfigured
from pixelrefer.eval.predictor import PixelReferPredictor, Predictor
from pixelrefer.eval.tasks import TASKS, ScoreContext, Task, TaskResult, get_task
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest
from pixelrefer.media import VideoSampling

__all__ = [
    "TASKS",
    "BadItem",
    "EvalItem",
    "EvalRequest",
    "Judge",
    "JudgeConfig",
    "JudgeNotConfigured",
    "PixelReferPredictor",
    "Predictor",
    "ScoreContext",
    "Task",
    "TaskResult",
    "VideoSampling",
    "get_task",
    "merge_shards",
    "predict",
    "score",
]
