"""Seeded bootstrap confidence interval of AP over videos.

Videos are resampled with replacement; a video drawn twice counts as two distinct videos (its
predictions and GT appear twice, ordered as two consecutive videos). The per-video matching does not
depend on the resample, so only the accumulation is redone: predictions are expanded per resample
and the precision/recall curves are rebuilt for all IoU thresholds at once. With every video drawn
exactly once this gives the evaluator's AP bit for bit (tested).
"""

from __future__ import annotations

import numpy as np

from benchmark.evaluation.ytvis_eval import IOU_THRS, REC_THRS, Matches

__all__ = ["ap_for_counts", "bootstrap_ap"]


class _CatData:
    """Predictions of one category (area range 'all', maxDets 100) grouped by video."""

    def __init__(self, mt: Matches, k: int, n_videos: int) -> None:
        units = np.flatnonzero(mt.unit_cat == k)
        starts, ends = mt.det_start[units], mt.det_start[units + 1]
        vids = mt.unit_video[units]
        has = ends > starts
        self.block_video = vids[has]
        self.block_start = starts[has]
        self.block_len = (ends - starts)[has]
        idx = np.concatenate(
            [np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [np.zeros(0, int)]
        )
        self.score = mt.det_score[idx]
        ok = ~mt.dtig[idx, 0, :]  # [n, T]
        self.tp = (mt.dtm[idx, 0, :] & ok).T.astype(np.int64)  # [T, n]
        self.fp = (~mt.dtm[idx, 0, :] & ok).T.astype(np.int64)
        # local offsets of blocks in ``idx`` order
        self.local_start = (
            np.r_[0, np.cumsum(self.block_len)[:-1]] if len(self.block_len) else np.zeros(0, int)
        )
        npig = np.zeros(n_videos, dtype=np.int64)
        g_units = np.repeat(units, np.diff(mt.gt_start)[units])
        g_rows = np.concatenate(
            [np.arange(mt.gt_start[u], mt.gt_start[u + 1]) for u in units] or [np.zeros(0, int)]
        )
        np.add.at(npig, mt.unit_video[g_units], ~mt.gtig[g_rows, 0])
        self.npig_per_video = npig


def _first_reaching(npig: int) -> np.ndarray:
    """For each recall threshold, the smallest TP count c with c / npig >= thr (float compare,
    exactly as ``searchsorted(tp / npig, thr, 'left')`` decides)."""
    thr = REC_THRS
    c = np.ceil(thr * npig).astype(np.int64)
    for _ in range(2):
        c = np.where((c > 0) & ((c - 1) / npig >= thr), c - 1, c)
        c = np.where(c / npig < thr, c + 1, c)
    return c


def _cat_precision(cd: _CatData, counts: np.ndarray) -> np.ndarray | None:
    """[T, R] precision of one category for video multiplicities ``counts`` (None: no GT)."""
    npig = int(counts @ cd.npig_per_video)
    if npig == 0:
        return None
    T, R = len(IOU_THRS), len(REC_THRS)
    mult = counts[cd.block_video]
    rep = np.repeat(np.arange(len(mult)), mult)
    lens = cd.block_len[rep]
    n = int(lens.sum())
    if n == 0:
        return np.zeros((T, R))
    starts = cd.local_start[rep]
    idx = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(n)
    idx = idx[np.argsort(-cd.score[idx], kind="mergesort")]
    tpc = np.cumsum(cd.tp[:, idx], axis=1)
    fpc = np.cumsum(cd.fp[:, idx], axis=1)
    tp = tpc.astype(np.float64)
    pr = tp / (fpc + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    c = _first_reaching(npig)
    big = max(n, int(c.max())) + 1
    key = (tpc + (np.arange(T)[:, None] * big)).ravel()
    query = (c[None, :] + (np.arange(T)[:, None] * big)).ravel()
    pos = np.searchsorted(key, query, side="left").reshape(T, R) - (np.arange(T)[:, None] * n)
    ok = pos < n
    q = np.zeros((T, R))
    rows = np.broadcast_to(np.arange(T)[:, None], (T, R))
    q[ok] = pr[rows[ok], pos[ok]]
    return q


def ap_for_counts(cats: list[_CatData], counts: np.ndarray) -> float:
    """AP (area all, maxDets 100) of the dataset where video v appears ``counts[v]`` times."""
    T, R = len(IOU_THRS), len(REC_THRS)
    p = -np.ones((T, R, len(cats)))
    for k, cd in enumerate(cats):
        q = _cat_precision(cd, counts)
        if q is not None:
            p[:, :, k] = q
    d = p[p > -1]
    return float(np.mean(d)) if d.size else -1.0


def bootstrap_ap(mt: Matches, n_videos: int, n_cats: int, n: int, seed: int = 0) -> dict[str, float | int]:
    """Bootstrap AP over videos: ``n`` resamples with ``np.random.default_rng(seed)``.

    Returns n, seed, mean, std (ddof=1), p2.5 and p97.5 of the resampled APs (resamples without
    any GT are left out, counted in ``n_undefined``).
    """
    cats = [_CatData(mt, k, n_videos) for k in range(n_cats)]
    rng = np.random.default_rng(seed)
    aps = []
    undefined = 0
    for _ in range(n):
        counts = np.bincount(rng.integers(0, n_videos, n_videos), minlength=n_videos)
        ap = ap_for_counts(cats, counts)
        if ap < 0:
            undefined += 1
        else:
            aps.append(ap)
    a = np.array(aps)
    out: dict[str, float | int] = {"n": n, "seed": seed, "n_undefined": undefined}
    if a.size:
        out.update(
            mean=float(a.mean()), std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
            p2_5=float(np.percentile(a, 2.5)), p97_5=float(np.percentile(a, 97.5)),
        )  # fmt: skip
    return out
