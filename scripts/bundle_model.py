"""Copy a finished recipe run into the package as a bundled model, with the recipe and the logs that reproduce it.

A bundled folder holds the exported model and tokenizer (``RUN/final``), the run's resolved config and metrics
(``train_config.yaml``, ``train_metrics.jsonl``) and its vision pretraining's (``vision_pretrain.yaml``,
``vision_pretrain_metrics.jsonl``, from the run's ``model.vision_init`` folder):

    python scripts/bundle_model.py runs/nano nano
    python scripts/bundle_model.py runs/nano-lite nano-lite
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

from pixelrefer.presets import BUNDLED

ROOT = Path(__file__).resolve().parent.parent
# (file in the run or its vision folder, name in the bundled folder)
RUN_FILES = (("config.yaml", "train_config.yaml"), ("metrics.jsonl", "train_metrics.jsonl"))
VISION_FILES = (("vision_pretrain.yaml", "vision_pretrain.yaml"), ("metrics.jsonl", "vision_pretrain_metrics.jsonl"))


def bundle(run: Path, name: str) -> Path:
    final, dest = run / "final", BUNDLED[name]
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    vision = Path(config["model"]["vision_init"])
    vision = vision if vision.is_absolute() else ROOT / vision
    sources = [final / f.name for f in sorted(final.iterdir()) if f.is_file()]
    sources += [run / a for a, _ in RUN_FILES] + [vision / a for a, _ in VISION_FILES]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise SystemExit(f"not a finished run with its vision pretraining: missing {missing}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in final.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    for folder, files in ((run, RUN_FILES), (vision, VISION_FILES)):
        for src, dst in files:
            shutil.copy2(folder / src, dest / dst)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run's output_dir (with final/, config.yaml, metrics.jsonl)")
    parser.add_argument("name", choices=sorted(BUNDLED), help="the bundled model it becomes")
    args = parser.parse_args()
    dest = bundle(args.run, args.name)
    size = sum(f.stat().st_size for f in dest.iterdir()) / 2**20
    print(f"bundled {args.run} as {args.name!r} in {dest.relative_to(ROOT)} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
