"""CrossVIS parity with the official code (hustvl/CrossVIS @ 378f4f3, ``tools/test_vis.py``).

Fixture ``fixtures/parity/crossvis_r50_seed0`` (a copy of the shared parity fixture): R-50 weights
rebuilt from the manifest, seed 0 and the overrides; 5 frames of 720x1280; the official per-frame
detections, masks, tracking decisions and ``results.json``.

The model runs once per session (module-scoped), through the CLI (``visrepro predict`` on the
weights saved in the official detectron2 format ``{"model": state_dict}``), with the adapter's
debugging records captured: per-frame detections and tracker records. Decisions (detection counts,
classes, order, tracking decisions, tracks) must be equal; numbers within the fixture's suggested
tolerances (boxes 1e-3 px, scores 1e-5, re-id 1e-4, mask IoU >= 0.995).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _parity_weights import build_state_dict, load_manifest, load_overrides
from pycocotools import mask as mask_utils

from tests.conftest import two_threads

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "parity" / "crossvis_r50_seed0"
MANIFEST = FIXTURE / "manifests" / "crossvis_R_50_1x.json"
VARIANT = "crossvis_r50.ytvis2019"
META: dict[str, Any] = json.loads((FIXTURE / "meta.json").read_text())
TOL = META["tolerances"]
NUM_FRAMES = len(META["frames"])

# fixed thread count for the parity comparisons (see tests/conftest.py: two_threads)
_two_threads = pytest.fixture(scope="module", autouse=True)(two_threads)


def rebuild_weights() -> tuple[dict[str, torch.Tensor], str]:
    return build_state_dict(
        load_manifest(MANIFEST), int(META["seed"]), load_overrides(FIXTURE / "overrides.npz")
    )


def _iou(a: Any, b: Any) -> float:
    """IoU of two compressed RLEs (1.0 when both are empty)."""
    inter = mask_utils.area(mask_utils.merge([a, b], intersect=True))
    union = mask_utils.area(mask_utils.merge([a, b], intersect=False))
    return 1.0 if union == 0 else float(inter) / float(union)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from benchmark import cli
    from methods.crossvis import adapter as cv_adapter

    torch.set_num_threads(min(2, torch.get_num_threads()))
    tmp = tmp_path_factory.mktemp("crossvis_parity")
    state, sha = rebuild_weights()
    weights = tmp / "crossvis_r50.pth"
    torch.save({"model": state, "iteration": 22999}, weights)  # detectron2 checkpoint layout
    store: list[Any] = []
    orig = cv_adapter.build

    def build(cfg: Any, **kw: Any) -> Any:
        ad = orig(cfg, keep_debug=True, **kw)
        store.append(ad)
        return ad

    out = tmp / "results.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cv_adapter, "build", build)
        rc = cli.main(["predict", "--variant", VARIANT, "--checkpoint", str(weights),
                       "--video", str(FIXTURE / "frames"), "--video-id", str(META["video_id"]),
                       "--out", str(out)])  # fmt: skip
    assert rc in (0, None)
    assert len(store) == 1
    return {"sha": sha, "results": json.loads(out.read_text()), "adapter": store[0], "weights": weights}


def test_weights_rebuild_matches_fixture_stream() -> None:
    _, sha = rebuild_weights()
    assert sha == META["drawn_sha256"], "numpy's PCG64 stream changed (not a model bug)"


def test_detections_per_frame(run: dict[str, Any]) -> None:
    exp = np.load(FIXTURE / "expected" / "detections.npz")
    frames = run["adapter"].debug
    assert [f.frame for f in frames] == list(range(NUM_FRAMES))
    assert [len(f.dets) for f in frames] == META["detections_per_frame"]
    for f in frames:
        t, d = f.frame, f.dets
        np.testing.assert_array_equal(d.classes.numpy(), exp[f"pred_classes_{t}"])
        np.testing.assert_array_equal(d.fpn_levels.numpy(), exp[f"fpn_levels_{t}"])
        np.testing.assert_array_equal(d.locations.numpy(), exp[f"locations_{t}"])
        np.testing.assert_allclose(d.boxes.numpy(), exp[f"pred_boxes_{t}"], rtol=0, atol=TOL["boxes_abs"])
        np.testing.assert_allclose(d.scores.numpy(), exp[f"scores_{t}"], rtol=0, atol=TOL["scores_abs"])
        np.testing.assert_allclose(d.reid.numpy(), exp[f"reid_feat_{t}"], rtol=0, atol=TOL["reid_abs"])
        np.testing.assert_allclose(d.mask_params.numpy(), exp[f"mask_head_params_{t}"], rtol=0, atol=1e-4)
        assert bool((d.scores[:-1] >= d.scores[1:]).all()), "not in descending score order"


def test_detection_masks(run: dict[str, Any]) -> None:
    from benchmark.adapter import masks_to_rles
    from methods.crossvis.model import full_res_masks

    exp = json.loads((FIXTURE / "expected" / "detections_masks.json").read_text())
    worst = 1.0
    for f in run["adapter"].debug:
        rles: list[Any] = []
        for s in range(0, len(f.dets), 16):
            rles += masks_to_rles(full_res_masks(f.dets, list(range(s, min(s + 16, len(f.dets))))))
        want = exp[f.frame] if isinstance(exp, list) else exp[str(f.frame)]
        assert len(rles) == len(want)
        for i, (a, b) in enumerate(zip(rles, want, strict=True)):
            iou = _iou(a, b)
            worst = min(worst, iou)
            assert iou >= TOL["mask_iou_min"], f"frame {f.frame} detection {i}: mask IoU {iou}"
    assert worst >= TOL["mask_iou_min"]


def test_tracking_decisions(run: dict[str, Any]) -> None:
    exp = json.loads((FIXTURE / "expected" / "tracking.json").read_text())
    recs = [f.record for f in run["adapter"].debug if len(f.dets)]
    assert len(recs) == len(exp["frames"])
    for rec, want in zip(recs, exp["frames"], strict=True):
        assert rec.frame == want["frame"]
        assert rec.memory_keys_before == want["memory_keys_before"]
        assert [list(x) for x in rec.decisions] == want["decisions"]
        assert [a[0] for a in rec.assigned] == [a[0] for a in want["assigned"]]
        np.testing.assert_allclose([a[1] for a in rec.assigned], [a[1] for a in want["assigned"]], atol=1e-4)
        if want["memory_keys_before"]:
            np.testing.assert_allclose(np.array(rec.score_matrix), np.array(want["score_matrix"]), atol=1e-4)
    tracker = run["adapter"].tracker
    got = {str(k): [[e.frame, e.det] for e in v] for k, v in tracker.memory.items()}
    assert got == exp["tracks"]
    assert len(got) == META["num_tracks"]


def test_tracker_replay_on_official_detections() -> None:
    """Our tracker fed the official detections makes the official decisions (no model involved)."""
    from methods.crossvis.tracker import OnlineTracker

    det = np.load(FIXTURE / "expected" / "detections.npz")
    exp = json.loads((FIXTURE / "expected" / "tracking.json").read_text())
    tr = OnlineTracker()
    decisions = []
    for t in range(NUM_FRAMES):
        rec = tr.step(
            t, torch.from_numpy(det[f"pred_boxes_{t}"]), torch.from_numpy(det[f"reid_feat_{t}"]),
            torch.from_numpy(det[f"scores_{t}"]), torch.from_numpy(det[f"pred_classes_{t}"]),
        )  # fmt: skip
        decisions.append([list(x) for x in rec.decisions])
    assert decisions == [f["decisions"] for f in exp["frames"]]
    assert {str(k): [[e.frame, e.det] for e in v] for k, v in tr.memory.items()} == exp["tracks"]


def _compare_results(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> float:
    assert len(got) == len(want)
    worst = 1.0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g["video_id"] == w["video_id"]
        assert g["category_id"] == w["category_id"], f"track {i}"
        assert abs(g["score"] - w["score"]) <= TOL["scores_abs"], f"track {i}: {g['score']} vs {w['score']}"
        assert [s is None for s in g["segmentations"]] == [s is None for s in w["segmentations"]], (
            f"track {i}"
        )
        for t, (a, b) in enumerate(zip(g["segmentations"], w["segmentations"], strict=True)):
            if a is None:
                continue
            assert a["size"] == b["size"]
            iou = _iou(a, b)
            worst = min(worst, iou)
            assert iou >= TOL["mask_iou_min"], f"track {i} frame {t}: mask IoU {iou}"
    return worst


def test_results_json_through_cli(run: dict[str, Any]) -> None:
    want = json.loads((FIXTURE / "expected" / "results.json").read_text())
    assert len(want) == META["num_tracks"]
    _compare_results(run["results"], want)


def test_checkpoint_report_drops_reid_classifier(run: dict[str, Any]) -> None:
    from benchmark.registry import create_adapter

    ad = create_adapter(VARIANT)
    report = ad.load_official_checkpoint(run["weights"])
    assert report.complete
    assert {k for k, _ in report.dropped} == {"cls.weight", "cls.bias"}
    assert all("training-only" in why for _, why in report.dropped)
    assert all(o == n for o, n in report.converted)  # official names: nothing renamed
    assert len(report.converted) == 395
