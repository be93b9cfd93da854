"""One module per benchmark; :func:`get_task` looks them up by name."""

from pixelrefer.eval.tasks.base import TASKS, ScoreContext, Task, TaskResult, get_task

__all__ = ["TASKS", "ScoreContext", "Task", "TaskResult", "get_task"]
