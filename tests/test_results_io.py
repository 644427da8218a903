"""Result files: writing, the server zip, reading and check-results."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data.results import (
    check_results,
    gt_index,
    read_results,
    rle_counts_ok,
    write_results,
    write_results_zip,
)
from benchmark.errors import InputError
from benchmark.masks import encode_mask, rle_area

CASE = Path(__file__).parent / "fixtures" / "evaluator" / "r010"


def _entries() -> list[dict]:
    m = np.zeros((5, 7), dtype=np.uint8)
    m[1:3, 2:6] = 1
    rle = encode_mask(m)
    return [
        {"video_id": 1, "category_id": 2, "score": 0.25, "segmentations": [rle, None]},
        {"video_id": 1, "category_id": 1, "score": 1, "segmentations": [None, {"size": [5, 7], "counts": rle["counts"].encode()}]},
    ]  # fmt: skip


def test_write_and_read_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "results.json"
    write_results(p, _entries())
    back = read_results(p)
    assert (
        back[1]["segmentations"][1]["counts"] == _entries()[0]["segmentations"][0]["counts"]
    )  # bytes -> str
    assert back[1]["score"] == 1.0 and isinstance(back[1]["score"], float)
    assert [x.name for x in p.parent.iterdir()] == ["results.json"]  # no temporary left behind


def test_zip_has_results_at_root(tmp_path: Path) -> None:
    z = tmp_path / "sub.zip"
    write_results_zip(z, _entries())
    with zipfile.ZipFile(z) as zf:
        assert zf.namelist() == ["results.json"]
        assert len(json.loads(zf.read("results.json"))) == 2
    res = tmp_path / "r.json"
    write_results(res, _entries())
    write_results_zip(z, res)  # from a file: copied byte for byte
    with zipfile.ZipFile(z) as zf:
        assert zf.read("results.json") == res.read_bytes()


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    p = tmp_path / "results.json"
    write_results(p, _entries())
    before = p.read_bytes()
    with pytest.raises(ValueError):
        write_results(p, [{**_entries()[0], "score": float("nan")}])
    assert p.read_bytes() == before


def test_check_results_cli_ok_and_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = tmp_path / "out.zip"
    rc = main(["check-results", str(CASE / "results.json"), "--gt", str(CASE / "gt.json"), "--zip", str(z)])
    # r010 has predictions of a category that is not in the GT: check-results reports them
    assert rc == 2
    assert "is not a category of the ground truth" in capsys.readouterr().err
    assert not z.exists()
    ok = tmp_path / "ok.json"
    gt = json.loads((CASE / "gt.json").read_text())
    _, cats = gt_index(gt)
    write_results(
        ok, [e for e in json.loads((CASE / "results.json").read_text()) if e["category_id"] in cats]
    )
    assert main(["check-results", str(ok), "--gt", str(CASE / "gt.json"), "--zip", str(z)]) == 0
    assert "OK" in capsys.readouterr().out
    assert zipfile.ZipFile(z).namelist() == ["results.json"]


def test_read_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_results(tmp_path / "missing.json")
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    with pytest.raises(InputError, match="must be a JSON list"):
        read_results(p)


def test_rle_counts_ok_agrees_with_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = (rng.random((9, 11)) < rng.random()).astype(np.uint8)
        rle = encode_mask(m)
        assert rle_counts_ok(rle["counts"], 99) == (True, "")
        assert int(rle_area([rle])[0]) == int(m.sum())
        assert not rle_counts_ok(rle["counts"], 98)[0]


def test_check_results_lenient_quirks() -> None:
    videos = {1: (2, 5, 7)}
    e = _entries()
    e[1]["segmentations"][1] = {"size": [5, 7], "counts": e[0]["segmentations"][0]["counts"]}
    e[0]["segmentations"].append(None)  # 3 entries for a 2-frame video
    strict = check_results(e, videos, {1, 2})
    assert len(strict.problems) == 1
    lenient = check_results(e, videos, {1, 2}, lenient=True)
    assert lenient.problems == [] and lenient.quirks == [0]
