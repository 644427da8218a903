"""The bad-input corpus of the data layer: every defect gives its own message and exit status 2."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmark.errors import InputError

Mutator = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutator:
    """A mutation setting ``gt[a][i][k] = value`` for a dotted path like ``videos.0.width``."""

    def mutate(gt: dict[str, Any]) -> Any:
        *head, last = path.split(".")
        obj: Any = gt
        for k in head:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        if value is _DELETE:
            del obj[last]
        elif isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
        return gt

    return mutate


_DELETE = object()


def _dup(key: str) -> Mutator:
    def mutate(gt: dict[str, Any]) -> Any:
        gt[key][1]["id"] = gt[key][0]["id"]
        return gt

    return mutate


def _truncate(key: str) -> Mutator:
    def mutate(gt: dict[str, Any]) -> Any:
        gt["annotations"][0][key] = gt["annotations"][0][key][:-1]
        return gt

    return mutate


GT_DEFECTS: dict[str, tuple[Mutator, str]] = {
    "top_level_list": (lambda gt: [gt], "top level must be an object"),
    "missing_videos": (_set("videos", _DELETE), "missing top-level key 'videos'"),
    "annotations_not_list": (_set("annotations", {"a": 1}), "annotations: must be a list or null"),
    "video_missing_file_names": (
        _set("videos.0.file_names", _DELETE),
        "videos[0] (id 1): missing key(s): file_names",
    ),
    "duplicate_video_id": (_dup("videos"), "duplicate video id 1"),
    "bad_width": (_set("videos.0.width", 0), "'width' must be a positive integer"),
    "dotdot_file_name": (
        _set("videos.0.file_names.1", "../etc/passwd"),
        "contains '..' (escapes the image root)",
    ),
    "absolute_file_name": (_set("videos.0.file_names.1", "/etc/passwd"), "is an absolute path"),
    "length_mismatch": (_set("videos.0.length", 7), "'length' is 7 but there are 4 file_names"),
    "duplicate_category": (_dup("categories"), "duplicate category id"),
    "unknown_video": (_set("annotations.0.video_id", 99), "annotations[0] (id 1): unknown video_id 99"),
    "unknown_category": (_set("annotations.0.category_id", 42), "unknown category_id 42"),
    "duplicate_annotation_id": (_dup("annotations"), "duplicate annotation id 1"),
    "short_segmentations": (
        _truncate("segmentations"),
        "'segmentations' has 3 entries but video 1 has 4 frames",
    ),
    "short_areas": (_truncate("areas"), "'areas' has 3 entries but video 1 has 4 frames"),
    "rle_size": (
        _set("annotations.0.segmentations.0.size", [10, 10]),
        "RLE size [10, 10] differs from the video's 24x32",
    ),
    "segmentation_type": (
        _set("annotations.0.segmentations.1", 5),
        "segmentation must be an RLE dict, a polygon list or null",
    ),
    "odd_polygon": (
        _set("annotations.0.segmentations.1", [[1, 2, 3, 4, 5, 6, 7]]),
        "polygon 0 has 7 coordinates",
    ),
    "bad_uncompressed_rle": (
        _set("annotations.0.segmentations.1", {"size": [24, 32], "counts": [5, 6]}),
        "uncompressed RLE counts sum to 11",
    ),
    "bad_occlusion": (
        _set("annotations.0.occlusion", ["heavy", None, None, None]),
        "occlusion[0] must be one of",
    ),
    "rle_negative_run": (
        _set("annotations.0.segmentations.1.counts", "0O"),
        "segmentations[1]: RLE 'counts' decodes to a negative run",
    ),
    "rle_bad_char": (
        _set("annotations.0.segmentations.1.counts", "ab~"),
        "RLE 'counts' has the character '~'",
    ),
    "rle_wrong_total": (_set("annotations.0.segmentations.1.counts", "52"), "RLE 'counts' describes"),
    "iscrowd_2": (_set("annotations.0.iscrowd", 2), "'iscrowd' must be 0 or 1"),
    "missing_areas": (_set("annotations.0.areas", _DELETE), "missing key(s): areas"),
    "negative_area": (_set("annotations.0.areas.0", -3), "areas[0] must be a non-negative number or null"),
    "bad_bbox": (_set("annotations.0.bboxes.0", [1, 2, 3]), "bboxes[0] must be [x, y, w, h] or null"),
}


@pytest.mark.parametrize("name", sorted(GT_DEFECTS))
def test_gt_defect_is_reported(name: str, tiny_dataset: Path, cli: Any) -> None:
    mutate, expected = GT_DEFECTS[name]
    gt = json.loads(tiny_dataset.read_text())
    bad = tiny_dataset.with_name(f"bad_{name}.json")
    bad.write_text(json.dumps(mutate(copy.deepcopy(gt))))
    rc, out, err = cli("validate", bad)
    assert rc == 2, (out, err)
    assert expected in err
    assert str(bad) in err  # the message names the file
    assert "Traceback" not in err


def test_all_problems_listed_at_once(tiny_dataset: Path) -> None:
    from benchmark.data.ytvis import validate_annotation_dict

    gt = json.loads(tiny_dataset.read_text())
    gt["videos"][0]["width"] = -1
    gt["videos"][1]["file_names"][0] = "../x.jpg"
    with pytest.raises(InputError) as ei:
        validate_annotation_dict(gt, "gt.json")
    assert len(ei.value.problems) == 2


def test_not_json(tmp_path: Path, cli: Any) -> None:
    bad = tmp_path / "gt.json"
    bad.write_text('{"videos": [')
    rc, _, err = cli("validate", bad)
    assert rc == 2 and "not valid JSON" in err and "line 1" in err


def test_missing_file(tmp_path: Path, cli: Any) -> None:
    rc, _, err = cli("validate", tmp_path / "nope.json")
    assert rc == 2 and "annotation file does not exist" in err


def test_unknown_category_allowed_for_official_evaluation(tiny_dataset: Path) -> None:
    from benchmark.data.ytvis import validate_annotation_dict

    gt = json.loads(tiny_dataset.read_text())
    gt["annotations"][0]["category_id"] = 42
    validate_annotation_dict(gt, allow_unknown_categories=True)  # the official evaluator drops them
    with pytest.raises(InputError, match="unknown category_id 42"):
        validate_annotation_dict(gt)


# ---- frame folders ------------------------------------------------------------------------------
def test_frame_missing_on_disk(tiny_dataset: Path, cli: Any) -> None:
    (tiny_dataset.parent / "JPEGImages/v1/00002.jpg").unlink()
    rc, _, err = cli("validate", tiny_dataset, "--frames-root", tiny_dataset.parent / "JPEGImages")
    assert rc == 2 and "videos[1] (id 2): frame file_names[2] missing on disk" in err


def test_frame_unreadable(tiny_dataset: Path, cli: Any) -> None:
    (tiny_dataset.parent / "JPEGImages/v0/00001.jpg").write_bytes(b"not a jpeg at all")
    rc, _, err = cli(
        "validate", tiny_dataset, "--frames-root", tiny_dataset.parent / "JPEGImages", "--decode"
    )
    assert rc == 2 and "frame file_names[1] is not a readable image" in err


def test_frame_wrong_size(tiny_dataset: Path, cli: Any) -> None:
    from PIL import Image

    Image.new("RGB", (10, 10)).save(tiny_dataset.parent / "JPEGImages/v0/00003.jpg")
    rc, _, err = cli(
        "validate", tiny_dataset, "--frames-root", tiny_dataset.parent / "JPEGImages", "--decode"
    )
    assert rc == 2 and "frame file_names[3] is 10x10, the video says 24x32" in err


def test_frames_root_not_a_directory(tiny_dataset: Path, cli: Any) -> None:
    rc, _, err = cli("validate", tiny_dataset, "--frames-root", tiny_dataset.parent / "nowhere")
    assert rc == 2 and "is not a directory" in err


def test_lazy_reader_reports_bad_frame_with_video(tiny_dataset: Path) -> None:
    from benchmark.data.ytvis import YTVISDataset

    (tiny_dataset.parent / "JPEGImages/v0/00001.jpg").write_bytes(b"garbage")
    ds = YTVISDataset.load(tiny_dataset, tiny_dataset.parent / "JPEGImages")
    frames = ds.video_sample(1).frames
    assert frames[0].shape == (24, 32, 3)
    with pytest.raises(InputError, match=r"video 1 \(v0\), frame 1: frame is not a readable image"):
        frames.read(1)


def test_valid_dataset_passes(tiny_dataset: Path, cli: Any) -> None:
    rc, out, _ = cli(
        "validate", tiny_dataset, "--frames-root", tiny_dataset.parent / "JPEGImages", "--decode"
    )
    assert rc == 0 and "OK: 2 videos, 8 frames, 2 categories, 3 tracks" in out
