"""Malformed result files: each defect gets its own message and exit status 2 through the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.errors import InputError
from benchmark.masks import encode_mask

H, W, LEN = 6, 8, 3


def _mask() -> dict[str, Any]:
    m = np.zeros((H, W), dtype=np.uint8)
    m[1:4, 2:5] = 1
    return encode_mask(m)


GOOD = {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [_mask(), None, _mask()]}
GT = {
    "videos": [{"id": 1, "height": H, "width": W, "length": LEN, "file_names": [f"v/{i}.jpg" for i in range(LEN)]}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                     "segmentations": [_mask(), _mask(), None], "areas": [9, 9, None], "bboxes": [None] * 3}],
}  # fmt: skip


def entry(**changes: Any) -> dict[str, Any]:
    e = copy.deepcopy(GOOD)
    for k, v in changes.items():
        if v is _DROP:
            del e[k]
        else:
            e[k] = v
    return e


_DROP = object()
other_size = encode_mask(np.ones((H + 1, W), dtype=np.uint8))

# name -> (file text, expected message fragment, also an error for `evaluate`)
CORPUS: dict[str, tuple[str, str, bool]] = {
    "not_json": ("[{video_id: 1}]", "not valid JSON", True),
    "not_a_list": (json.dumps({"results": [GOOD]}), "must be a JSON list", True),
    "entry_not_object": (json.dumps([GOOD, 5]), "results[1]: must be an object, not int", True),
    "missing_key": (json.dumps([entry(score=_DROP)]), "missing key(s) 'score'", True),
    "video_id_wrong_type": (json.dumps([entry(video_id="1")]), "video_id must be an integer, got str", True),
    "score_wrong_type": (json.dumps([entry(score="high")]), "score must be a number, got str", True),
    "score_nan": (json.dumps([entry(score=float("nan"))]), "score must be finite, got nan", True),
    "score_out_of_range": (json.dumps([entry(score=1.5)]), "score 1.5 is outside [0, 1]", True),
    "wrong_length": (json.dumps([entry(segmentations=[_mask()])]), "segmentations has 1 entries, the video has 3 frames", True),
    "wrong_mask_size": (json.dumps([entry(segmentations=[_mask(), other_size, None])]),
                        "segmentations[1]: mask size 7x8 differs from the video's 6x8", True),
    "unknown_video": (json.dumps([GOOD, entry(video_id=99)]), "results[1] (video 99, category 1): video 99 is not a video", True),
    "unknown_category": (json.dumps([entry(category_id=77)]), "category 77 is not a category of the ground truth", False),
    "bad_rle_chars": (json.dumps([entry(segmentations=[{"size": [H, W], "counts": "a b~"}, None, None])]),
                      "has the character ' '", True),
    "truncated_rle": (json.dumps([entry(segmentations=[{"size": [H, W], "counts": "0P"}, None, None])]),
                      "ends in the middle of a number", True),
    "rle_wrong_total": (json.dumps([entry(segmentations=[{"size": [H, W], "counts": "14"}, None, None])]),
                        "describes 5 pixels, the mask has 48", True),
    # pycocotools never returns on this one (a negative run is a ~4e9 unsigned run to it)
    "rle_negative_run": (json.dumps([entry(segmentations=[{"size": [H, W], "counts": "0O"}, None, None])]),
                         "decodes to a negative run length", True),
    "uncompressed_rle": (json.dumps([entry(segmentations=[{"size": [H, W], "counts": [48]}, None, None])]),
                         "is a list (uncompressed RLE)", True),
    "polygon": (json.dumps([entry(segmentations=[[[1, 1, 3, 1, 3, 3]], None, None])]), "not a polygon list", True),
    "segmentations_not_list": (json.dumps([entry(segmentations="abc")]), "segmentations must be a list", True),
}  # fmt: skip


def _files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    res = tmp_path / f"{name}.json"
    res.write_text(CORPUS[name][0])
    return gt, res


def test_corpus_is_valid_apart_from_its_defect(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    res = tmp_path / "ok.json"
    res.write_text(json.dumps([GOOD]))
    assert main(["check-results", str(res), "--gt", str(gt)]) == 0
    assert main(["evaluate", "--gt", str(gt), "--results", str(res)]) == 0


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_check_results_reports_defect(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, res = _files(tmp_path, name)
    assert main(["check-results", str(res), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert CORPUS[name][1] in err, err
    assert str(res) in err  # names the file


@pytest.mark.parametrize("name", sorted(n for n, v in CORPUS.items() if v[2]))
def test_evaluate_rejects_defect(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, res = _files(tmp_path, name)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--out", str(out)]) == 2
    assert CORPUS[name][1] in capsys.readouterr().err
    assert not out.exists()


def test_unknown_category_is_dropped_by_evaluate(tmp_path: Path) -> None:
    gt, res = _files(tmp_path, "unknown_category")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["stats"]["AP"] == 0.0  # the GT exists, the only prediction is dropped
    assert any("categories not in the GT" in w for w in m["warnings"])


def test_all_offending_entries_listed(tmp_path: Path) -> None:
    from benchmark.data.results import check_results, gt_index

    videos, cats = gt_index(GT)
    entries = [GOOD, entry(score=2.0), GOOD, entry(video_id=5), entry(segmentations=[None])]
    res = check_results(entries, videos, cats, file="r.json")
    where = [p.entry for p in res.problems]
    assert where == [
        "results[1] (video 1, category 1)",
        "results[3] (video 5, category 1)",
        "results[4] (video 1, category 1)",
    ]
    with pytest.raises(InputError) as ei:
        from benchmark.evaluation.evaluate import evaluate

        evaluate(GT, entries)
    assert str(ei.value).count("results[") == 3


def test_lenient_drops_unknown_video_and_accepts_quirks() -> None:
    from benchmark.evaluation.evaluate import evaluate

    entries = [GOOD, entry(video_id=5), entry(segmentations=[_mask()], score=0.5)]
    r = evaluate(GT, entries, lenient=True)
    assert any("not in the GT" in w for w in r.warnings)
    assert r.meta["n_predictions_evaluated"] == 2
    # NaN scores stay an error even when lenient (the official sort would be meaningless)
    with pytest.raises(InputError, match="finite"):
        evaluate(GT, [entry(score=float("inf"))], lenient=True)


def test_bad_gt_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = tmp_path / "gt.json"
    bad = copy.deepcopy(GT)
    bad["annotations"][0]["video_id"] = 42
    gt.write_text(json.dumps(bad))
    res = tmp_path / "r.json"
    res.write_text(json.dumps([GOOD]))
    assert main(["evaluate", "--gt", str(gt), "--results", str(res)]) == 2
    assert "annotations[0]" in capsys.readouterr().err


# RLE defects on which pycocotools hangs or reads out of bounds: errors in lenient mode too
RLE_DEFECTS = ("bad_rle_chars", "truncated_rle", "rle_wrong_total", "rle_negative_run")


@pytest.mark.parametrize("name", RLE_DEFECTS)
def test_evaluate_lenient_rejects_rle_defect(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt, res = _files(tmp_path, name)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--lenient", "--gt", str(gt), "--results", str(res), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert CORPUS[name][1] in err
    assert "results[0] (video 1, category 1), segmentations[0]" in err
    assert str(res) in err
    assert not out.exists()


def test_rle_wrong_total_rejected_even_where_no_gt_meets_it() -> None:
    from benchmark.evaluation.evaluate import evaluate

    # frame 2: the GT is absent there, pycocotools would only sum its runs; still rejected
    bad = entry(segmentations=[_mask(), None, {"size": [H, W], "counts": "14"}])
    for lenient in (False, True):
        with pytest.raises(InputError, match=r"segmentations\[2\]: RLE 'counts' describes 5 pixels"):
            evaluate(GT, [bad], lenient=lenient)


def test_over_60_bit_number_is_rejected() -> None:
    from benchmark.data.results import rle_counts_ok
    from benchmark.evaluation.evaluate import evaluate

    # runs 1, 1, 46, then -1 written in 13 groups (a redundant sign extension): Python's decoder
    # gets 48 pixels, the C scan refuses numbers of more than 60 bits (pycocotools shifts by >= 32)
    counts = "11^1" + "o" * 12 + "O"
    assert rle_counts_ok(counts, H * W) == (True, "")
    bad = entry(segmentations=[{"size": [H, W], "counts": counts}, None, None])
    for lenient in (False, True):
        with pytest.raises(InputError, match="a number of more than 60 bits"):
            evaluate(GT, [bad], lenient=lenient)


@pytest.mark.parametrize("lenient", [False, True])
def test_negative_run_exits_2_quickly(lenient: bool, tmp_path: Path) -> None:
    """The file that made pycocotools spin forever: a clear error, in a subprocess with a timeout."""
    gt, res = _files(tmp_path, "rle_negative_run")
    out = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "benchmark", "-q", "evaluate", "--gt", str(gt), "--results", str(res)]
    cmd += ["--out", str(out)] + (["--lenient"] if lenient else [])
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert time.monotonic() - t0 < 60
    assert "results[0] (video 1, category 1), segmentations[0]" in p.stderr
    assert "decodes to a negative run length" in p.stderr
    assert str(res) in p.stderr
    assert not out.exists()
