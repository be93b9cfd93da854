"""Each atheris harness runs for a few seconds (``FUZZ_SECONDS``, default 5) and must end without a crash.

Longer runs on demand: ``PYTHONPATH=src python tests/fuzz/fuzz_rle.py -max_total_time=600 -timeout=10``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
HARNESSES = sorted(p.stem for p in HERE.glob("fuzz_*.py") if p.stem != "fuzz_common")
SECONDS = int(os.environ.get("FUZZ_SECONDS", "5"))


def test_every_parser_has_a_harness() -> None:
    assert HARNESSES == ["fuzz_polygon", "fuzz_region_json", "fuzz_rle"]


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_runs_without_crash(harness: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{harness}.py"), f"-max_total_time={SECONDS}", "-timeout=10",
         f"-artifact_prefix={tmp_path}/"],
        check=False, capture_output=True, text=True, timeout=SECONDS + 120, env=env, cwd=tmp_path,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    done = re.search(r"#(\d+)\s+DONE\s+cov: (\d+)", log)
    assert done is not None and int(done.group(1)) > 100, log[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
