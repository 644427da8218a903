"""Hand-computed cases and hypothesis properties of the evaluator."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.evaluation.evaluate import evaluate
from benchmark.evaluation.loading import build_gt
from benchmark.evaluation.ytvis_eval import STAT_NAMES
from benchmark.masks import encode_mask

H, W = 8, 10


def rect(y0: int, x0: int, y1: int, x1: int) -> dict[str, Any]:
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return encode_mask(m)


def area_of(seg: dict[str, Any] | None) -> int | None:
    from benchmark.masks import rle_area

    return None if seg is None else int(rle_area([seg])[0])


def make_gt(tracks: list[tuple[int, int, list[Any]]], n_videos: int = 1, length: int = 4,
            n_cats: int = 3, crowd: set[int] | None = None, occlusion: list[list[Any]] | None = None) -> dict:  # fmt: skip
    videos = [{"id": v + 1, "height": H, "width": W, "length": length,
               "file_names": [f"v{v}/{i}.jpg" for i in range(length)]} for v in range(n_videos)]  # fmt: skip
    anns = []
    for i, (vid, cat, segs) in enumerate(tracks):
        a = {"id": i + 1, "video_id": vid, "category_id": cat, "iscrowd": int(i in (crowd or set())),
             "segmentations": segs, "areas": [area_of(s) for s in segs], "bboxes": [None] * len(segs)}  # fmt: skip
        if occlusion is not None:
            a["occlusion"] = occlusion[i]
        anns.append(a)
    cats = [{"id": c + 1, "name": f"c{c + 1}"} for c in range(n_cats)]
    return {"videos": videos, "categories": cats, "annotations": anns}


def pred(vid: int, cat: int, score: float, segs: list[Any]) -> dict[str, Any]:
    return {"video_id": vid, "category_id": cat, "score": score, "segmentations": segs}


A = rect(0, 0, 4, 4)  # 16 px
B = rect(4, 5, 8, 10)  # 20 px, disjoint from A


def test_perfect_is_one() -> None:
    gt = make_gt([(1, 1, [A, A, None, A]), (1, 2, [B, B, B, B])])
    res = [pred(1, 1, 0.9, [A, A, None, A]), pred(1, 2, 0.8, [B, B, B, B])]
    r = evaluate(gt, res)
    for s in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert r.stats[s] == pytest.approx(1.0, abs=1e-9)
    assert r.stats["APm"] == r.stats["APl"] == -1.0


def test_half_the_frames_is_iou_half() -> None:
    gt = make_gt([(1, 1, [A, A, A, A])])
    res = [pred(1, 1, 0.9, [A, A, None, None])]  # |D & G| = 32, |D | G| = 64
    r = evaluate(gt, res)
    assert r.stats["AP50"] == pytest.approx(1.0, abs=1e-9)  # IoU 0.5 >= 0.5 (inclusive)
    assert r.stats["AP75"] == 0.0
    assert r.stats["AP"] == pytest.approx(0.1, abs=1e-9)  # only the 0.5 threshold of 10
    r2 = evaluate(gt, [pred(1, 1, 0.9, [A, A, None, rect(0, 0, 4, 3)])])  # 44 / 64 < 0.7
    assert r2.stats["AR100"] == pytest.approx(0.4, abs=1e-12)  # 0.5, .55, .6, .65 of 10 thresholds


def test_empty_predictions_score_zero() -> None:
    gt = make_gt([(1, 1, [A, A, A, A])])
    r = evaluate(gt, [])
    assert r.stats["AP"] == 0.0 and r.stats["AR100"] == 0.0
    assert r.stats["APm"] == -1.0


def test_empty_gt_is_undefined() -> None:
    gt = make_gt([])
    r = evaluate(gt, [pred(1, 1, 0.5, [A, A, A, A])])
    assert all(v == -1.0 for v in r.stats.values())


def test_crowd_absorbs_predictions() -> None:
    gt = make_gt([(1, 1, [A, A, A, A]), (1, 1, [B, B, B, B])], crowd={1})
    res = [pred(1, 1, 0.9, [B, B, B, B]), pred(1, 1, 0.8, [B, B, B, B]), pred(1, 1, 0.7, [A, A, A, A])]
    r = evaluate(gt, res)
    # both B predictions land on the crowd GT and are ignored: A's prediction is a clean TP
    assert r.stats["AP"] == pytest.approx(1.0, abs=1e-9)
    only_crowd = make_gt([(1, 1, [B, B, B, B])], crowd={0})
    assert evaluate(only_crowd, res).stats["AP"] == -1.0


def test_ovis_hand_computed() -> None:
    occ_light = ["no_occlusion"] * 4
    occ_heavy = ["severe_occlusion"] * 4
    gt = make_gt([(1, 1, [A, A, A, A]), (1, 1, [B, B, B, B])], occlusion=[occ_light, occ_heavy])
    r = evaluate(gt, [pred(1, 1, 0.9, [A, A, A, A])])
    assert r.ovis is not None
    o = r.ovis
    assert o["AP_light"] == pytest.approx(1.0, abs=1e-9) and o["AR_light"] == 1.0
    assert o["AP_heavy"] == 0.0 and o["AR_heavy"] == 0.0  # the prediction matches the ignored light GT
    assert o["AP_medium"] == -1.0 and o["AR_medium"] == -1.0
    # 2 GT, 1 TP: precision 1 up to recall 0.5 -> recall points 0, .01, ..., .5 = 51 of 101
    assert o["AP"] == pytest.approx(51 / 101, abs=1e-9) == r.stats["AP"]
    assert o["AR100"] == 0.5
    # occlusion score: mean of the top half of the per-frame scores, closed range bounds
    g = build_gt(make_gt([(1, 1, [A] * 4)], occlusion=[["slight_occlusion", "slight_occlusion", "no_occlusion",
                                                         "severe_occlusion"]]))  # fmt: skip
    assert g.occ_score[0] == 0.5 and g.has_occlusion


# ------------------------------------------------------------------------------------------------
# properties

boxes = st.tuples(st.integers(0, H - 2), st.integers(0, W - 2), st.integers(1, 4), st.integers(1, 5))


@st.composite
def problems(draw: st.DrawFn) -> tuple[dict, list]:
    n_videos = draw(st.integers(1, 3))
    length = 3
    tracks = []
    for v in range(1, n_videos + 1):
        for _ in range(draw(st.integers(0, 3))):
            cat = draw(st.integers(1, 2))
            segs = []
            for _f in range(length):
                y, x, h, w = draw(boxes)
                segs.append(
                    rect(y, x, min(H, y + h), min(W, x + w)) if draw(st.booleans()) or not segs else None
                )
            if all(s is None for s in segs):
                segs[0] = rect(0, 0, 2, 2)
            tracks.append((v, cat, segs))
    gt = make_gt(tracks, n_videos=n_videos, length=length, n_cats=3)
    res = []
    n_pred = draw(st.integers(0, 8))
    scores = draw(st.lists(st.integers(1, 1000), min_size=n_pred, max_size=n_pred, unique=True))
    for s in scores:
        v = draw(st.integers(1, n_videos))
        cat = draw(st.integers(1, 2))
        segs = []
        for _f in range(length):
            y, x, h, w = draw(boxes)
            segs.append(rect(y, x, min(H, y + h), min(W, x + w)) if draw(st.booleans()) else None)
        res.append(pred(v, cat, s / 1000, segs))
    return gt, res


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems(), st.randoms(use_true_random=False))
def test_shuffling_results_without_ties_changes_nothing(prob: tuple[dict, list], rnd: random.Random) -> None:
    gt, res = prob
    a = evaluate(gt, res)
    shuffled = list(res)
    rnd.shuffle(shuffled)
    b = evaluate(gt, shuffled)
    assert a.stats == b.stats and a.per_category == b.per_category


@SETTINGS
@given(problems())
def test_perfect_predictions_give_ap_one(prob: tuple[dict, list]) -> None:
    gt, _ = prob
    if not gt["annotations"]:
        return
    res = [pred(a["video_id"], a["category_id"], 0.5 + 0.001 * i, a["segmentations"])
           for i, a in enumerate(gt["annotations"])]  # fmt: skip
    r = evaluate(gt, res)
    assert r.stats["AP"] == pytest.approx(1.0, abs=1e-9)
    assert r.stats["AR100"] == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(problems(), st.integers(1, 3))
def test_low_score_fp_of_category_without_gt_changes_nothing(prob: tuple[dict, list], vid: int) -> None:
    gt, res = prob
    vid = min(vid, len(gt["videos"]))
    a = evaluate(gt, res)
    b = evaluate(gt, [*res, pred(vid, 3, 0.0001, [A, None, B])])  # category 3 never has GT
    assert a.stats == b.stats
    assert {k: v for k, v in a.per_category.items()} == b.per_category


def test_stat_names_order() -> None:
    assert STAT_NAMES[:3] == ("AP", "AP50", "AP75") and len(STAT_NAMES) == 12


def test_pr_curve_equals_per_threshold_searchsorted() -> None:
    """The one-search precision curve equals the official per-IoU-threshold searchsorted on rc."""
    from benchmark.evaluation import ytvis_eval as ye

    rng = np.random.default_rng(7)
    for _ in range(500):
        T, nd, npig = 10, int(rng.integers(0, 60)), int(rng.integers(1, 300))
        dtm = rng.random((T, nd)) < rng.random()
        dtig = rng.random((T, nd)) < 0.1 * rng.random()
        q, rc = ye._pr_curve(dtm, dtig, npig)
        tp = np.cumsum(dtm & ~dtig, axis=1).astype(float)
        fp = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
        r = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        want = np.zeros((T, len(ye.REC_THRS)))
        if nd:
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            for t in range(T):
                inds = np.searchsorted(r[t], ye.REC_THRS, side="left")
                ok = inds < nd
                want[t, ok] = pr[t, inds[ok]]
        np.testing.assert_array_equal(q, want)
        np.testing.assert_array_equal(rc, r[:, -1] if nd else np.zeros(T))
