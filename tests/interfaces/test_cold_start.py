"""What a cold in-process `pixelrefer ask` imports: nothing heavy beyond the transformers model stack it is built on.

The start-up floor is torch plus transformers' ``modeling_utils`` (see docs/architecture.md, "Cold start"); these
checks keep our own modules from adding to it. Counted in a fresh interpreter, by module name, not by time.
"""

from __future__ import annotations

import json
import subprocess
import sys

# transformers' modules our model is built on (PreTrainedModel, generate, Qwen2, the VideoLLaMA3 vision tower)
STACK = ("transformers.modeling_utils", "transformers.generation.utils", "transformers.models.qwen2.modeling_qwen2",
         "transformers.models.video_llama_3.modeling_video_llama_3")
# what the ask path runs: the command, the predictor and its loader, the box segmenter, media decoding
ASK_PATH = ("pixelrefer.cli.ask", "pixelrefer.inference.api", "pixelrefer.model.loading", "pixelrefer.segment.classical",
            "pixelrefer.media")
CLI_PACKAGES = ("typer", "rich", "click", "shellingham", "annotated_doc", "pydantic", "pydantic_core", "markdown_it",
                "mdurl", "pygments")  # typer and its dependencies
OWN_EXTRAS = ("pixelrefer.train", "pixelrefer.server", "pixelrefer.demo", "pixelrefer.eval", "pixelrefer.synth",
              "pixelrefer.segment.sam2")


def _imports() -> dict[str, list[str]]:
    code = f"""
import importlib, json, sys
for name in {STACK!r}:
    importlib.import_module(name)
before = set(sys.modules)
for name in {ASK_PATH!r}:
    importlib.import_module(name)
new = sorted(set(sys.modules) - before)
print(json.dumps({{"new": new, "all": sorted(sys.modules)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_ask_path_adds_only_light_packages_to_the_transformers_stack() -> None:
    got = _imports()
    packages = {name.split(".")[0] for name in got["new"]}
    light = {"pixelrefer", "transformers", "cv2", "pycocotools", "numpy", "PIL", "tokenizers", "av", *CLI_PACKAGES}
    heavy = sorted(p for p in packages - light if not p.startswith("_"))  # "_": compiled helpers (_cython_*)
    assert heavy == [], f"the ask path imports packages transformers' model stack does not: {heavy}"
    models = sorted(m for m in got["new"] if m.startswith(("transformers.models.", "transformers.pipelines",
                                                            "transformers.trainer")))
    assert models == [], f"the ask path imports more of transformers than the model stack: {models}"
    loaded_extras = sorted(m for m in got["all"] if m.startswith(OWN_EXTRAS))
    assert loaded_extras == [], f"the ask path imports modules of other commands: {loaded_extras}"
