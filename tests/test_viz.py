"""``visrepro show`` and the drawing API, on a tiny dataset built here (32x48 JPEG frames)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageSequence

from benchmark.cli import main
from benchmark.data.ytvis import YTVISDataset
from benchmark.masks import encode_mask
from benchmark.viz import PALETTE, PANEL_GAP, Overlay, Panel, color_for, draw_frame, render_video

H, W, T = 32, 48, 5
ALPHA = 0.5


def _masks() -> tuple[np.ndarray, np.ndarray]:
    """Two objects: A in the bottom-right block, B in the bottom-left block (no overlap)."""
    a = np.zeros((H, W), dtype=bool)
    a[10:, 24:] = True
    b = np.zeros((H, W), dtype=bool)
    b[10:, :20] = True
    return a, b


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Two videos: ``vid1`` (T frames, GT tracks A (id 7) and B (id 8)) and ``vid2`` (3 frames, no tracks)."""
    root = tmp_path / "JPEGImages"
    rng = np.random.default_rng(0)
    a, b = _masks()
    videos: list[dict[str, Any]] = []
    for vid, (name, n) in enumerate([("vid1", T), ("vid2", 3)], start=1):
        (root / name).mkdir(parents=True)
        names = []
        for t in range(n):
            frame = rng.integers(
                40, 200, (H, W, 3), dtype=np.uint8
            )  # distinct frames (GIFs merge equal ones)
            Image.fromarray(frame).save(root / name / f"{t:05d}.jpg", quality=95)
            names.append(f"{name}/{t:05d}.jpg")
        videos.append({"id": vid, "width": W, "height": H, "length": n, "file_names": names})
    anns = [
        {
            "id": 7,
            "video_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "segmentations": [encode_mask(a)] * T,
            "areas": [None] * T,
        },
        {
            "id": 8,
            "video_id": 1,
            "category_id": 2,
            "iscrowd": 0,
            "segmentations": [None] * T,
            "areas": [None] * T,
        },
    ]
    gt = {
        "videos": videos,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
        "annotations": anns,
    }
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    res = [
        {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [encode_mask(a)] * T},
        {"video_id": 1, "category_id": 2, "score": 0.1, "segmentations": [encode_mask(b)] * T},
    ]
    res_path = tmp_path / "res.json"
    res_path.write_text(json.dumps(res))
    return {"gt": gt_path, "root": root, "res": res_path, "out": tmp_path / "out"}


def _show(data: dict[str, Path], *extra: str) -> int:
    return main(
        [
            "-q",
            "show",
            "--gt",
            str(data["gt"]),
            "--frames-root",
            str(data["root"]),
            "--out",
            str(data["out"]),
            *extra,
        ]
    )


def _frame(data: dict[str, Path], t: int) -> np.ndarray:
    return np.asarray(Image.open(data["root"] / "vid1" / f"{t:05d}.jpg").convert("RGB")).astype(int)


def _n_frames(im: Image.Image) -> int:
    return sum(1 for _ in ImageSequence.Iterator(im))


def _blend(px: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.rint(px * (1 - ALPHA) + np.asarray(color) * ALPHA).astype(int)


# ---- drawing API ---------------------------------------------------------------------------


def test_draw_frame_blends_inside_and_keeps_outside() -> None:
    frame = np.full((H, W, 3), 100, dtype=np.uint8)
    a, _ = _masks()
    out = draw_frame(frame, [a, None], ["", ""], [(200, 0, 50), (0, 0, 0)], alpha=ALPHA)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 100).all(), "input frame must not be modified"
    assert out[20, 36].tolist() == [150, 50, 75]  # interior: blended
    assert out[10, 36].tolist() == [200, 0, 50]  # boundary: contour in the object's colour
    assert out[5, 5].tolist() == [100, 100, 100]  # outside: unchanged
    with pytest.raises(ValueError, match="masks"):
        draw_frame(frame, [a], [], [(0, 0, 0)])


def test_colors_are_stable_and_consecutive_ids_differ() -> None:
    assert color_for(7) == color_for(7) == PALETTE[7 % len(PALETTE)]
    ids = range(100, 100 + len(PALETTE))
    assert len({color_for(i) for i in ids}) == len(PALETTE)


def test_render_video_side_by_side_panels(data: dict[str, Path]) -> None:
    ds = YTVISDataset.load(data["gt"], image_root=data["root"])
    a, _ = _masks()
    ov = Overlay(3, "#3 person", [encode_mask(a)] * T)
    out = render_video(
        ds.video_sample(1),
        [Panel("left", [ov]), Panel("right", [])],
        data["out"],
        formats=["png"],
        max_frames=2,
    )
    assert out.frames == 2 and out.size == (H, 2 * W + PANEL_GAP)
    pngs = sorted((data["out"] / "vid1").glob("*.png"))
    assert [p.name for p in pngs] == ["00000.png", "00001.png"]
    img = np.asarray(Image.open(pngs[1])).astype(int)
    frame = _frame(data, 1)
    assert img[28, 36].tolist() == _blend(frame[28, 36], color_for(3)).tolist()
    assert img[28, W + PANEL_GAP + 36].tolist() == frame[28, 36].tolist()  # right panel: nothing drawn
    assert (img[:, W : W + PANEL_GAP] == 255).all()


# ---- CLI -----------------------------------------------------------------------------------


def test_show_gt_writes_all_formats(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _show(data, "--format", "png,gif,mp4", "--fps", "5") == 0
    assert "wrote 2 video(s)" in capsys.readouterr().out
    out = data["out"]
    for name, n in [("vid1", T), ("vid2", 3)]:
        pngs = sorted((out / name).glob("*.png"))
        assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(n)]
        assert all(Image.open(p).size == (W, H) for p in pngs)
        with Image.open(out / f"{name}.gif") as gif:
            assert gif.size == (W, H) and _n_frames(gif) == n
            assert gif.info["duration"] == 200
        cap = cv2.VideoCapture(str(out / f"{name}.mp4"))
        assert cap.isOpened()
        frames = 0
        while cap.grab():
            frames += 1
        assert frames == n
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
        cap.release()
        assert (out / f"{name}_sheet.png").is_file()
    assert not list(out.glob(".*tmp*")), "temporary files left behind"


def test_show_gt_pixel_colours(data: dict[str, Path]) -> None:
    assert _show(data, "--videos", "1", "--format", "png") == 0
    img = np.asarray(Image.open(data["out"] / "vid1" / "00003.png")).astype(int)
    frame = _frame(data, 3)
    assert img[28, 36].tolist() == _blend(frame[28, 36], color_for(7)).tolist()  # inside track 7
    assert img[28, 8].tolist() == frame[28, 8].tolist()  # outside every mask (track 8 is absent)
    assert not (data["out"] / "vid2").exists(), "--videos 1 must draw only video 1"


def test_predictions_below_threshold_are_not_drawn(data: dict[str, Path]) -> None:
    assert _show(data, "--results", str(data["res"]), "--format", "png", "--max-frames", "2") == 0
    pngs = sorted((data["out"] / "vid1").glob("*.png"))
    assert len(pngs) == 2
    img = np.asarray(Image.open(pngs[0])).astype(int)
    frame = _frame(data, 0)
    assert img[28, 36].tolist() == _blend(frame[28, 36], color_for(0)).tolist()  # score 0.9, rank 0
    assert img[28, 8].tolist() == frame[28, 8].tolist()  # score 0.1 < 0.3: not drawn
    # a lower threshold draws it (rank 1's colour); a rerun also clears the stale frames
    assert _show(data, "--results", str(data["res"]), "--format", "png", "--score-thr", "0.05") == 0
    img = np.asarray(Image.open(data["out"] / "vid1" / "00000.png")).astype(int)
    assert img[28, 8].tolist() == _blend(frame[28, 8], color_for(1)).tolist()


def test_side_by_side_and_max_videos(data: dict[str, Path]) -> None:
    assert (
        _show(data, "--results", str(data["res"]), "--side-by-side", "--max-videos", "1", "--format", "gif")
        == 0
    )
    with Image.open(data["out"] / "vid1.gif") as gif:
        assert gif.size == (2 * W + PANEL_GAP, H) and _n_frames(gif) == T
    assert not (data["out"] / "vid2.gif").exists()
    assert not (data["out"] / "vid1").exists(), "no PNGs unless asked for"


def test_videos_by_name(data: dict[str, Path]) -> None:
    assert _show(data, "--videos", "vid2", "--format", "png") == 0
    assert len(list((data["out"] / "vid2").glob("*.png"))) == 3


# ---- bad input -----------------------------------------------------------------------------


def test_unknown_video_id(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _show(data, "--videos", "1,42") == 2
    err = capsys.readouterr().err
    assert "42" in err and "unknown video" in err


def test_missing_frames_root(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = {**data, "root": data["root"].parent / "nowhere"}
    assert _show(data) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "frames root does not exist" in err


def test_missing_frame_file(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (data["root"] / "vid1" / "00002.jpg").unlink()
    assert _show(data, "--format", "png,mp4") == 2
    err = capsys.readouterr().err
    assert "00002.jpg" in err and "frame 2" in err
    assert not list(data["out"].glob("*.mp4")) and not list(data["out"].glob(".*")), "no partial MP4"


def _write_results(data: dict[str, Path], res: Any) -> None:
    data["res"].write_text(json.dumps(res))


def test_results_of_wrong_length(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    res = json.loads(data["res"].read_text())
    res[1]["segmentations"] = res[1]["segmentations"][:-1]
    _write_results(data, res)
    assert _show(data, "--results", str(data["res"])) == 2
    err = capsys.readouterr().err
    assert "res.json: results[1]" in err and f"has {T - 1} entries" in err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r.update(video_id=99), "video 99 is not a video of the ground truth"),
        (lambda r: r.update(score="high"), "score must be a number, got str"),
        (lambda r: r.pop("category_id"), "missing key(s) 'category_id'"),
        (
            lambda r: r["segmentations"].__setitem__(1, {"size": [H, W], "counts": "zzzz"}),
            "segmentations[1]: RLE 'counts' has the character 'z'",
        ),
        (
            lambda r: r["segmentations"].__setitem__(2, {"size": [H + 1, W], "counts": "abc"}),
            "segmentations[2]: mask size 33x48 differs from the video's 32x48",
        ),
    ],
)
def test_bad_result_entries(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], edit: Any, expected: str
) -> None:
    res = json.loads(data["res"].read_text())
    edit(res[0])
    _write_results(data, res)
    assert _show(data, "--results", str(data["res"])) == 2
    err = capsys.readouterr().err
    assert "results[0]" in err and expected in err


def test_results_not_a_list(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _write_results(data, {"video_id": 1})
    assert _show(data, "--results", str(data["res"])) == 2
    assert "must be a JSON list" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "png,avi"], "--format"),
        (["--side-by-side"], "--side-by-side needs --results"),
        (["--max-frames", "0"], "--max-frames"),
    ],
)
def test_usage_errors(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert _show(data, *args) == 2
    assert expected in capsys.readouterr().err


def test_gt_without_annotations_needs_results(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads(data["gt"].read_text())
    gt.pop("annotations")
    data["gt"].write_text(json.dumps(gt))
    assert _show(data) == 2
    assert "pass --results" in capsys.readouterr().err
    assert _show(data, "--results", str(data["res"]), "--format", "png") == 0
