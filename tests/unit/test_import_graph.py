"""The import graph of ``pixelrefer``: no cycles between its parts and no arrow from a lower layer to a higher one.

Every module under ``src/pixelrefer`` is parsed with :mod:`ast`; every import counts, top-level, inside
functions and under ``TYPE_CHECKING`` alike. A part is a subpackage (``pixelrefer.media``) or a top-level module
(``pixelrefer.config``); imports inside one part are not arrows. The layers below are the ones
``docs/architecture.md`` ("Layers") describes; a part may import only parts of its own layer or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pixelrefer

PACKAGE_ROOT = Path(pixelrefer.__file__).parent

# Lowest first. A new part must be placed here (the test says so) before it can be imported anywhere.
LAYERS: list[set[str]] = [
    {"constants", "errors", "types", "limits", "utils", "image_settings"},  # no pixelrefer imports but these
    {"config", "presets", "media", "segment"},  # model config; pixels in (media) and masks out (segmenters)
    {"regions", "viz"},  # region prompts -> masks (through a segmenter); drawing masks on media
    {"processing"},  # resolved media + masks -> model inputs
    {"model"},  # the network
    {"engines"},  # generation from embeddings (and the decoding settings)
    {"inference"},  # the predictor façade: media and regions resolved once
    {"eval", "train", "synth", "parity", "recipes"},  # applications of the predictor / the model
    {"server", "demo"},  # interactive front-ends
    {"cli", "__main__"},  # the command line over everything
]
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of the pixelrefer modules that ``source`` (module ``module``) imports, anywhere in it
    (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return {n for n in names if n == "pixelrefer" or n.startswith("pixelrefer.")}


def _part(module: str) -> str | None:
    """The part a module belongs to; ``None`` for the root package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def part_graph() -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> the files (relative to the package) with such an import."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        source = _part(_module_name(path))
        if source is None:
            continue
        graph.setdefault(source, {})
        for name in _imports(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"):
            target = _part(name)
            if target is not None and target != source:
                graph[source].setdefault(target, []).append(str(path.relative_to(PACKAGE_ROOT)))
    return graph


def _cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_part_has_a_layer():
    assert set(part_graph()) - set(LAYER_OF) == set(), "place the new part in LAYERS (and in docs/architecture.md)"


def test_no_import_cycles_between_parts():
    assert _cycle(part_graph()) is None, f"import cycle: {' -> '.join(_cycle(part_graph()) or [])}"


def test_no_upward_imports():
    upward = [f"{source} (layer {LAYER_OF[source]}) imports {target} (layer {LAYER_OF[target]}) in {files[0]}"
              for source, targets in part_graph().items() for target, files in targets.items()
              if LAYER_OF.get(target, -1) > LAYER_OF.get(source, len(LAYERS))]
    assert upward == []


def test_the_checks_see_function_level_and_relative_imports():
    """The parser finds imports inside functions and relative ones, and the cycle finder finds a planted cycle
    (else the checks above could pass vacuously)."""
    source = "import os\ndef f():\n    from pixelrefer.cli import common\nfrom ..server import app\nfrom . import video\n"
    assert _imports(source, "pixelrefer.media.load", False) == {"pixelrefer.cli", "pixelrefer.server", "pixelrefer.media"}
    assert "media" in part_graph()["processing"]
    assert _cycle({"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": ["x"]}, "b": {}}) is None
