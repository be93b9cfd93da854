"""`pixelrefer data validate`: a generated file with planted defects; every one is found with its kind, the
file is streamed (tiny chunks give the same samples), the JSON report lists them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.train import validate as v

PLANTED = {  # index in the broken file -> kind
    1: "mask_key", 2: "missing_segmentation", 3: "missing_size", 4: "region_count", 5: "missing_media",
    6: "bad_mask", 7: "json",
}


def _broken(tiny_data: Path, tmp_path: Path) -> Path:
    good = json.loads((tiny_data / "train.json").read_text())
    base = good[0]
    s = [copy.deepcopy(base) for _ in range(6)]
    s[0]["annotation"] = [{"0": {"segmentation": s[0].pop("masks")[0]}}]  # VideoRefer style key
    s[1]["annotation"] = [{"0": {"bbox": [0, 0, 4, 4]}}]
    del s[1]["masks"]
    s[2]["masks"] = [[[10.0, 10.0, 30.0, 10.0, 30.0, 30.0]]]  # a polygon ...
    del s[2]["height"], s[2]["width"]  # ... without the size it needs
    s[3]["conversations"][0]["value"] += " And <region>?"  # two placeholders, one mask
    s[4]["image"] = "images/absent.png"
    s[5]["masks"] = [{"size": [64, 64], "counts": "not an rle"}]
    samples = [base, *s, 42, *good[1:4]]
    for i, sample in enumerate(samples):
        if isinstance(sample, dict):
            sample["id"] = f"s{i}"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(samples, indent=1))
    return path


def test_every_planted_defect_is_found(tiny_data, tmp_path):
    report = v.validate_files([_broken(tiny_data, tmp_path)], tiny_data, progress=False)
    assert report.samples == 11
    assert {d.index: d.kind for d in report.defects} == PLANTED


def test_streaming_in_tiny_chunks_equals_json_load(tiny_data, tmp_path, monkeypatch):
    path = _broken(tiny_data, tmp_path)
    monkeypatch.setattr(v, "CHUNK_BYTES", 7)
    with path.open() as f:
        streamed = [value for value, _ in v.iter_json_array(f, "x")]
    assert streamed == json.loads(path.read_text())


def test_truncated_file_is_a_json_defect(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('[{"id": "a"}, {"id": "b", "conv')
    report = v.validate_files([path], tmp_path, progress=False)
    assert [d.kind for d in report.defects][-1] == "json" and report.samples == 1


def test_cli_prints_counts_and_writes_report(tiny_data, tmp_path):
    out = tmp_path / "defects.json"
    result = CliRunner().invoke(app, ["data", "validate", str(_broken(tiny_data, tmp_path)), "--media-root",
                                      str(tiny_data), "--report", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "11 samples, 7 with defects" in result.output and "missing_media: 1" in result.output
    listed = json.loads(out.read_text())
    assert sorted(d["kind"] for d in listed) == sorted(PLANTED.values())
    assert CliRunner().invoke(app, ["data", "validate", str(tmp_path / "nope.json")]).exit_code == 2


@pytest.mark.parametrize("text", ['{"a": 1}', "[1 2]"])
def test_not_an_array_or_bad_separator(tmp_path, text):
    path = tmp_path / "x.json"
    path.write_text(text)
    assert v.validate_files([path], tmp_path, progress=False).defects[-1].kind == "json"
