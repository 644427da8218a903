"""Ground truth and predictions as flat track tables for the evaluator.

Mirrors what the official loader (``ytvos.py`` ``createIndex``/``loadRes`` and ``_prepare``) keeps:
videos and categories of the GT file (ids ascending), GT tracks and predictions of those videos and
categories only, per-frame compressed RLEs (``None`` when absent), per-frame pixel counts and the
track's average area. See :mod:`benchmark.evaluation.ytvis_eval` for the quirks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.masks import to_compressed_rle

__all__ = ["GTTable", "PredTable", "build_gt", "build_preds"]

OCC_SCORE = {"no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75}
_AREA_CHUNK = 255


def _areas(rles: list[Any]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    out = np.zeros(len(rles), dtype=np.int64)
    for i in range(0, len(rles), _AREA_CHUNK):
        out[i : i + _AREA_CHUNK] = mask_utils.area(rles[i : i + _AREA_CHUNK])
    return out


@dataclass
class GTTable:
    video_ids: np.ndarray  # [V] ascending
    video_len: np.ndarray  # [V]
    video_hw: np.ndarray  # [V, 2]
    cat_ids: np.ndarray  # [K] ascending
    video: np.ndarray  # [G] video index
    cat: np.ndarray  # [G] category index
    ids: np.ndarray  # [G] annotation id
    crowd: np.ndarray  # [G] bool (also "ignore")
    avg_area: np.ndarray  # [G] from the ``areas`` field
    occ_score: np.ndarray  # [G] OVIS occlusion score (0 without labels)
    length: np.ndarray  # [G] number of per-frame entries
    frames: list[list[Any]]  # per track, per frame: compressed RLE or None
    flat_area: np.ndarray  # per-frame pixel counts of all tracks, concatenated (0 when absent)
    area_offset: np.ndarray  # [G] start of each track in flat_area
    flat_cum: np.ndarray  # prefix sums of flat_area, with a leading 0
    regular: np.ndarray  # [G] every present frame has the video's size
    has_occlusion: bool  # every track carries usable occlusion labels (OVIS)

    @property
    def vid_index(self) -> dict[int, int]:
        return {int(v): i for i, v in enumerate(self.video_ids)}

    @property
    def cat_index(self) -> dict[int, int]:
        return {int(c): i for i, c in enumerate(self.cat_ids)}


@dataclass
class PredTable:
    video: np.ndarray  # [P] video index
    cat: np.ndarray  # [P] category index
    score: np.ndarray  # [P] float64
    avg_area: np.ndarray  # [P]
    length: np.ndarray  # [P]
    frames: list[list[Any]]
    flat_area: np.ndarray
    area_offset: np.ndarray
    flat_cum: np.ndarray
    regular: np.ndarray  # [P]
    entry: np.ndarray  # [P] index in the results list
    n_dropped_category: int = 0


def _flat_areas(
    frames_all: list[list[Any]], present: list[list[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame pixel counts of all tracks, flattened: (flat_area, offset per track, prefix sums
    [total + 1], track of each present frame's area in ``flat_area`` order of presence)."""
    lengths = np.fromiter((len(f) for f in frames_all), dtype=np.int64, count=len(frames_all))
    offset = np.zeros(len(frames_all) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    flat = [frames_all[t][f] for t, fs in enumerate(present) for f in fs]
    pos = np.fromiter(
        (offset[t] + f for t, fs in enumerate(present) for f in fs), dtype=np.int64, count=len(flat)
    )
    flat_area = np.zeros(int(offset[-1]), dtype=np.int64)
    flat_area[pos] = _areas(flat)
    cum = np.zeros(len(flat_area) + 1, dtype=np.int64)
    np.cumsum(flat_area, out=cum[1:])
    return flat_area, offset[:-1], cum, lengths


def build_gt(data: dict[str, Any]) -> GTTable:
    """Index a parsed (already validated) GT file like the official ``YTVOS`` + ``_prepare``."""
    videos = {int(v["id"]): v for v in data["videos"]}
    vids = np.array(sorted(videos), dtype=np.int64)
    vid_index = {int(v): i for i, v in enumerate(vids)}
    cat_ids = np.array(sorted({int(c["id"]) for c in data["categories"]}), dtype=np.int64)
    cat_index = {int(c): i for i, c in enumerate(cat_ids)}
    anns = [
        a for a in (data.get("annotations") or [])
        if a["video_id"] in vid_index and a["category_id"] in cat_index
    ]  # fmt: skip
    # official order: by video (ascending id), then file order
    anns.sort(key=lambda a: vid_index[a["video_id"]])
    video_len = np.array([int(videos[int(v)].get("length") or 0) for v in vids], dtype=np.int64)
    video_hw = np.array(
        [[int(videos[int(v)]["height"]), int(videos[int(v)]["width"])] for v in vids], np.int64
    )
    frames_all: list[list[Any]] = []
    present: list[list[int]] = []
    regular = np.ones(len(anns), dtype=bool)
    avg = np.zeros(len(anns))
    occ = np.zeros(len(anns))
    has_occ = bool(anns)
    for t, a in enumerate(anns):
        vi = vid_index[a["video_id"]]
        h, w = int(video_hw[vi, 0]), int(video_hw[vi, 1])
        frames: list[Any] = []
        fs = []
        for f, s in enumerate(a["segmentations"]):
            if s:  # truthy = present (official ``if a:``)
                r = to_compressed_rle(s, h, w)
                frames.append(r)
                fs.append(f)
                if r["size"][0] != h or r["size"][1] != w:
                    regular[t] = False
            else:
                frames.append(None)
        frames_all.append(frames)
        present.append(fs)
        # avg_area from the ``areas`` field, never from the masks; None and 0 are skipped
        vals = [x for x in (a.get("areas") or []) if x]
        avg[t] = np.array(vals).mean() if vals else 0
        labels = a.get("occlusion")
        scores = [OCC_SCORE[x] for x in labels if x is not None] if isinstance(labels, list) else []
        if scores:
            scores.sort()
            top = scores[-math.ceil(len(scores) / 2) :]  # the fork: mean of the top half
            occ[t] = sum(top) / len(top)
        else:
            has_occ = False
    flat_area, offset, cum, _ = _flat_areas(frames_all, present)
    return GTTable(
        video_ids=vids, video_len=video_len, video_hw=video_hw, cat_ids=cat_ids,
        video=np.array([vid_index[a["video_id"]] for a in anns], dtype=np.int64),
        cat=np.array([cat_index[a["category_id"]] for a in anns], dtype=np.int64),
        ids=np.array([a.get("id", 0) for a in anns], dtype=np.int64),
        crowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
        avg_area=avg, occ_score=occ,
        length=np.array([len(f) for f in frames_all], dtype=np.int64),
        frames=frames_all, flat_area=flat_area, area_offset=offset, flat_cum=cum, regular=regular,
        has_occlusion=has_occ,
    )  # fmt: skip


def build_preds(entries: list[dict[str, Any]], gt: GTTable, keep: list[int] | None = None) -> PredTable:
    """Index (already validated) result entries of GT videos and categories.

    ``keep`` restricts to these entry indices (lenient mode drops unknown videos); entries whose
    category is not a GT category are dropped silently, as the official evaluator does.
    """
    vid_index = gt.vid_index
    cat_index = gt.cat_index
    hw = gt.video_hw
    idx = range(len(entries)) if keep is None else keep
    rows: list[int] = []
    dropped = 0
    for i in idx:
        e = entries[i]
        if e["category_id"] in cat_index:
            rows.append(i)
        else:
            dropped += 1
    n = len(rows)
    video = np.empty(n, dtype=np.int64)
    cat = np.empty(n, dtype=np.int64)
    score = np.empty(n, dtype=np.float64)
    regular = np.ones(n, dtype=bool)
    frames_all: list[list[Any]] = []
    present: list[list[int]] = []
    for t, i in enumerate(rows):
        e = entries[i]
        vi = vid_index[e["video_id"]]
        video[t] = vi
        cat[t] = cat_index[e["category_id"]]
        score[t] = e["score"]
        segs = e["segmentations"]
        fs = [f for f, s in enumerate(segs) if s]
        frames: list[Any] = [s if s else None for s in segs]
        h, w = hw[vi]
        for f in fs:
            sz = frames[f]["size"]
            if sz[0] != h or sz[1] != w:
                regular[t] = False
                break
        frames_all.append(frames)
        present.append(fs)
    flat_area, offset, cum, lengths = _flat_areas(frames_all, present)
    # official: mean of the truthy (non-zero) areas over *all* frames; integer sums are exact
    track = np.repeat(np.arange(n), lengths)
    nz = flat_area > 0
    cnt = np.bincount(track[nz], minlength=n)
    tot = np.bincount(track[nz], weights=flat_area[nz], minlength=n)
    avg = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
    return PredTable(
        video=video, cat=cat, score=score, avg_area=avg,
        length=np.array([len(f) for f in frames_all], dtype=np.int64),
        frames=frames_all, flat_area=flat_area, area_offset=offset, flat_cum=cum, regular=regular,
        entry=np.array(rows, dtype=np.int64), n_dropped_category=dropped,
    )  # fmt: skip
