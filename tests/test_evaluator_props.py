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


def _official_accumulate(mt: Any, n_cats: int, A: int) -> tuple[np.ndarray, np.ndarray]:
    """ytvoseval.accumulate's loops over the units (evalImgs) of a Matches."""
    from benchmark.evaluation import ytvis_eval as ye

    T, R, M = len(ye.IOU_THRS), len(ye.REC_THRS), len(ye.MAX_DETS)
    precision, recall = -np.ones((T, R, n_cats, A, M)), -np.ones((T, n_cats, A, M))
    for k in range(n_cats):
        units = [u for u in range(len(mt.unit_cat)) if mt.unit_cat[u] == k]  # ascending video
        for a in range(A):
            for m, max_det in enumerate(ye.MAX_DETS):
                if not units:
                    continue
                ds = [np.arange(mt.det_start[u], mt.det_start[u + 1])[:max_det] for u in units]
                dets = np.concatenate(ds) if ds else np.zeros(0, np.int64)
                inds = np.argsort(-mt.det_score[dets], kind="mergesort")
                dtm, dtig = mt.dtm[dets][inds][:, a].T, mt.dtig[dets][inds][:, a].T  # [T, D]
                gtig = np.concatenate([mt.gtig[mt.gt_start[u] : mt.gt_start[u + 1], a] for u in units])
                npig = np.count_nonzero(gtig == 0)
                if npig == 0:
                    continue
                tp_sum = np.cumsum(dtm & ~dtig, axis=1).astype(float)
                fp_sum = np.cumsum(~dtm & ~dtig, axis=1).astype(float)
                for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum, strict=True)):
                    nd = len(tp)
                    rc = tp / npig
                    pr = (tp / (fp + tp + np.spacing(1))).tolist()
                    q = [0.0] * R
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    for ri, pi in enumerate(np.searchsorted(rc, ye.REC_THRS, side="left")):
                        if pi >= nd:
                            break
                        q[ri] = pr[pi]
                    precision[t, :, k, a, m] = q
    return precision, recall


def test_accumulate_equals_the_official_loops() -> None:
    """The C accumulate against a transcription of the official one: random matches with score ties
    across and within videos, ignored predictions, more than 10 predictions per unit."""
    from benchmark.evaluation import ytvis_eval as ye

    rng = np.random.default_rng(3)
    for trial in range(20):
        K, A, V, T = 4, 4, 6, len(ye.IOU_THRS)
        unit_cat, unit_video, n_det, n_gt = [], [], [], []
        for k in range(K):
            for v in range(V):
                if rng.random() < 0.6:
                    unit_cat.append(k)
                    unit_video.append(v)
                    n_det.append(int(rng.integers(0, 14)))
                    n_gt.append(int(rng.integers(0, 4)))
        det_start, gt_start = np.r_[0, np.cumsum(n_det)], np.r_[0, np.cumsum(n_gt)]
        N, G = int(det_start[-1]), int(gt_start[-1])
        score = np.concatenate(
            [np.sort(rng.choice([0.1, 0.5, 0.5, 0.9, rng.random()], n))[::-1] for n in n_det]
        )
        mt = ye.Matches(
            unit_video=np.array(unit_video), unit_cat=np.array(unit_cat, dtype=np.int64), det_start=det_start,
            det_pred=np.arange(N), det_rank=np.concatenate([np.arange(n) for n in n_det]).astype(np.int64),
            det_score=score, dtm=rng.random((N, A, T)) < 0.5, dtig=rng.random((N, A, T)) < 0.15 * (trial % 3),
            gt_start=gt_start, gt_row=np.arange(G), gtig=rng.random((G, A)) < 0.3,
            gtm=np.zeros((G, A, T), dtype=bool), ious=[], warnings=[],
        )  # fmt: skip
        acc = ye.accumulate(mt, K, A)
        precision, recall = _official_accumulate(mt, K, A)
        np.testing.assert_array_equal(acc.precision, precision)
        np.testing.assert_array_equal(acc.recall, recall)


def _official_greedy(
    ious: np.ndarray, ig: np.ndarray, crowd: np.ndarray, gid: np.ndarray, thrs: np.ndarray
) -> tuple:
    """ytvoseval.evaluateVid's loop for one unit and range (GT sorted regular first, stable)."""
    order = np.argsort(ig, kind="mergesort")
    D, T = ious.shape[0], len(thrs)
    gtm = np.zeros((T, len(order)), dtype=bool)
    dtm = np.zeros((T, D), dtype=bool)
    dtig = np.zeros((T, D), dtype=bool)
    for t, thr in enumerate(thrs):
        for d in range(D):
            iou, m = min(thr, 1 - 1e-10), -1
            for gi, g in enumerate(order):
                if gtm[t, gi] and not crowd[g]:
                    continue
                if m > -1 and not ig[order[m]] and ig[g]:
                    break
                if ious[d, g] < iou:
                    continue
                iou, m = ious[d, g], gi
            if m == -1:
                continue
            dtig[t, d] = ig[order[m]]
            dtm[t, d] = gid[order[m]]
            gtm[t, m] = True
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return dtm.T, dtig.T, gtm[:, back].T


def test_match_kernel_equals_the_official_loop() -> None:
    """The C greedy matcher against a transcription of the official loop: ties (the later GT wins),
    crowd GT matched again, ignored GT only when no regular one qualifies, GT ids of 0."""
    from benchmark.evaluation import rle
    from benchmark.evaluation.ytvis_eval import _THR_EFF

    rng = np.random.default_rng(1)
    A = 3
    units = []
    for _ in range(300):
        D, G = int(rng.integers(0, 6)), int(rng.integers(0, 5))
        ious = rng.choice([0.0, 0.5, 0.55, 0.7, 0.8999999999999999, 0.9, 0.95, 1.0, 0.62], size=(D, G))
        units.append((ious, rng.random((G, A)) < 0.3, rng.random(G) < 0.2, rng.random(G) < 0.9))
    det_start = np.r_[0, np.cumsum([u[0].shape[0] for u in units])]
    gt_start = np.r_[0, np.cumsum([u[0].shape[1] for u in units])]
    got = rle.match(
        np.concatenate([u[0].ravel() for u in units]), det_start, gt_start,
        np.concatenate([u[1] for u in units]), np.concatenate([u[2] for u in units]),
        np.concatenate([u[3] for u in units]), _THR_EFF,
    )  # fmt: skip
    for k, (ious, ig, crowd, gid) in enumerate(units):
        ds, gs = slice(det_start[k], det_start[k + 1]), slice(gt_start[k], gt_start[k + 1])
        for a in range(A):
            dtm, dtig, gtm = _official_greedy(ious, ig[:, a], crowd, gid, np.linspace(0.5, 0.95, 10))
            np.testing.assert_array_equal(got.dtm[ds, a], dtm)
            np.testing.assert_array_equal(got.dtig[ds, a], dtig)
            np.testing.assert_array_equal(got.gtm[gs, a], gtm)
