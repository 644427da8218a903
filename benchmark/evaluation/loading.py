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

__all__ = [
    "GTTable",
    "MaskStore",
    "PredTable",
    "build_gt",
    "build_preds",
    "gt_table_from_parsed",
    "sorted_unique",
]

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
    video_len: np.ndarray  # [V] number of frames (len(file_names))
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
    def video_info(self) -> dict[int, tuple[int, int, int]]:
        """``{video id: (frames, height, width)}`` (what ``gt_index`` gives for a valid file)."""
        return {
            v: (n, h, w)
            for v, n, (h, w) in zip(
                self.video_ids.tolist(), self.video_len.tolist(), self.video_hw.tolist(), strict=True
            )
        }

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


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-d array, by sorting: without options, ``np.unique`` imports numpy.ma
    on its first call (15 ms of an evaluation)."""
    s = np.sort(a)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


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
    video_len = np.array([len(videos[int(v)]["file_names"]) for v in vids], dtype=np.int64)
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
        score = _occlusion_score(a.get("occlusion"))
        if score is None:
            has_occ = False
        else:
            occ[t] = score
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


def _occlusion_score(labels: list[str | None] | None) -> float | None:
    """The OVIS fork's occlusion score of a track (mean of the top half of its per-frame scores),
    None without usable labels."""
    scores = [OCC_SCORE[x] for x in labels if x is not None] if isinstance(labels, list) else []
    if not scores:
        return None
    scores.sort()
    top = scores[-math.ceil(len(scores) / 2) :]
    return sum(top) / len(top)


def _check_parsed_gt(p: rle_kernels.ParsedGT) -> np.ndarray | None:
    """Video index (ascending id order) of each annotation of a GT file read by the C reader when
    ``validate_annotation_dict`` accepts the file (the reader already checked the syntax, types,
    key sets, file names and non-negative areas), else None: the JSON route then words the problems.
    """
    vids = p.video_id
    if len(sorted_unique(vids)) != len(vids) or len(sorted_unique(p.category_id)) != len(p.category_id):
        return None  # duplicate video or category ids
    if (p.video_height <= 0).any() or (p.video_width <= 0).any() or (p.video_n_files <= 0).any():
        return None
    if ((p.video_length != -1) & (p.video_length != p.video_n_files)).any():
        return None
    order = np.argsort(vids)
    sorted_ids = vids[order]
    if not p.has_annotations:
        return np.zeros(0, dtype=np.int64)
    if len(sorted_unique(p.ann_id)) != len(p.ann_id) or p.scan.codes.any():
        return None  # duplicate annotation ids, an RLE string that is not valid
    vi = np.minimum(np.searchsorted(sorted_ids, p.ann_video_id), max(len(vids) - 1, 0))
    if len(p.ann_id) and (not len(vids) or (sorted_ids[vi] != p.ann_video_id).any()):
        return None  # an unknown video
    n = p.video_n_files[order][vi]  # every per-frame list is as long as the video
    if (p.ann_n_segmentations != n).any() or (p.ann_n_areas != n).any():
        return None
    if ((p.ann_n_bboxes != -1) & (p.ann_n_bboxes != n)).any():
        return None
    if ((p.ann_n_occlusion != -1) & (p.ann_n_occlusion != n)).any():
        return None
    mv = vi[p.mask_ann]  # every mask has its video's size
    if (p.height != p.video_height[order][mv]).any() or (p.width != p.video_width[order][mv]).any():
        return None
    return vi


def _mean_areas(p: rle_kernels.ParsedGT, rows: np.ndarray) -> np.ndarray:
    """``np.array([x for x in areas if x]).mean()`` (0 when none) of annotations ``rows``.

    Where a track's truthy areas are all whole numbers whose sum is below 2**53 every partial sum is
    exact, so the mean is sum / count in any summation order (vectorised); other tracks go through
    numpy exactly as the official code does (an int64 array for JSON integers, else float64)."""
    start = np.zeros(len(p.ann_n_areas) + 1, dtype=np.int64)
    np.cumsum(p.ann_n_areas, out=start[1:])
    val, kind = p.area_value, p.area_kind
    truthy = (kind != 0) & (val != 0)
    whole = ~truthy | ((np.floor(val) == val) & (np.abs(val) < 2.0**53))
    entry_ann = np.repeat(np.arange(len(p.ann_n_areas)), p.ann_n_areas)
    n_true = np.bincount(entry_ann[truthy], minlength=len(p.ann_n_areas))
    exact_sum = np.bincount(entry_ann[truthy], weights=np.where(whole, val, 0)[truthy], minlength=len(n_true))
    all_whole = np.bincount(entry_ann, weights=~whole, minlength=len(n_true)) == 0
    simple = all_whole & (exact_sum < 2.0**53)
    out = np.where(n_true > 0, exact_sum / np.maximum(n_true, 1), 0.0)[rows]
    for k in np.flatnonzero(~simple[rows] & (n_true[rows] > 0)).tolist():
        i = int(rows[k])
        sl = slice(int(start[i]), int(start[i + 1]))
        t = truthy[sl]
        ints = kind[sl][t] == 1
        vals = p.area_int[sl][t] if ints.all() else p.area_value[sl][t]
        out[k] = vals.mean()
    return out


def gt_table_from_parsed(p: rle_kernels.ParsedGT) -> GTTable | None:
    """:func:`build_gt` of a GT file read by :func:`rle_kernels.parse_gt`, or None when
    ``validate_annotation_dict`` might reject the file (then use the JSON route, which words it)."""
    vi_file = _check_parsed_gt(p)
    if vi_file is None:
        return None
    order = np.argsort(p.video_id)
    vids = p.video_id[order]
    video_hw = np.stack([p.video_height[order], p.video_width[order]], axis=1)
    video_len = p.video_n_files[order]
    cat_ids = sorted_unique(p.category_id)
    # the official loader keeps the GT of listed categories, by video (ascending id), then file order
    ci = np.minimum(np.searchsorted(cat_ids, p.ann_category_id), max(len(cat_ids) - 1, 0))
    listed = cat_ids[ci] == p.ann_category_id if len(cat_ids) else np.zeros(len(vi_file), dtype=bool)
    rows = np.flatnonzero(listed)
    rows = rows[np.argsort(vi_file[rows], kind="stable")]
    track_of = np.full(len(vi_file) + 1, -1, dtype=np.int64)
    track_of[rows] = np.arange(len(rows))
    m_track = track_of[p.mask_ann] if len(p.mask_ann) else np.zeros(0, dtype=np.int64)
    sel = np.flatnonzero(m_track >= 0)
    sel = sel[np.argsort(m_track[sel], kind="stable")]  # masks by track, then frame (file order)
    sc = p.scan
    store = MaskStore.build(
        p.counts.take(sel), p.height[sel], p.width[sel],
        rle_kernels.Scan(sc.codes[sel], sc.areas[sel], sc.first[sel], sc.end[sel]),
    )  # fmt: skip
    lengths = p.ann_n_segmentations[rows]
    slot_mask, flat_area, offset, cum = _slots(lengths, m_track[sel], p.mask_frame[sel], store)
    occ = np.zeros(len(rows))
    has_occ = bool(len(rows))
    occ_start = np.zeros(len(p.ann_n_occlusion) + 1, dtype=np.int64)
    np.cumsum(np.maximum(p.ann_n_occlusion, 0), out=occ_start[1:])
    for t, i in enumerate(rows.tolist()):
        labels = None
        if p.ann_n_occlusion[i] >= 0:
            codes = p.occlusion[occ_start[i] : occ_start[i + 1]].tolist()
            labels = [None if c < 0 else rle_kernels.OCCLUSION_LABELS[c] for c in codes]
        score = _occlusion_score(labels)
        if score is None:
            has_occ = False
        else:
            occ[t] = score
    return GTTable(
        video_ids=vids, video_len=video_len, video_hw=video_hw, cat_ids=cat_ids,
        video=vi_file[rows], cat=ci[rows].astype(np.int64), ids=p.ann_id[rows],
        crowd=p.ann_iscrowd[rows].astype(bool), avg_area=_mean_areas(p, rows), occ_score=occ,
        length=lengths, masks=store, slot_mask=slot_mask, flat_area=flat_area, area_offset=offset,
        flat_cum=cum, regular=np.ones(len(rows), dtype=bool), has_occlusion=has_occ,
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
