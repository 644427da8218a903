"""ToyVIS: determinism, YouTube-VIS structure, the scene properties it promises, the CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from benchmark.data.toyvis import GENERATOR_VERSION, ToyVISSummary, generate_toyvis, parse_frames, parse_size
from benchmark.data.ytvis import YTVISDataset, check_frames_on_disk, validate_annotation_dict
from benchmark.errors import InputError, UsageError
from benchmark.masks import as_pycoco, decode_rle, rle_area

SMALL: dict[str, Any] = {"num_train_videos": 3, "num_valid_videos": 2, "frames": (6, 9), "size": (48, 80)}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToyVISSummary]:
    """A dataset big enough that every promised event happens (seed fixed)."""
    root = tmp_path_factory.mktemp("toyvis")
    summary = generate_toyvis(
        root, num_train_videos=12, num_valid_videos=4, frames=(10, 16), size=(64, 96), seed=7, progress=False
    )
    return root, summary


def _load(root: Path, split: str) -> dict[str, Any]:
    return json.loads((root / "annotations" / f"{split}.json").read_text())


# ---- determinism ------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    generate_toyvis(tmp_path / "a", seed=3, progress=False, **SMALL)
    generate_toyvis(tmp_path / "b", seed=3, progress=False, **SMALL)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha == hb
    assert sum(k.endswith(".jpg") for k in ha) == sum(
        v["length"] for s in ("train", "valid") for v in _load(tmp_path / "a", s)["videos"]
    )
    assert {"toyvis.json", "README.md", "annotations/train.json", "annotations/valid.json"} <= set(ha)


def test_different_seed_differs(tmp_path: Path) -> None:
    generate_toyvis(tmp_path / "a", seed=3, progress=False, **SMALL)
    generate_toyvis(tmp_path / "b", seed=4, progress=False, **SMALL)
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert ha["annotations/train.json"] != hb["annotations/train.json"]
    common = [k for k in ha if k.endswith(".jpg") and k in hb]
    assert common and all(ha[k] != hb[k] for k in common)


def test_more_videos_keep_the_earlier_ones(tmp_path: Path) -> None:
    args = {**SMALL, "num_valid_videos": 1}
    generate_toyvis(tmp_path / "a", seed=5, progress=False, **{**args, "num_train_videos": 2})
    generate_toyvis(tmp_path / "b", seed=5, progress=False, **{**args, "num_train_videos": 4})
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    frames = [k for k in ha if k.endswith(".jpg")]
    assert frames and all(ha[k] == hb[k] for k in frames)
    a, b = _load(tmp_path / "a", "train"), _load(tmp_path / "b", "train")
    assert b["videos"][:2] == a["videos"]
    assert [x for x in b["annotations"] if x["video_id"] <= 2] == a["annotations"]


# ---- structure --------------------------------------------------------------------------------
def test_layout_and_metadata(toy: tuple[Path, ToyVISSummary]) -> None:
    root, summary = toy
    meta = json.loads((root / "toyvis.json").read_text())
    assert meta["version"] == GENERATOR_VERSION == summary.version
    assert meta["params"] == {
        "num_train_videos": 12,
        "num_valid_videos": 4,
        "frames": [10, 16],
        "size": [64, 96],
        "seed": 7,
        "jpeg_quality": 90,
    }
    readme = (root / "README.md").read_text()
    assert f"version {GENERATOR_VERSION}" in readme and "--seed 7" in readme and "--size 64x96" in readme
    for split, n in (("train", 12), ("valid", 4)):
        data = _load(root, split)
        assert set(data) == {"info", "licenses", "videos", "categories", "annotations"}
        assert [v["id"] for v in data["videos"]] == list(range(1, n + 1))
        assert [c["id"] for c in data["categories"]] == list(range(1, len(data["categories"]) + 1))
        assert 5 <= len(data["categories"]) <= 8
        assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
        assert (
            meta["splits"][split]["annotation_sha256"]
            == hashlib.sha256((root / "annotations" / f"{split}.json").read_bytes()).hexdigest()
        )
        lengths = {v["length"] for v in data["videos"]}
        assert min(lengths) >= 10 and max(lengths) <= 16
        for v in data["videos"]:
            vdir = root / split / "JPEGImages" / v["file_names"][0].split("/")[0]
            assert sorted(p.name for p in vdir.iterdir()) == [Path(f).name for f in v["file_names"]]
            assert len(v["file_names"]) == v["length"]
            with Image.open(root / split / "JPEGImages" / v["file_names"][-1]) as im:
                assert im.size == (v["width"], v["height"]) == (96, 64) and im.mode == "RGB"
    assert len(lengths) > 1 or len(_load(root, "train")["videos"]) == 1


def test_annotations_match_masks(toy: tuple[Path, ToyVISSummary]) -> None:
    root, _ = toy
    for split in ("train", "valid"):
        data = _load(root, split)
        videos = {v["id"]: v for v in data["videos"]}
        for a in data["annotations"]:
            v = videos[a["video_id"]]
            assert a["iscrowd"] == 0 and a["category_id"] in range(1, len(data["categories"]) + 1)
            for key in ("segmentations", "areas", "bboxes"):
                assert len(a[key]) == v["length"]
            assert any(s is not None for s in a["segmentations"])
            for seg, area, box in zip(a["segmentations"], a["areas"], a["bboxes"], strict=True):
                assert (seg is None) == (area is None) == (box is None)
                if seg is None:
                    continue
                assert seg["size"] == [v["height"], v["width"]] and isinstance(seg["counts"], str)
                m = decode_rle(seg)
                assert area == int(m.sum()) == int(rle_area([seg])[0]) > 0
                ys, xs = np.nonzero(m)
                assert box == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert box == list(mask_utils.toBbox(as_pycoco(seg)))


def test_visible_masks_do_not_overlap(toy: tuple[Path, ToyVISSummary]) -> None:
    root, _ = toy
    data = _load(root, "train")
    for v in data["videos"]:
        anns = [a for a in data["annotations"] if a["video_id"] == v["id"]]
        for t in range(v["length"]):
            total = np.zeros((v["height"], v["width"]), np.int32)
            for a in anns:
                if a["segmentations"][t] is not None:
                    total += decode_rle(a["segmentations"][t])
            assert total.max() <= 1, f"video {v['id']} frame {t}: visible masks overlap"


def _touches_border(seg: dict[str, Any]) -> bool:
    m = decode_rle(seg)
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def test_scene_events_happen(toy: tuple[Path, ToyVISSummary]) -> None:
    """Occlusions, absent frames, entering and leaving objects, same-category instances."""
    root, summary = toy
    data = _load(root, "train")
    absent = entering = leaving = occluding = same_cat = 0
    for v in data["videos"]:
        anns = [a for a in data["annotations"] if a["video_id"] == v["id"]]
        cats = [a["category_id"] for a in anns]
        same_cat += len(set(cats)) < len(cats)
        for a in anns:
            segs = a["segmentations"]
            absent += sum(s is None for s in segs)
            for t in range(1, len(segs)):
                if segs[t - 1] is None and segs[t] is not None and _touches_border(segs[t]):
                    entering += 1
                if segs[t - 1] is not None and segs[t] is None and _touches_border(segs[t - 1]):
                    leaving += 1
        for t in range(v["length"]):
            boxes = [a["bboxes"][t] for a in anns if a["bboxes"][t] is not None]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    (x1, y1, w1, h1), (x2, y2, w2, h2) = boxes[i], boxes[j]
                    occluding += x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1
    assert absent > 0 and entering > 0 and leaving > 0 and occluding > 0 and same_cat > 0
    stats = summary.splits["train"].stats
    for key in ("occluded", "clipped", "absent", "outside", "enter", "leave", "crossing_pairs"):
        assert stats[key] > 0, key
    assert stats["same_category_videos"] == same_cat


def test_frames_are_textured_not_flat(toy: tuple[Path, ToyVISSummary]) -> None:
    root, _ = toy
    data = _load(root, "train")
    v = data["videos"][0]
    img = np.asarray(Image.open(root / "train" / "JPEGImages" / v["file_names"][0]), dtype=np.float32)
    bg = np.ones(img.shape[:2], bool)
    for a in data["annotations"]:
        if a["video_id"] == v["id"] and a["segmentations"][0] is not None:
            m = decode_rle(a["segmentations"][0]).astype(bool)
            bg &= ~m
            assert img[m].std(axis=0).max() > 10  # a texture, not one colour
    assert img[bg].std(axis=0).min() > 5


def test_loads_with_the_ytvis_reader(toy: tuple[Path, ToyVISSummary]) -> None:
    root, summary = toy
    for split in ("train", "valid"):
        ann = root / "annotations" / f"{split}.json"
        validate_annotation_dict(json.loads(ann.read_text()), ann)
        ds = YTVISDataset.load(ann, root / split / "JPEGImages", check_frames=True)
        check_frames_on_disk(ds, decode=True)
        assert ds.has_annotations and len(ds) == summary.splits[split].videos
        assert ds.num_frames() == summary.splits[split].frames
        assert len(ds.tracks or []) == summary.splits[split].tracks


# ---- arguments and CLI ------------------------------------------------------------------------
def test_parse_size_and_frames() -> None:
    assert parse_size("96x160") == (96, 160) and parse_size(" 64 X 64 ") == (64, 64)
    assert parse_frames("16") == (16, 16) and parse_frames("12-24") == (12, 24)
    for bad in ("96", "96x", "x160", "96*160", "-96x160", "16x16", "96x31"):
        with pytest.raises(UsageError):
            parse_size(bad)
    for bad in ("0", "24-12", "a", "1.5", "-3"):
        with pytest.raises(UsageError):
            parse_frames(bad)


def test_cli_writes_dataset_and_replaces_an_earlier_one(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    out = tmp_path / "toy"
    rc, _, err = cli(
        "toyvis",
        "--out",
        out,
        "--videos",
        "3",
        "--valid-videos",
        "1",
        "--frames",
        "5",
        "--size",
        "40x56",
        "--seed",
        "1",
    )
    assert rc == 0, err
    assert len(list((out / "train" / "JPEGImages").iterdir())) == 3
    assert json.loads((out / "toyvis.json").read_text())["params"]["frames"] == [5, 5]
    rc, _, err = cli(
        "toyvis", "--out", out, "--videos", "1", "--valid-videos", "0", "--frames", "5", "--size", "40x56"
    )
    assert rc == 0, err
    assert [p.name for p in (out / "train" / "JPEGImages").iterdir()] == ["train_0000"]
    assert _load(out, "valid")["videos"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "96by160"], "HEIGHTxWIDTH"),
        (["--size", "16x160"], "at least 32x32"),
        (["--frames", "0"], "at least 1"),
        (["--frames", "9-3"], "empty"),
        (["--videos", "0"], "--videos must be at least 1"),
        (["--valid-videos", "-1"], "--valid-videos"),
        (["--seed", "-2"], "--seed"),
    ],
)
def test_cli_rejects_bad_arguments(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]], args: list[str], message: str
) -> None:
    rc, _, err = cli("toyvis", "--out", tmp_path / "toy", *args)
    assert rc == 2 and message in err
    assert not (tmp_path / "toy").exists()


def test_cli_refuses_unsafe_output(tmp_path: Path, cli: Callable[..., tuple[int, str, str]]) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    rc, _, err = cli("toyvis", "--out", afile)
    assert rc == 2 and "not a directory" in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    rc, _, err = cli("toyvis", "--out", other)
    assert rc == 2 and "not empty" in err and (other / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError):
        generate_toyvis(other, progress=False, **SMALL)


def test_rerun_after_an_interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.data.toyvis as toyvis

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "toy"
    monkeypatch.setattr(toyvis, "_readme", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_toyvis(out, progress=False, **SMALL)
    assert (out / toyvis.INCOMPLETE_MARKER).is_file() and not (out / "toyvis.json").exists()
    monkeypatch.undo()
    generate_toyvis(out, progress=False, **SMALL)
    assert (out / "toyvis.json").is_file() and not (out / toyvis.INCOMPLETE_MARKER).exists()
