"""Ground truth and predictions as flat track tables for the evaluator.

Mirrors what the official loader (``ytvos.py`` ``createIndex``/``loadRes`` and ``_prepare``) keeps:
videos and categories of the GT file (ids ascending), GT tracks and predictions of those videos and
categories only, per-frame compressed RLEs (``None`` when absent), per-frame pixel counts and the
track's average area. See :mod:`benchmark.evaluation.ytvis_eval` for the quirks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.evaluation import rle as rle_kernels
from benchmark.masks import to_compressed_rle

if TYPE_CHECKING:
    from benchmark.data.results import CheckedMasks

__all__ = ["GTTable", "MaskStore", "PredTable", "build_gt", "build_preds"]

OCC_SCORE = {"no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75}


@dataclass
class MaskStore:
    """The present masks of a table, each decoded once.

    Attributes:
        counts: [S] compressed-RLE strings.
        height, width: [S] each mask's own size.
        codes: [S] C scan codes (0: a valid RLE; else pycocotools defines the mask, see
            :mod:`benchmark.evaluation.rle`).
        areas: [S] pixel counts (pycocotools' where code != 0).
        first, end: [S] first foreground pixel and one past the last (0/0 where code != 0).
    """

    counts: rle_kernels.Strings
    height: np.ndarray
    width: np.ndarray
    codes: np.ndarray
    areas: np.ndarray
    first: np.ndarray
    end: np.ndarray

    @classmethod
    def build(cls, counts: rle_kernels.Strings, height: np.ndarray, width: np.ndarray,
              scan: rle_kernels.Scan | None = None) -> MaskStore:  # fmt: skip
        if scan is None:
            scan = rle_kernels.scan(counts, height * width)
        areas = scan.areas
        odd = np.flatnonzero(scan.codes != rle_kernels.RLE_OK)
        if len(odd):
            areas = areas.copy()
            hw = np.stack([height[odd], width[odd]], axis=1)
            areas[odd] = rle_kernels.pycoco_areas([counts[k] for k in odd.tolist()], hw)
        return cls(counts, height, width, scan.codes, areas, scan.first, scan.end)


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
    masks: MaskStore  # the present masks (compressed RLE; polygons and uncompressed RLE converted)
    slot_mask: np.ndarray  # per frame of all tracks, concatenated: index in ``masks`` or -1 (absent)
    flat_area: np.ndarray  # per-frame pixel counts of all tracks, concatenated (0 when absent)
    area_offset: np.ndarray  # [G] start of each track in flat_area / slot_mask
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
    masks: MaskStore
    slot_mask: np.ndarray
    flat_area: np.ndarray
    area_offset: np.ndarray
    flat_cum: np.ndarray
    regular: np.ndarray  # [P]
    entry: np.ndarray  # [P] index in the results list
    n_dropped_category: int = 0


def _slots(lengths: np.ndarray, track: np.ndarray, frame: np.ndarray, store: MaskStore
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(slot_mask, flat_area, offset per track, prefix sums) from each mask's (track, frame)."""
    offset = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    slot = offset[track] + frame
    slot_mask = np.full(int(offset[-1]), -1, dtype=np.int64)
    slot_mask[slot] = np.arange(len(slot))
    flat_area = np.zeros(int(offset[-1]), dtype=np.int64)
    flat_area[slot] = store.areas
    cum = np.zeros(len(flat_area) + 1, dtype=np.int64)
    np.cumsum(flat_area, out=cum[1:])
    return slot_mask, flat_area, offset[:-1], cum


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
    counts: list[Any] = []
    m_h: list[int] = []
    m_w: list[int] = []
    m_track: list[int] = []
    m_frame: list[int] = []
    lengths = np.zeros(len(anns), dtype=np.int64)
    regular = np.ones(len(anns), dtype=bool)
    avg = np.zeros(len(anns))
    occ = np.zeros(len(anns))
    has_occ = bool(anns)
    for t, a in enumerate(anns):
        vi = vid_index[a["video_id"]]
        h, w = int(video_hw[vi, 0]), int(video_hw[vi, 1])
        segs = a["segmentations"]
        lengths[t] = len(segs)
        for f, s in enumerate(segs):
            if s:  # truthy = present (official ``if a:``)
                c = s.get("counts") if type(s) is dict else None
                if type(c) is str:  # compressed RLE, used as it is
                    size = s["size"]
                else:
                    r = to_compressed_rle(s, h, w)
                    c, size = r["counts"], r["size"]
                counts.append(c)
                m_h.append(int(size[0]))
                m_w.append(int(size[1]))
                m_track.append(t)
                m_frame.append(f)
                if size[0] != h or size[1] != w:
                    regular[t] = False
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
    store = MaskStore.build(counts, np.array(m_h, dtype=np.int64), np.array(m_w, dtype=np.int64))
    slot_mask, flat_area, offset, cum = _slots(
        lengths, np.array(m_track, dtype=np.int64), np.array(m_frame, dtype=np.int64), store
    )
    return GTTable(
        video_ids=vids, video_len=video_len, video_hw=video_hw, cat_ids=cat_ids,
        video=np.array([vid_index[a["video_id"]] for a in anns], dtype=np.int64),
        cat=np.array([cat_index[a["category_id"]] for a in anns], dtype=np.int64),
        ids=np.array([a.get("id", 0) for a in anns], dtype=np.int64),
        crowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
        avg_area=avg, occ_score=occ,
        length=lengths, masks=store, slot_mask=slot_mask,
        flat_area=flat_area, area_offset=offset, flat_cum=cum, regular=regular, has_occlusion=has_occ,
    )  # fmt: skip


def _parsed_rows(
    entries: rle_kernels.ParsedResults, gt: GTTable, keep: list[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, video index, category index, score, length) of kept entries of GT categories."""
    idx = np.arange(len(entries.video_id)) if keep is None else np.asarray(keep, dtype=np.int64)
    c = entries.category_id[idx]
    ci = np.minimum(np.searchsorted(gt.cat_ids, c), max(len(gt.cat_ids) - 1, 0))
    in_cat = gt.cat_ids[ci] == c if len(gt.cat_ids) else np.zeros(len(idx), dtype=bool)
    rows = idx[in_cat]
    video = np.searchsorted(gt.video_ids, entries.video_id[rows]).astype(np.int64)
    if (
        len(rows)
        and not (gt.video_ids[np.minimum(video, len(gt.video_ids) - 1)] == entries.video_id[rows]).all()
    ):
        raise ValueError("build_preds: an entry of a video that is not in the GT (drop it with keep)")
    return rows, video, ci[in_cat].astype(np.int64), entries.score[rows], entries.n_frames[rows]


def build_preds(
    entries: list[dict[str, Any]] | rle_kernels.ParsedResults,
    gt: GTTable,
    keep: list[int] | None = None,
    masks: CheckedMasks | None = None,
) -> PredTable:
    """Index (already validated) result entries of GT videos and categories.

    ``entries``: the parsed JSON list, or what the fast reader
    (:func:`~benchmark.evaluation.rle.parse_results`) gives. ``keep`` restricts to these entry
    indices (lenient mode drops unknown videos); entries whose category is not a GT category are
    dropped silently, as the official evaluator does. ``masks``: the masks
    :func:`~benchmark.data.results.check_results` already decoded (else decoded here).
    """
    filtered = masks is not None  # the masks may include some of entries that are not rows
    if isinstance(entries, rle_kernels.ParsedResults):
        n_entries = len(entries.video_id)
        row_arr, video, cat, score, lengths = _parsed_rows(entries, gt, keep)
        n = len(row_arr)
        dropped = (n_entries if keep is None else len(keep)) - n
    else:
        n_entries = len(entries)
        vid_index = gt.vid_index
        cat_index = gt.cat_index
        idx = range(len(entries)) if keep is None else keep
        rows = [i for i in idx if entries[i]["category_id"] in cat_index]
        dropped = len(idx) - len(rows)
        n = len(rows)
        sel = [entries[i] for i in rows]
        video = np.array([vid_index[e["video_id"]] for e in sel], dtype=np.int64)
        cat = np.array([cat_index[e["category_id"]] for e in sel], dtype=np.int64)
        score = np.array([e["score"] for e in sel], dtype=np.float64)
        lengths = np.array([len(e["segmentations"]) for e in sel], dtype=np.int64)
        row_arr = np.array(rows, dtype=np.int64)
    if masks is not None:
        m_entry_a, m_frame_a = masks.entry, masks.frame
        store = MaskStore.build(masks.counts, masks.height, masks.width, masks.scan)
    elif isinstance(entries, rle_kernels.ParsedResults):
        filtered = True
        m_entry_a, m_frame_a = entries.entry, entries.frame
        store = MaskStore.build(entries.counts, entries.height, entries.width, entries.scan)
    else:
        counts: list[Any] = []
        m_h: list[int] = []
        m_w: list[int] = []
        m_entry: list[int] = []
        m_frame: list[int] = []
        for i, e in zip(rows, sel, strict=True):
            for f, s in enumerate(e["segmentations"]):
                if s:  # truthy = present
                    counts.append(s["counts"])
                    m_h.append(int(s["size"][0]))
                    m_w.append(int(s["size"][1]))
                    m_entry.append(i)
                    m_frame.append(f)
        m_entry_a = np.array(m_entry, dtype=np.int64)
        m_frame_a = np.array(m_frame, dtype=np.int64)
        store = MaskStore.build(counts, np.array(m_h, dtype=np.int64), np.array(m_w, dtype=np.int64))
    row_of = np.full(n_entries + 1, -1, dtype=np.int64)
    row_of[row_arr] = np.arange(n)
    m_row = row_of[m_entry_a] if len(m_entry_a) else np.zeros(0, dtype=np.int64)
    if filtered and (m_row < 0).any():  # masks of dropped entries stay in the store, unused
        ok = m_row >= 0
        m_row, m_frame_a = m_row[ok], m_frame_a[ok]
        store_idx = np.flatnonzero(ok)
    else:
        store_idx = np.arange(len(m_row))
    offset = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offset[1:])
    slot = offset[m_row] + m_frame_a
    slot_mask = np.full(int(offset[-1]), -1, dtype=np.int64)
    slot_mask[slot] = store_idx
    flat_area = np.zeros(int(offset[-1]), dtype=np.int64)
    flat_area[slot] = store.areas[store_idx]
    cum = np.zeros(len(flat_area) + 1, dtype=np.int64)
    np.cumsum(flat_area, out=cum[1:])
    regular = np.ones(n, dtype=bool)
    if n:
        hw = gt.video_hw[video[m_row]]
        off = (store.height[store_idx] != hw[:, 0]) | (store.width[store_idx] != hw[:, 1])
        regular[m_row[off]] = False
    # official: mean of the truthy (non-zero) areas over *all* frames; integer sums are exact
    track = np.repeat(np.arange(n), lengths)
    nz = flat_area > 0
    cnt = np.bincount(track[nz], minlength=n)
    tot = np.bincount(track[nz], weights=flat_area[nz], minlength=n)
    avg = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
    return PredTable(
        video=video, cat=cat, score=score, avg_area=avg, length=lengths, masks=store,
        slot_mask=slot_mask, flat_area=flat_area, area_offset=offset[:-1], flat_cum=cum,
        regular=regular, entry=row_arr, n_dropped_category=dropped,
    )  # fmt: skip
