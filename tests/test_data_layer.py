"""Data layer: dataset access, lazy frames, catalog, local splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmark.data.catalog import get_dataset, list_datasets
from benchmark.data.frames import ImageFiles, VideoFile, VideoSample
from benchmark.data.split import RULE, choose_valid_videos, split_annotation_file
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError


def test_dataset_access(tiny_dataset: Path) -> None:
    ds = YTVISDataset.load(tiny_dataset, tiny_dataset.parent / "JPEGImages")
    assert ds.has_annotations and len(ds) == 2 and ds.num_frames() == 8
    assert [t.id for t in ds.tracks_of(1)] == [1, 2] and [t.id for t in ds.tracks_of(2)] == [3]
    assert ds.videos[1].name == "v0"
    assert ds.sha256 is not None and len(ds.sha256) == 64
    sample = ds.video_sample(2)
    assert (sample.video_id, sample.height, sample.width, sample.length) == (2, 24, 32, 4)
    frames = list(sample.frames)
    assert len(frames) == 4 and frames[0].dtype == np.uint8 and frames[0].shape == (24, 32, 3)


def test_dataset_without_annotations(tiny_dataset: Path) -> None:
    gt = json.loads(tiny_dataset.read_text())
    gt["annotations"] = None
    ds = YTVISDataset.from_dict(gt)
    assert not ds.has_annotations and ds.tracks_of(1) == []
    del gt["annotations"]
    assert not YTVISDataset.from_dict(gt).has_annotations


def test_polygon_and_uncompressed_gt_accepted(tiny_dataset: Path) -> None:
    gt = json.loads(tiny_dataset.read_text())
    gt["annotations"][0]["segmentations"][0] = [[1, 1, 10, 1, 10, 10, 1, 10]]
    gt["annotations"][0]["segmentations"][1] = {"size": [24, 32], "counts": [100, 668]}
    YTVISDataset.from_dict(gt)


def test_image_files_from_dir_and_errors(tmp_path: Path) -> None:
    for i in range(3):
        Image.new("RGB", (8, 6), (i, 0, 0)).save(tmp_path / f"{i:03d}.png")
    src = ImageFiles.from_dir(tmp_path)
    assert len(src) == 3 and src[-1][0, 0, 0] == 2
    with pytest.raises(IndexError):
        src[3]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        ImageFiles.from_dir(tmp_path / "empty")


def test_video_file_source(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.full((24, 32, 3), (0, 0, 40 * i), np.uint8))  # BGR: red grows
    writer.release()
    sample = VideoSample.from_path(path, video_id=7)
    assert (sample.video_id, sample.length, sample.height, sample.width) == (7, 6, 24, 32)
    reds = [int(f[..., 0].mean()) for f in sample.frames]  # RGB order
    assert all(abs(r - 40 * i) < 8 for i, r in enumerate(reds))
    assert abs(int(sample.frames[2][..., 0].mean()) - 80) < 8  # random access re-seeks
    with pytest.raises(InputError, match="does not exist"):
        VideoFile(tmp_path / "missing.mp4")


def test_video_sample_from_unsupported(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("x")
    with pytest.raises(InputError, match="unsupported video input"):
        VideoSample.from_path(p)


def test_catalog_names_and_layout(tmp_path: Path) -> None:
    names = list_datasets()
    assert {"ytvis2019_valid", "ytvis2021_train", "ovis_valid_sub", "toyvis_valid"} <= set(names)
    spec = get_dataset("ytvis2019_valid", tmp_path)
    assert spec.ann_file == tmp_path / "youtubevis/annotations/valid.json" and not spec.has_annotations
    assert "annotation file missing" in spec.status()
    (tmp_path / "youtubevis/annotations").mkdir(parents=True)
    spec.ann_file.write_text("{}")
    assert "frames missing" in spec.status()
    (tmp_path / "youtubevis/valid").mkdir()  # CrossVIS's layout: frames directly under valid/
    assert spec.image_root == tmp_path / "youtubevis/valid" and spec.status() == "present"
    (tmp_path / "youtubevis/valid/JPEGImages").mkdir()  # the archive's layout wins when present
    assert spec.image_root == tmp_path / "youtubevis/valid/JPEGImages"
    assert get_dataset("ovis_valid_sub", tmp_path).ann_file == tmp_path / "splits/ovis/valid_sub.json"
    with pytest.raises(InputError, match="unknown dataset"):
        get_dataset("kitti_train")
    with pytest.raises(InputError, match="not available"):
        get_dataset("ovis_train", tmp_path).load()


def _many_videos(n: int, cats: int = 4) -> dict[str, Any]:
    from benchmark.masks import encode_mask

    rle = encode_mask(np.ones((4, 4), np.uint8))
    videos = [
        {"id": i + 1, "width": 4, "height": 4, "length": 2, "file_names": [f"v{i}/0.jpg", f"v{i}/1.jpg"]}
        for i in range(n)
    ]
    anns = [
        {
            "id": i + 1,
            "video_id": i + 1,
            "category_id": 1 + (i % cats),
            "iscrowd": 0,
            "segmentations": [rle, None],
            "areas": [16, None],
        }
        for i in range(n)
    ]
    return {
        "videos": videos,
        "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(cats)],
        "annotations": anns,
    }


def test_split_is_deterministic_and_stratified(tmp_path: Path) -> None:
    gt = _many_videos(80)
    ds = YTVISDataset.from_dict(gt)
    valid = choose_valid_videos(ds, 0.1, seed=0)
    assert valid == choose_valid_videos(ds, 0.1, seed=0)
    assert valid != choose_valid_videos(ds, 0.1, seed=1)
    assert len(valid) == 8
    cats = [gt["annotations"][v - 1]["category_id"] for v in valid]
    assert sorted(cats) == [1, 1, 2, 2, 3, 3, 4, 4]  # 20 videos per category -> 2 each


def test_split_files_and_record(tmp_path: Path, cli: Any) -> None:
    src = tmp_path / "train.json"
    src.write_text(json.dumps(_many_videos(30)))
    rc, out, _ = cli("split", "--train", src, "--out", tmp_path / "s", "--record", tmp_path / "rec.json")
    assert rc == 0 and "valid_sub: 3 videos" in out
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["rule"] == RULE and len(rec["source"]["sha256"]) == 64
    sub = json.loads((tmp_path / "s/valid_sub.json").read_text())
    assert sorted(v["id"] for v in sub["videos"]) == rec["valid_sub"]
    assert all(a["video_id"] in rec["valid_sub"] for a in sub["annotations"])
    train = json.loads((tmp_path / "s/train_sub.json").read_text())
    assert len(train["videos"]) + len(sub["videos"]) == 30
    # A recorded split is reproduced as is, even with another seed on the command line ...
    res = split_annotation_file(src, tmp_path / "s2", seed=5, record=tmp_path / "rec.json")
    assert res["valid_sub"] == rec["valid_sub"]
    # ... and refused for another source file.
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_many_videos(31)))
    rc, _, err = cli("split", "--train", other, "--out", tmp_path / "s3", "--record", tmp_path / "rec.json")
    assert rc == 2 and "made from a different file" in err


def test_split_needs_annotations(tiny_dataset: Path, cli: Any) -> None:
    gt = json.loads(tiny_dataset.read_text())
    gt["annotations"] = None
    tiny_dataset.write_text(json.dumps(gt))
    rc, _, err = cli("split", "--train", tiny_dataset, "--out", tiny_dataset.parent / "s")
    assert rc == 2 and "only a train file with GT can be split" in err
