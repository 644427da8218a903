"""The YouTube-VIS / OVIS evaluator: video AP and AR, equal to the official leaderboard code.

Every number the suite publishes passes through here. The reference is the official evaluator
(youtubevos/cocoapi ``ytvoseval.py``; the OVIS leaderboard's fork adds occlusion ranges); this is an
independent, vectorised implementation that reproduces its numbers to the last bit on well-formed
input (the fixtures under ``tests/fixtures/evaluator`` pin that down) and is many times faster.

Pipeline (one pass, no per-threshold Python loops):

1. :mod:`benchmark.evaluation.loading` turns the GT file and the results into flat track tables.
2. :func:`track_ious` computes the exact integer intersection and union of every (prediction, GT)
   track pair of the same video and category, frame by frame, with the C kernels of
   :mod:`benchmark.evaluation.rle` (each RLE string decoded once for its area when it is read; then
   each GT mask once into intervals, and each prediction mask streamed against those of its pairs).
3. :func:`match` runs COCO's greedy matching for all (video, category) units, area/occlusion ranges
   and IoU thresholds at once, one step per prediction rank.
4. :func:`accumulate` builds precision/recall per (category, range, maxDets) and :func:`summarize`
   averages them into the 12 (YTVIS) or 18 (OVIS) statistics.

Parameters and array dimensions (the official names)::

    T = 10   IOU_THRS = linspace(.5, .95, 10)   (0.8999999999999999, not 0.9: linspace rounding)
    R = 101  REC_THRS = linspace(0, 1, 101)     (10 values one ulp above i/100, e.g. 0.35000000000000003)
    K        categories: the GT file's ``categories`` ids, ascending
    A        ranges: 4 area ranges (all, small, medium, large) [+ 3 occlusion ranges for OVIS]
    M = 3    MAX_DETS = (1, 10, 100) predictions per video *and category*
    precision[T, R, K, A, M], recall[T, K, A, M]; -1 where a (category, range) has no GT to recall.

Official quirks reproduced on purpose (the leaderboard numbers depend on them):

* Predictions of a (video, category) are stable-sorted by score (ties: results-file order) and cut
  to 100 per video *and category*.
* Track IoU = sum over frames of |D & G| / sum of |D | G| with integer pixel counts (one division),
  over ``zip(d_frames, g_frames)``: a shorter prediction ignores the GT's later frames, a longer one's
  extra frames are ignored (they still count for its area). A frame whose masks differ in size adds 0
  to both sums. A union of 0 gives IoU 0. An all-zero RLE behaves like a null frame.
* iscrowd is not used in the IoU (no intersection-over-detection): crowd GT only means "ignored",
  and it can absorb any number of predictions. An ``ignore`` field in GT is overwritten by iscrowd.
* Greedy matching: a match needs IoU >= t (inclusive; t capped at 1 - 1e-10); among equal IoUs the
  later GT (file order) wins; regular GT are preferred to ignored GT.
* Area ranges have closed bounds on both sides (16384 is small *and* medium). GT area = mean of the
  truthy entries of its ``areas`` field (None and 0 skipped, np.mean); prediction area = mean of its
  non-zero per-frame pixel counts over *all* its frames.
* Accumulation concatenates videos in ascending id order and stable-sorts by score, so ties across
  videos are ordered by video id, then by rank. Precision = tp / (tp + fp + np.spacing(1)), a perfect
  AP is 0.9999999999999998. Recall points use searchsorted(side='left'): a recall of exactly 7/20 does
  not reach the 0.35000000000000003 threshold. Undefined entries (-1) are left out of the means.
* Category ids not in the GT ``categories`` are dropped (results and GT alike).
* OVIS: occlusion score = mean of the top ceil(n/2) per-frame scores (0 / 0.25 / 0.75); ranges
  light [0, .25], medium [.25, .5], heavy [.5, 1], closed bounds; only GT is filtered by occlusion.
Not reproduced: input on which the official code hangs or reads out of bounds. A results RLE
string with a negative run, runs not summing to H*W, an invalid character or a truncated number is
an InputError in strict *and* lenient mode (pycocotools' merge/iou loops never end on the first two
as soon as the mask meets a GT mask of its size; it reads past the string on the others).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from benchmark.evaluation import rle as rle_kernels
from benchmark.evaluation.loading import GTTable, MaskStore, PredTable, sorted_unique

__all__ = [
    "AREA_RNG",
    "IOU_THRS",
    "MAX_DETS",
    "OCC_RNG",
    "OVIS_STAT_NAMES",
    "REC_THRS",
    "STAT_NAMES",
    "Accumulated",
    "Matches",
    "accumulate",
    "match",
    "summarize",
    "track_ious",
]

log = logging.getLogger(__name__)

IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RNG = ((0.0, 1e10), (0.0, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e10))
OCC_RNG = ((0.0, 1.0), (0.0, 0.25), (0.25, 0.5), (0.5, 1.0))
# The iou cap of the official matching: min(t, 1 - 1e-10).
_THR_EFF = np.minimum(IOU_THRS, 1 - 1e-10)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
OVIS_STAT_NAMES = (
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AP_light", "AP_medium", "AP_heavy",
    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl", "AR_light", "AR_medium", "AR_heavy",
)  # fmt: skip

#: (area range, occlusion range) per range index. YTVIS uses the first 4, OVIS all 7.
RANGES = tuple((a, OCC_RNG[0]) for a in AREA_RNG) + tuple((AREA_RNG[0], o) for o in OCC_RNG[1:])
# ----------------------------------------------------------------------------------------------
# 2. track IoUs


def track_ious(gt: GTTable, dt: PredTable, keep: np.ndarray) -> PairIoU:
    """Exact intersections of every kept prediction with every GT track of its video and category.

    All (prediction, GT) track pairs of the same video and category are expanded to their zipped
    frames (``f < min(len_d, len_g)``) where both masks are present; each such mask pair's
    intersection is an exact integer count from the C kernel (:func:`rle.intersect`, skipped when
    the first/last foreground pixels show no overlap). Frames whose mask sizes differ add 0 to both
    sums (official ``rleMerge`` of different sizes); a mask the C scan does not accept goes through
    pycocotools' ``iou`` like the official code. Unions come from per-frame area prefix sums.
    """
    n_g = len(gt.video)
    d_rows = np.flatnonzero(keep)
    # candidate track pairs: same video and category
    g_key = gt.video * (1 << 20) + gt.cat
    d_key = dt.video[d_rows] * (1 << 20) + dt.cat[d_rows]
    g_order = np.argsort(g_key, kind="stable")
    gk = g_key[g_order]
    lo = np.searchsorted(gk, d_key, side="left")
    hi = np.searchsorted(gk, d_key, side="right")
    n_partners = hi - lo
    pd_t = np.repeat(d_rows, n_partners)
    first = np.repeat(lo - np.cumsum(n_partners) + n_partners, n_partners)
    pg_t = g_order[np.arange(len(pd_t)) + first] if len(pd_t) else np.zeros(0, np.int64)
    # zipped frames of each track pair
    zl = np.minimum(dt.length[pd_t], gt.length[pg_t])
    pair = np.repeat(np.arange(len(pd_t)), zl)
    f = np.arange(len(pair)) - np.repeat(np.cumsum(zl) - zl, zl)
    sd = dt.slot_mask[dt.area_offset[pd_t[pair]] + f] if len(pair) else np.zeros(0, np.int64)
    sg = gt.slot_mask[gt.area_offset[pg_t[pair]] + f] if len(pair) else np.zeros(0, np.int64)
    both = (sd >= 0) & (sg >= 0)
    pair, sd, sg = pair[both], sd[both], sg[both]
    dm, gm = dt.masks, gt.masks
    a_d, a_g = dm.areas[sd], gm.areas[sg]
    inter = np.zeros(len(pair), dtype=np.int64)
    mism = np.zeros(len(pair), dtype=np.int64)
    same = (dm.height[sd] == gm.height[sg]) & (dm.width[sd] == gm.width[sg])
    # official: rleMerge of masks of different sizes is empty -> the frame adds 0 to both sums
    mism[~same] = (a_d + a_g)[~same]
    odd = same & ((dm.codes[sd] != 0) | (gm.codes[sg] != 0))
    for k in np.flatnonzero(odd).tolist():
        inter[k] = _pycoco_inter(dm, int(sd[k]), gm, int(sg[k]), int(a_d[k]))
    overlap = same & ~odd & (dm.first[sd] < gm.end[sg]) & (gm.first[sg] < dm.end[sd])
    ov = np.flatnonzero(overlap)
    ov = ov[np.argsort(sg[ov], kind="stable")]  # pairs of one GT mask in a row: it is decoded once
    inter[ov] = rle_kernels.intersect(
        dm.counts, gm.counts, sd[ov], sg[ov], np.minimum(dm.end[sd[ov]], gm.end[sg[ov]])
    )
    keys = pd_t * n_g + pg_t
    order = np.argsort(keys)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    n_p = len(keys)
    return PairIoU(
        keys=keys[order],
        inter=np.bincount(rank[pair], weights=inter, minlength=n_p).astype(np.int64),
        mismatch=np.bincount(rank[pair], weights=mism, minlength=n_p).astype(np.int64),
        n_gt=n_g,
    )


def _pycoco_inter(dm: MaskStore, i: int, gm: MaskStore, j: int, a_d: int) -> int:
    """|D & G| as the official code gets it from pycocotools (for masks the C scan rejects):
    ``iou`` with iscrowd=1 is |D & G| / |D|, a correctly rounded ratio of integers < 2**32."""
    d = {"size": [int(dm.height[i]), int(dm.width[i])], "counts": dm.counts[i]}
    g = {"size": [int(gm.height[j]), int(gm.width[j])], "counts": gm.counts[j]}
    o = float(np.asarray(mask_utils.iou([d], [g], [1])).ravel()[0])
    return int(np.rint(max(o, 0.0) * a_d))


@dataclass
class PairIoU:
    """Integer sums per (prediction row, GT row) pair with co-present frames (sorted keys)."""

    keys: np.ndarray  # d_row * n_gt + g_row, ascending
    inter: np.ndarray  # sum of |D & G| over the zipped frames
    mismatch: np.ndarray  # sum of |D| + |G| over frames whose mask sizes differ
    n_gt: int

    def ious(self, gt: GTTable, dt: PredTable, d: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IoU of pairs (``d``, ``g`` row arrays of one shape) and whether the union was 0."""
        key = d * self.n_gt + g
        pos = np.searchsorted(self.keys, key)
        pos_c = np.minimum(pos, max(len(self.keys) - 1, 0))
        found = (
            (pos < len(self.keys)) & (self.keys[pos_c] == key)
            if len(self.keys)
            else np.zeros(key.shape, bool)
        )
        inter = np.where(found, self.inter[pos_c] if len(self.keys) else 0, 0)
        mism = np.where(found, self.mismatch[pos_c] if len(self.keys) else 0, 0)
        zl = np.minimum(dt.length[d], gt.length[g])  # zip truncation
        od, og = dt.area_offset[d], gt.area_offset[g]
        union = (
            (dt.flat_cum[od + zl] - dt.flat_cum[od]) + (gt.flat_cum[og + zl] - gt.flat_cum[og]) - inter - mism
        )
        zero = union <= 0
        return np.where(zero, 0.0, inter / np.where(zero, 1, union)), zero


def _group(keys: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    cuts = np.flatnonzero(np.diff(k)) + 1
    return {int(k[s]): values[order[s:e]] for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(k)], strict=True)}


# ----------------------------------------------------------------------------------------------
# 3. matching


@dataclass
class Matches:
    """Per-(video, category) matching results, flattened.

    Units are the (video, category) pairs with GT or predictions (the official ``evalImgs`` that are
    not None), ordered by category, then video. Predictions of a unit are in score order.

    Attributes:
        unit_video, unit_cat: [U] video index and category index of each unit.
        det_start: [U + 1] offsets of each unit's predictions in the flat prediction arrays.
        det_pred: [N] row in the prediction table; det_rank: [N] rank within the unit.
        det_score: [N] scores.
        dtm: [N, A, T] matched (to a GT with a non-zero id), dtig: [N, A, T] ignored.
        gt_start: [U + 1] offsets of each unit's GT; gt_row: [G] row in the GT table.
        gtig: [G, A] ignored GT per range; gtm: [G, A, T] matched.
        ious: per unit [D_u, G_u] IoU matrix (predictions in score order, GT in file order).
    """

    unit_video: np.ndarray
    unit_cat: np.ndarray
    det_start: np.ndarray
    det_pred: np.ndarray
    det_rank: np.ndarray
    det_score: np.ndarray
    dtm: np.ndarray
    dtig: np.ndarray
    gt_start: np.ndarray
    gt_row: np.ndarray
    gtig: np.ndarray
    gtm: np.ndarray
    ious: list[np.ndarray]
    warnings: list[str]


def match(gt: GTTable, dt: PredTable, order: np.ndarray, pairs: PairIoU, n_ranges: int) -> Matches:
    """COCO's greedy matching for every unit, range and threshold at once.

    Args:
        order: the kept predictions (top 100 per video and category) in (category, video, score
            rank) order.
        pairs: :func:`track_ious` output.
        n_ranges: 4 (YTVIS) or 7 (with OVIS occlusion ranges).
    """
    A = n_ranges
    # units: (cat, video) of GT and of kept predictions
    g_key = gt.cat.astype(np.int64) * (1 << 32) + gt.video
    d_key = dt.cat[order].astype(np.int64) * (1 << 32) + dt.video[order]
    keys = sorted_unique(np.concatenate([g_key, d_key]))
    U = len(keys)
    unit_cat = (keys >> 32).astype(np.int64)
    unit_video = (keys & 0xFFFFFFFF).astype(np.int64)
    d_unit = np.searchsorted(keys, d_key)  # non-decreasing: ``order`` is sorted by (cat, video)
    g_order = np.lexsort((np.arange(len(g_key)), g_key))  # by unit, then file order
    g_unit = np.searchsorted(keys, g_key[g_order])
    det_start = np.searchsorted(d_unit, np.arange(U + 1))
    gt_start = np.searchsorted(g_unit, np.arange(U + 1))
    n_det = np.diff(det_start)
    n_gt = np.diff(gt_start)
    det_rank = np.arange(len(order)) - det_start[d_unit]

    # ignore flags per GT and range (official: ignore = iscrowd; then area / occlusion range)
    g_rows = g_order
    gtig = np.zeros((len(g_rows), A), dtype=bool)
    for a in range(A):
        (alo, ahi), (olo, ohi) = RANGES[a]
        ar, oc = gt.avg_area[g_rows], gt.occ_score[g_rows]
        gtig[:, a] = gt.crowd[g_rows] | (ar < alo) | (ar > ahi) | (oc < olo) | (oc > ohi)
    crowd = gt.crowd[g_rows]
    gid_nz = gt.ids[g_rows] != 0  # official stores the GT id as the match: an id of 0 reads "unmatched"

    # every unit's [D_u, G_u] IoU matrix (predictions in score order, GT in file order), flat
    n_pair = n_det * n_gt
    pair_start = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(n_pair, out=pair_start[1:])
    pu = np.repeat(np.arange(U), n_pair)
    k = np.arange(int(pair_start[-1])) - pair_start[pu]
    rr, jj = np.divmod(k, np.maximum(n_gt[pu], 1))
    vals, zero = pairs.ious(gt, dt, order[det_start[pu] + rr], g_rows[gt_start[pu] + jj])
    warnings = [
        f"Mask sizes in video {gt.video_ids[unit_video[u]]} and category {gt.cat_ids[unit_cat[u]]} may not match!"
        for u in pu[zero].tolist()
    ]
    ious = [vals[s:e].reshape(d, g) for s, e, d, g in
            zip(pair_start[:-1].tolist(), pair_start[1:].tolist(), n_det.tolist(), n_gt.tolist(), strict=True)]  # fmt: skip
    out = rle_kernels.match(vals, det_start, gt_start, gtig, crowd, gid_nz, _THR_EFF)
    dtm, dtig, gtm = out.dtm, out.dtig, out.gtm
    # unmatched predictions outside the area range are ignored
    d_area = dt.avg_area[order]
    for a in range(A):
        alo, ahi = RANGES[a][0]
        out_rng = (d_area < alo) | (d_area > ahi)
        dtig[:, a, :] |= ~dtm[:, a, :] & out_rng[:, None]
    return Matches(
        unit_video=unit_video, unit_cat=unit_cat, det_start=det_start, det_pred=order,
        det_rank=det_rank, det_score=dt.score[order], dtm=dtm, dtig=dtig, gt_start=gt_start,
        gt_row=g_rows, gtig=gtig, gtm=gtm, ious=ious, warnings=warnings,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# 4. accumulate / summarize


@dataclass
class Accumulated:
    precision: np.ndarray  # [T, R, K, A, M]
    recall: np.ndarray  # [T, K, A, M]


def accumulate(mt: Matches, n_cats: int, n_ranges: int) -> Accumulated:
    """Precision at the recall thresholds and final recall, per category, range and maxDets (the
    official loops, in C: :func:`rle.accumulate`)."""
    # regular GT per (category, range)
    g_unit = np.repeat(np.arange(len(mt.unit_cat)), np.diff(mt.gt_start))
    npig = np.zeros((n_cats, n_ranges), dtype=np.int64)
    if len(g_unit):
        np.add.at(npig, mt.unit_cat[g_unit], ~mt.gtig)
    d_unit = np.repeat(np.arange(len(mt.unit_cat)), np.diff(mt.det_start))
    d_cat = mt.unit_cat[d_unit] if len(d_unit) else np.zeros(0, np.int64)
    # the official concatenates a category's videos in ascending id order (the order of the units)
    # and stable-sorts by score: ties keep (video, rank) order
    order = np.lexsort((-mt.det_score, d_cat))
    cat_start = np.searchsorted(d_cat, np.arange(n_cats + 1))
    precision, recall = rle_kernels.accumulate(
        mt.dtm, mt.dtig, order, cat_start, mt.det_rank, npig, np.array(MAX_DETS), REC_THRS
    )
    return Accumulated(precision, recall)


def _mean_defined(s: np.ndarray) -> float:
    d = s[s > -1]
    return float(np.mean(d)) if d.size else -1.0


def summarize(acc: Accumulated, *, ovis: bool = False, cat: int | None = None) -> dict[str, float]:
    """The official summary statistics (12, or 18 with occlusion ranges), optionally one category."""
    p, r = acc.precision, acc.recall
    if cat is not None:
        p, r = p[:, :, cat : cat + 1], r[:, cat : cat + 1]
    t50 = int(np.flatnonzero(IOU_THRS == 0.5)[0])
    t75 = int(np.flatnonzero(IOU_THRS == 0.75)[0])

    def ap(a: int = 0, m: int = 2, t: int | None = None) -> float:
        s = p[:, :, :, a, m] if t is None else p[t : t + 1, :, :, a, m]
        return _mean_defined(s)

    def ar(a: int = 0, m: int = 2) -> float:
        return _mean_defined(r[:, :, a, m])

    out = {
        "AP": ap(), "AP50": ap(t=t50), "AP75": ap(t=t75), "APs": ap(1), "APm": ap(2), "APl": ap(3),
    }  # fmt: skip
    if ovis:
        out.update({"AP_light": ap(4), "AP_medium": ap(5), "AP_heavy": ap(6)})
    out.update({"AR1": ar(m=0), "AR10": ar(m=1), "AR100": ar(), "ARs": ar(1), "ARm": ar(2), "ARl": ar(3)})
    if ovis:
        out.update({"AR_light": ar(4), "AR_medium": ar(5), "AR_heavy": ar(6)})
    return out
