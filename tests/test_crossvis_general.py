"""CrossVIS beyond the parity fixture: R-101 strict loading, other seeds and frame sizes, invariants
where no official output exists, tracker rules on synthetic inputs, bad checkpoints.

Model runs (module-scoped, R-50 with seed 1, the fixture's overrides and the class bias raised): a 3-frame
854x480 video, a 3-frame portrait 360x640 video and a 1-frame video (frame 0 of the 480p one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from _parity_weights import build_state_dict, load_manifest, load_overrides

from benchmark.errors import InputError

pytestmark = pytest.mark.numeric

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "parity" / "crossvis_r50_seed0"
MANIFESTS = FIXTURE / "manifests"
R50 = "crossvis_r50.ytvis2019"
R101 = "crossvis_r101.ytvis2019"


def _frames(size_hw: tuple[int, int], n: int) -> list[np.ndarray]:
    """Fixture frames cropped to the aspect ratio of ``size_hw`` and resized to it (RGB)."""
    out = []
    for p in sorted((FIXTURE / "frames").glob("*.png"))[:n]:
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        th, tw = size_hw
        cw = min(w, round(h * tw / th))
        x0 = (w - cw) // 2
        crop = rgb[:, x0 : x0 + cw]
        out.append(cv2.resize(crop, (tw, th), interpolation=cv2.INTER_AREA))
    return out


def _video_dir(root: Path, frames: list[np.ndarray]) -> Path:
    root.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(root / f"{i:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return root


def _run(ad: Any, path: Path, video_id: int = 7) -> list[Any]:
    from benchmark.data.frames import VideoSample

    return ad.predict_video(VideoSample.from_path(path, video_id))


@pytest.fixture(scope="module")
def seed1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from benchmark.registry import create_adapter

    torch.set_num_threads(min(2, torch.get_num_threads()))
    tmp = tmp_path_factory.mktemp("crossvis_general")
    state, _ = build_state_dict(
        load_manifest(MANIFESTS / "crossvis_R_50_1x.json"), 1, load_overrides(FIXTURE / "overrides.npz")
    )
    # the overrides were calibrated for seed 0; with seed 1 the class logits sit ~2.5 lower, so
    # raise their bias to get a realistic number of detections again
    state["proposal_generator.fcos_head.cls_logits.bias"] += 2.5
    ad = create_adapter(R50, keep_debug=True)
    report = ad.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("cls.")})
    assert not report.missing_keys and not report.unexpected_keys
    out: dict[str, Any] = {"adapter": ad}
    for name, hw, n in (("p480", (480, 854), 3), ("portrait", (640, 360), 3), ("single", (480, 854), 1)):
        path = _video_dir(tmp / name, _frames(hw, n))
        preds = _run(ad, path)
        out[name] = {
            "preds": preds,
            "debug": list(ad.debug),
            "tracker": dict(ad.tracker.memory),
            "hw": hw,
            "n": n,
        }
    return out


def _check_valid(run: dict[str, Any]) -> None:
    h, w = run["hw"]
    preds, debug = run["preds"], run["debug"]
    news = [d for f in debug for d in f.record.decisions if d[0] == "new"]
    assert len(preds) == len(news) == len(run["tracker"])
    assert len(preds) > 0
    for p, entries in zip(preds, run["tracker"].values(), strict=True):
        js = p.to_json()
        assert js["video_id"] == 7
        assert 1 <= js["category_id"] <= 40
        assert js["category_id"] == entries[0].cls + 1
        assert len({e.cls for e in entries}) == 1, "category changed along a track"
        assert 0.0 < js["score"] <= 1.0
        # the same float scores averaged twice (float64; summation order only)
        assert js["score"] == pytest.approx(np.mean([e.score for e in entries]), abs=1e-7)
        frames = [e.frame for e in entries]
        assert frames == sorted(set(frames)), "more than one entry per frame"
        assert len(js["segmentations"]) == run["n"]
        for t, seg in enumerate(js["segmentations"]):
            assert (seg is None) == (t not in frames)
            if seg is not None:
                assert seg["size"] == [h, w] and isinstance(seg["counts"], str)
    json.dumps([p.to_json() for p in preds])  # serialisable as results.json
    for f in debug:
        d = f.dets
        assert d.orig_hw == (h, w)
        assert d.padded_hw[0] % 32 == 0 and d.padded_hw[1] % 32 == 0
        assert bool((d.boxes[:, 0] >= 0).all() and (d.boxes[:, 2] <= w).all() and (d.boxes[:, 3] <= h).all())
        assert bool((d.scores[:-1] >= d.scores[1:]).all())
        kept = list(f.record.kept.values())
        assert len(kept) == len(set(kept)), "one detection in two tracks"


def test_480p_video_valid(seed1: dict[str, Any]) -> None:
    assert seed1["p480"]["debug"][0].dets.resized_hw == (360, 640)
    _check_valid(seed1["p480"])


def test_portrait_video_valid(seed1: dict[str, Any]) -> None:
    d = seed1["portrait"]["debug"][0].dets
    assert d.resized_hw == (640, 360) and d.padded_hw == (640, 384)
    _check_valid(seed1["portrait"])


def test_single_frame_video_equals_frame0(seed1: dict[str, Any]) -> None:
    """Frame 0 alone: one track per detection, in detection order, with its score and mask."""
    _check_valid(seed1["single"])
    one, long = seed1["single"], seed1["p480"]
    d_one, d_long = one["debug"][0].dets, long["debug"][0].dets
    assert len(one["preds"]) == len(d_one) == len(d_long)
    torch.testing.assert_close(d_one.boxes, d_long.boxes, rtol=0, atol=0)
    torch.testing.assert_close(d_one.reid, d_long.reid, rtol=0, atol=0)
    for i, p in enumerate(one["preds"]):
        q = long["preds"][i]  # tracks 0..n-1 are frame 0's detections in both runs
        assert p.category_id == q.category_id == int(d_one.classes[i]) + 1
        assert p.score == pytest.approx(float(d_one.scores[i]), abs=1e-7)
        assert p.segmentations[0] == q.segmentations[0]


def test_batched_mask_head_equals_grouped_conv() -> None:
    from methods.crossvis.mask import dynamic_mask_logits, dynamic_mask_logits_grouped

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(1, 8, 24, 40, generator=g)
    params = torch.randn(37, 169, generator=g) * 0.3
    locs = torch.randint(0, 300, (37, 2), generator=g).float()
    levels = torch.randint(0, 5, (37,), generator=g)
    soi = torch.tensor([64, 128, 256, 512, 1024])
    a = dynamic_mask_logits(feats, params, locs, levels, soi)
    b = dynamic_mask_logits_grouped(feats, params, locs, levels, soi)
    # two code paths; the bound 1e-5 + 1e-5 * |b| is ~20x their float noise, measured by printing
    # (a - b).abs().max() here (`pytest -s tests/test_crossvis_general.py -k batched_mask_head`, with
    # and without `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`; torch 2.14.1): 4.8e-7 on both
    # the AVX-512 and the AVX2 path (max |b| 3.9)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("hw", "want"),
    [((720, 1280), (360, 640)), ((480, 854), (360, 640)), ((1280, 720), (640, 360)), ((360, 640), (360, 640)),
     ((1080, 1440), (360, 480)), ((500, 2000), (160, 640))],
)  # fmt: skip
def test_resized_size(hw: tuple[int, int], want: tuple[int, int]) -> None:
    from methods.crossvis.adapter import resized_size

    assert resized_size(*hw) == want


def test_preprocess_pil_bgr_mean_pad() -> None:
    from PIL import Image

    from methods.crossvis.adapter import PIXEL_MEAN_BGR, preprocess_frame

    rgb = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    x, (h, w) = preprocess_frame(rgb)
    assert (h, w) == (360, 540) and tuple(x.shape) == (1, 3, 384, 544)
    pil = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR)).astype(np.float32)
    want = pil[:, :, ::-1].transpose(2, 0, 1) - np.array(PIXEL_MEAN_BGR, dtype=np.float32)[:, None, None]
    np.testing.assert_array_equal(x[0, :, :h, :w].numpy(), want)
    assert float(x[0, :, h:].abs().max()) == 0.0 and float(x[0, :, :, w:].abs().max()) == 0.0


# ---- tracker rules on synthetic detections --------------------------------------------------------
def _step(
    tr: Any, t: int, boxes: list[list[float]], dirs: list[int], scores: list[float], cls: list[int]
) -> Any:
    eye = torch.eye(4)
    return tr.step(t, torch.tensor(boxes), eye[dirs] + 0.0, torch.tensor(scores), torch.tensor(cls))


def test_tracker_rules() -> None:
    from methods.crossvis.tracker import OnlineTracker

    tr = OnlineTracker()
    box = [0.0, 0.0, 10.0, 10.0]
    far = [100.0, 100.0, 110.0, 110.0]
    r0 = _step(tr, 0, [box, far], [0, 1], [0.9, 0.8], [3, 3])
    assert r0.decisions == [["new", 0], ["new", 1]]
    # class gating (-1), then a conflict: both claim track 0; the later, better one replaces; a
    # third, worse claimant is dropped and starts nothing
    r1 = _step(tr, 1, [box, far, [0.0, 0.0, 10.0, 12.0], [50.0, 50.0, 60.0, 60.0]], [0, 0, 0, 0],
               [0.9, 0.8, 0.7, 0.6], [5, 3, 3, 3])  # fmt: skip
    assert r1.score_matrix[0] == [-1.0, -1.0]
    assert r1.decisions[0] == ["new", 2]
    assert r1.decisions[1] == ["append", 0]  # cos 1 + IoU 0 with track 0 beats cos 0 + IoU 1
    assert r1.decisions[2] == ["replace", 0, 1]
    assert r1.decisions[3] == ["drop", 0]
    assert [e.det for e in tr.memory[0]] == [0, 2]
    assert len(tr.memory) == 3
    # empty frame: skipped; track 1 (unmatched since frame 0) is still matchable: tracks never end
    r2 = _step(tr, 2, [], [], [], [])
    assert r2.decisions == [] and len(tr.memory) == 3
    r3 = _step(tr, 3, [far], [1], [0.5], [3])
    assert r3.decisions == [["append", 1]]
    assert [e.frame for e in tr.memory[1]] == [0, 3]
    # below the 0.4 threshold: a new track (orthogonal embedding, no overlap)
    r4 = _step(tr, 4, [[300.0, 300.0, 310.0, 310.0]], [3], [0.5], [3])
    assert r4.decisions == [["new", 3]]


# ---- R-101 and bad checkpoints ----------------------------------------------------------------------
def _zeros(manifest: str) -> dict[str, torch.Tensor]:
    m = load_manifest(MANIFESTS / manifest)
    return {k: torch.zeros(s, dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
            for k, s in m.items()}  # fmt: skip


def test_r101_loads_manifest_strictly_and_runs(tmp_path: Path) -> None:
    from benchmark.registry import create_adapter

    torch.set_num_threads(min(2, torch.get_num_threads()))
    state = _zeros("crossvis_R_101_1x.json")
    assert len(state) == 652
    state["mask_head.sizes_of_interest"] = torch.tensor([64, 128, 256, 512, 1024])
    path = tmp_path / "r101.pth"
    torch.save({"model": state, "optimizer": {}, "iteration": 0}, path)
    ad = create_adapter(R101)
    report = ad.load_official_checkpoint(path)
    assert report.complete and len(report.converted) == 650 and len(report.dropped) == 2
    assert sum(p.numel() for p in ad.model.parameters()) == 56_357_473 - 969_918  # without cls
    preds = _run(ad, _video_dir(tmp_path / "v", _frames((90, 160), 2)))
    assert preds == []  # zero weights: every box is empty and removed, as in the official code


def test_r50_parameter_count() -> None:
    from methods.crossvis.model import CrossVISNet

    net = CrossVISNet(50)
    assert sum(p.numel() for p in net.parameters()) == 37_417_569 - 969_918
    assert len(net.state_dict()) == 397 - 2


def test_missing_and_misshaped_keys_are_named() -> None:
    from benchmark.checkpoint import load_strict
    from benchmark.registry import create_adapter

    ad = create_adapter(R50)
    state = _zeros("crossvis_R_50_1x.json")
    del state["controller.bias"]
    state["mask_branch.tower.4.weight"] = torch.zeros(16, 128, 1, 1)
    with pytest.raises(InputError, match=r"controller\.bias") as err:
        load_strict(ad.model, ad.convert_state_dict(state))
    assert "mask_branch.tower.4.weight" in str(err.value)


def test_class_count_mismatch(tmp_path: Path) -> None:
    from benchmark.registry import create_adapter

    path = tmp_path / "ovis.pth"
    torch.save(
        {"model": {"proposal_generator.fcos_head.cls_logits.weight": torch.zeros(25, 256, 3, 3)}}, path
    )
    with pytest.raises(InputError, match="25 classes"):
        create_adapter(R50).load_official_checkpoint(path)


def test_wrong_checkpoint_exits_2(tmp_path: Path) -> None:
    from benchmark import cli

    path = tmp_path / "other.pth"
    torch.save({"backbone.body.conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    frames = _video_dir(tmp_path / "v", _frames((90, 160), 1))
    rc = cli.main(["predict", "--variant", R50, "--checkpoint", str(path), "--video", str(frames),
                   "--video-id", "1", "--out", str(tmp_path / "r.json")])  # fmt: skip
    assert rc == 2


def test_unknown_option() -> None:
    from benchmark.registry import create_adapter

    with pytest.raises(InputError, match="unknown CrossVIS option"):
        create_adapter(R50, bogus=1)
