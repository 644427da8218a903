"""CiCo parity with the official code (MinghanLi/CiCo @ d835b52) on the two public fixtures.

Each model runs once per session (module-scoped): the CondInst fixture through the CLI
(``visrepro predict`` with the official plain state dict written to disk), the Yolact fixture
through the adapter with ``load_official_checkpoint``. The adapter of each run keeps debugging
records (Detect candidates, filter survivors, detections, tracker decisions, per-clip outputs).

Decisions must be equal (candidates, filter survivors, detection anchors/classes/order, tracker
best/matched/new/dropped/output ids and classes); numbers within ``meta.json``'s suggested
tolerances; results.json: same objects in the same order, scores within 1e-5, per-frame mask IoU
>= 0.995 (two empty masks count as equal).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _parity_weights import fixture_state_dict
from pycocotools import mask as mask_utils

from tests.conftest import two_threads

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "parity"
MANIFESTS = FIXTURES / "cico_manifests"
HEADS = ("condinst", "yolact")

# fixed thread count for the parity comparisons (see tests/conftest.py: two_threads)
_two_threads = pytest.fixture(scope="module", autouse=True)(two_threads)


def _fixture(head: str) -> Path:
    return FIXTURES / f"cico_{head}_r50_yt19_seed0"


def _meta(head: str) -> dict[str, Any]:
    return json.loads((_fixture(head) / "meta.json").read_text())


def _capturing_build(store: list[Any]) -> Any:
    from methods.cico import adapter as cico_adapter

    orig = cico_adapter.build

    def build(cfg: Any, **kw: Any) -> Any:
        ad = orig(cfg, keep_debug=True, **kw)
        post = ad.postprocess

        def postprocess(tracked: Any, clip: Any, video: Any) -> Any:
            outs = post(tracked, clip, video)
            ad.debug[-1]["outputs"] = outs
            return outs

        ad.postprocess = postprocess  # type: ignore[method-assign]
        store.append(ad)
        return ad

    return build


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from benchmark import cli
    from benchmark.data.frames import VideoSample
    from benchmark.registry import create_adapter
    from methods.cico import adapter as cico_adapter

    torch.set_num_threads(min(2, torch.get_num_threads()))
    out: dict[str, dict[str, Any]] = {}
    tmp = tmp_path_factory.mktemp("cico_parity")
    for head in HEADS:
        state, sha = fixture_state_dict(_fixture(head), MANIFESTS)
        weights = tmp / f"cico_{head}.pth"
        torch.save(state, weights)  # the official release format: a plain CoreNet state dict
        frames = _fixture(head) / "frames"
        variant = f"cico_{head}_r50.ytvis2019"
        if head == "condinst":
            store: list[Any] = []
            mp = pytest.MonkeyPatch()
            mp.setattr(cico_adapter, "build", _capturing_build(store))
            try:
                results = tmp / f"{head}_results.json"
                argv = ["predict", "--variant", variant, "--checkpoint", str(weights), "--video", str(frames)]
                argv += ["--video-id", "1", "--out", str(results), "--no-progress"]
                rc = cli.main(argv)
            finally:
                mp.undo()
            assert rc == 0
            ad = store[-1]
            got = json.loads(results.read_text())
        else:
            ad = create_adapter(variant, keep_debug=True)
            ad.load_official_checkpoint(weights)
            post = ad.postprocess

            def postprocess(tracked: Any, clip: Any, video: Any, ad: Any = ad, post: Any = post) -> Any:
                outs = post(tracked, clip, video)
                ad.debug[-1]["outputs"] = outs
                return outs

            ad.postprocess = postprocess
            preds = ad.predict_video(VideoSample.from_path(frames, video_id=1))
            got = [p.to_json() for p in preds]
        out[head] = {"sha": sha, "debug": ad.debug, "results": got}
    return out


def test_weights_rebuilt_identically(runs: dict[str, dict[str, Any]]) -> None:
    for head in HEADS:
        assert runs[head]["sha"] == _meta(head)["drawn_sha256"], "numpy's PCG64 stream changed, not the model"


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@pytest.mark.parametrize("head", HEADS)
def test_detect_matches_official(runs: dict[str, dict[str, Any]], head: str) -> None:
    z = np.load(_fixture(head) / "expected" / "clips.npz")
    meta = _meta(head)
    tol = meta["suggested_tolerances"]["detect"]
    debug = runs[head]["debug"]
    assert len(debug) == len(meta["clip_schedule"])
    for c, rec in enumerate(debug):
        d = rec["dets"]
        counts = meta["counts"]["per_clip"][c]
        np.testing.assert_array_equal(
            _np(d.debug["cand_anchor"]), z[f"c{c}_cand_anchor"], err_msg=f"clip {c}"
        )
        assert np.abs(_np(d.debug["cand_score"]) - z[f"c{c}_cand_score"]).max() <= tol["score_abs"]
        np.testing.assert_array_equal(_np(d.debug["f12_anchor"]), z[f"c{c}_f12_anchor"], err_msg=f"clip {c}")
        np.testing.assert_array_equal(_np(d.debug["f3_anchor"]), z[f"c{c}_f3_anchor"], err_msg=f"clip {c}")
        assert len(d) == counts["n_detect"] == len(z[f"c{c}_det_anchor"])
        # order exact outside groups of exactly tied scores; within a group the same members
        keys = list(zip(_np(d.anchor).tolist(), _np(d.cls).tolist(), strict=True))
        exp_keys = list(zip(z[f"c{c}_det_anchor"].tolist(), z[f"c{c}_det_class"].tolist(), strict=True))
        groups = z[f"c{c}_det_tie_group"]
        for i, g in enumerate(groups):
            if g < 0:
                assert keys[i] == exp_keys[i], f"clip {c} detection {i}"
        for g in set(groups[groups >= 0].tolist()):
            pos = np.nonzero(groups == g)[0]
            assert sorted(keys[i] for i in pos) == sorted(exp_keys[i] for i in pos), f"clip {c} tie group {g}"
        perm = [keys.index(k) for k in exp_keys]
        assert np.abs(_np(d.score)[perm] - z[f"c{c}_det_score"]).max() <= tol["score_abs"]
        assert np.abs(_np(d.box)[perm] - z[f"c{c}_det_box"]).max() <= tol["box_abs"]
        assert np.abs(_np(d.box_cir)[perm] - z[f"c{c}_det_box_cir"]).max() <= tol["box_cir_abs"]
        assert np.abs(_np(d.track)[perm] - z[f"c{c}_det_track"]).max() <= tol["track_abs"]
        assert np.abs(_np(d.mask_coeff)[perm] - z[f"c{c}_det_mask_coeff"]).max() <= tol["mask_coeff_abs"]
        np.testing.assert_array_equal(_np(d.prior_levels)[perm], z[f"c{c}_det_prior_levels"])
        fg = _np(d.pair_masks() > 0.5)[perm]
        bits = np.unpackbits(z[f"c{c}_det_mask_bits"])[: fg.size].reshape(fg.shape).astype(bool)
        frac = (bits != fg).reshape(len(fg), -1).mean(1)
        assert frac.max() <= tol["mask_bits_mismatch_per_detection_max_fraction"], f"clip {c}"


@pytest.mark.parametrize("head", HEADS)
def test_tracker_matches_official(runs: dict[str, dict[str, Any]], head: str) -> None:
    expected = json.loads((_fixture(head) / "expected" / "tracking.json").read_text())
    z = np.load(_fixture(head) / "expected" / "clips.npz")
    tol = _meta(head)["suggested_tolerances"]["tracking"]
    for c, (rec, exp) in enumerate(zip(runs[head]["debug"], expected, strict=True)):
        tr = rec["track"]
        assert _np(tr.ids).tolist() == exp["output_ids"] == z[f"c{c}_trk_box_ids"].tolist(), f"clip {c}"
        assert _np(tr.cls).tolist() == exp["output_class"], f"clip {c}"
        assert np.abs(_np(tr.score) - np.array(exp["output_score"])).max() <= tol["score_abs"]
        if c == 0:
            assert tr.debug["new"] == [i for i, _ in exp["new"]]
            continue
        dbg = tr.debug
        assert _np(dbg["best"]).tolist() == exp["best"], f"clip {c}"
        assert dbg["new"] == [i for i, _ in exp["new"]], f"clip {c}"
        assert sorted(map(tuple, dbg["matched"])) == sorted(map(tuple, exp["matched"])), f"clip {c}"
        assert dbg["dropped"] == exp["dropped"], f"clip {c}"
        assert np.abs(_np(dbg["sim"]) - np.array(exp["sim"])).max() <= tol["sim_abs"]
        assert np.abs(_np(dbg["comp"]) - np.array(exp["comp"])).max() <= tol["comp_abs"]
        # new objects get the next ids in detection order; carried objects are the unmatched ones
        first_new = exp["n_memory_before"]
        assert [[i, first_new + k] for k, i in enumerate(dbg["new"])] == exp["new"]
        carried = {o["obj_id"] for o in exp["carried_forward"] if o["output"]}
        matched_ids = {o for _, o in exp["matched"]}
        out_ids = set(exp["output_ids"])
        assert carried == {i for i in out_ids if i < first_new and i not in matched_ids}


def _iou(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return 1.0
    if mask_utils.area(a) == 0 and mask_utils.area(b) == 0:
        return 1.0
    return float(mask_utils.iou([a], [b], [0])[0][0])


@pytest.mark.parametrize("head", HEADS)
def test_clip_masks_match_official(runs: dict[str, dict[str, Any]], head: str) -> None:
    expected = json.loads((_fixture(head) / "expected" / "clip_masks.json").read_text())
    worst = 1.0
    for rec, exp in zip(runs[head]["debug"], expected, strict=True):
        outs = rec["outputs"]
        assert [o.track_id for o in outs] == [o["obj_id"] for o in exp["objects"]]
        for o, e in zip(outs, exp["objects"], strict=True):
            assert list(o.frames) == exp["frame_ids"]
            assert o.category_id == e["category_id"]
            assert abs(o.score - e["score"]) <= 1e-5
            for a, b in zip(o.rles, e["masks"], strict=True):
                worst = min(worst, _iou(dict(a), b))
    assert worst >= 0.995


@pytest.mark.parametrize("head", HEADS)
def test_results_json_matches_official(runs: dict[str, dict[str, Any]], head: str) -> None:
    expected = json.loads((_fixture(head) / "expected" / "results.json").read_text())
    got = runs[head]["results"]
    assert len(got) == len(expected) == _meta(head)["counts"]["n_video_objects"]
    worst = 1.0
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g["video_id"] == e.get("video_id", 1) == 1
        assert g["category_id"] == e["category_id"], f"object {i}"
        assert abs(g["score"] - e["score"]) <= 1e-5, f"object {i}"
        assert len(g["segmentations"]) == len(e["segmentations"]) == 7
        for a, b in zip(g["segmentations"], e["segmentations"], strict=True):
            worst = min(worst, _iou(a, b))
    assert worst >= 0.995
