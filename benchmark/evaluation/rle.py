"""Compressed-RLE kernels of the evaluator: one decoding pass per string, exact intersections.

Thin numpy wrappers around the C extension :mod:`benchmark.evaluation._rle` (built by
``pip install -e .``). There is no pure-Python fallback: without the extension the evaluator
refuses to import (a slow path would silently change the speed by 10x).

Strings that do not decode to non-negative runs summing to the mask's pixel count (``code != 0``)
are not handled here. ``evaluate`` rejects them in results files (pycocotools can hang or read out
of bounds on them, see :mod:`benchmark.data.results`); GT compressed strings are not decoded by GT
validation, so callers give such GT strings to pycocotools, like the official evaluator.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from benchmark.evaluation import _rle
except ImportError as exc:  # pragma: no cover - a broken install
    raise ImportError(
        "the C extension benchmark.evaluation._rle is not built; reinstall visrepro with "
        "`pip install -e .` (needs a C compiler and the Python headers)"
    ) from exc

__all__ = [
    "RLE_BADCHAR",
    "RLE_EMPTY",
    "RLE_NEGATIVE",
    "RLE_OK",
    "RLE_TOTAL",
    "RLE_TRUNCATED",
    "Matched",
    "ParsedGT",
    "ParsedResults",
    "Scan",
    "Spans",
    "accumulate",
    "intersect",
    "match",
    "parse_gt",
    "parse_results",
    "pycoco_areas",
    "scan",
]

RLE_OK, RLE_EMPTY, RLE_BADCHAR, RLE_TRUNCATED, RLE_NEGATIVE, RLE_TOTAL = range(6)
#: pycocotools' ``area`` overflows on 256+ RLEs at once under numpy 2.
_AREA_CHUNK = 255


@dataclass
class Scan:
    """Per string: error code (``RLE_*``), foreground pixel count, first foreground pixel and one
    past the last (column-major; 0/0 for an empty mask). Areas/first/end are 0 where code != 0."""

    codes: np.ndarray  # int8
    areas: np.ndarray  # int64
    first: np.ndarray  # int64
    end: np.ndarray  # int64


#: The text of a file: its bytes, or the file mapped read-only.
Text = bytes | mmap.mmap


@dataclass(frozen=True)
class Spans:
    """Strings that are spans of a JSON text (``data[offsets[k]:offsets[k] + lengths[k]]``), as
    :func:`parse_results` and :func:`parse_gt` find them: no Python object per string. The only
    escape in a span is ``\\\\`` (one backslash); the C kernels read spans directly, indexing gives
    the ``str``."""

    data: Text
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, k: int) -> str:
        o = int(self.offsets[k])
        return self.data[o : o + int(self.lengths[k])].decode("latin-1").replace("\\\\", "\\")

    def take(self, idx: np.ndarray) -> Spans:
        return Spans(self.data, self.offsets[idx], self.lengths[idx])

    def as_arg(self) -> tuple[Text, bytes, bytes]:
        """The C kernels' span tuple."""
        return (
            self.data,
            np.ascontiguousarray(self.offsets, dtype=np.int64).tobytes(),
            np.ascontiguousarray(self.lengths, dtype=np.int64).tobytes(),
        )


Strings = list[Any] | Spans


def _arg(strings: Strings) -> list[Any] | tuple[Text, bytes, bytes]:
    return strings.as_arg() if isinstance(strings, Spans) else strings


@dataclass
class ParsedResults:
    """A results file as :func:`parse_results` reads it: per entry (file order) and per present
    mask (file order), with every mask already scanned."""

    video_id: np.ndarray  # [N] int64
    category_id: np.ndarray  # [N] int64
    score: np.ndarray  # [N] float64
    n_frames: np.ndarray  # [N] int64: length of ``segmentations``
    entry: np.ndarray  # [S] entry index of each mask
    frame: np.ndarray  # [S] frame index
    height: np.ndarray  # [S] the mask's ``size``
    width: np.ndarray  # [S]
    counts: Spans  # [S]
    scan: Scan  # [S] (totals height * width)


def parse_results(data: Text) -> ParsedResults | None:
    """Read the raw bytes of a results.json with the C reader (no Python object per entry or
    mask), or None where the file is anything but the plain format (then parse it as JSON): see
    ``parse_results`` in ``_rle.c`` for what is supported. The numbers are those a JSON parser
    gives (scores correctly rounded like ``float()``)."""
    r = _rle.parse_results(data)
    if r is None:
        return None
    i64, f64 = np.int64, np.float64
    return ParsedResults(
        video_id=np.frombuffer(r[1], i64), category_id=np.frombuffer(r[2], i64),
        score=np.frombuffer(r[3], f64), n_frames=np.frombuffer(r[4], i64),
        entry=np.frombuffer(r[6], i64), frame=np.frombuffer(r[7], i64),
        height=np.frombuffer(r[8], i64), width=np.frombuffer(r[9], i64),
        counts=Spans(data, np.frombuffer(r[10], i64), np.frombuffer(r[11], i64)),
        scan=Scan(
            codes=np.frombuffer(r[12], np.int8), areas=np.frombuffer(r[13], i64),
            first=np.frombuffer(r[14], i64), end=np.frombuffer(r[15], i64),
        ),
    )  # fmt: skip


@dataclass
class ParsedGT:
    """A GT annotation file as :func:`parse_gt` reads it, in file order: videos, categories,
    annotations, then the per-frame entries of all annotations concatenated (``areas``,
    ``occlusion``) and the present masks (already scanned). Not validated beyond the syntax: see
    :func:`benchmark.evaluation.loading.gt_table_from_parsed`."""

    video_id: np.ndarray  # [V] int64
    video_height: np.ndarray  # [V]
    video_width: np.ndarray  # [V]
    video_length: np.ndarray  # [V] the "length" field, -1 when absent
    video_n_files: np.ndarray  # [V] len(file_names)
    category_id: np.ndarray  # [C]
    has_annotations: bool  # False: "annotations" absent or null
    ann_id: np.ndarray  # [A]
    ann_video_id: np.ndarray  # [A]
    ann_category_id: np.ndarray  # [A]
    ann_iscrowd: np.ndarray  # [A] 0 or 1
    ann_n_segmentations: np.ndarray  # [A] list lengths
    ann_n_areas: np.ndarray  # [A]
    ann_n_bboxes: np.ndarray  # [A] -1: absent or null
    ann_n_occlusion: np.ndarray  # [A] -1: absent or null
    area_value: np.ndarray  # [sum of n_areas] float64 (0 for null)
    area_int: np.ndarray  # the value where it is a JSON integer
    area_kind: np.ndarray  # int8: 0 null, 1 integer, 2 other number
    occlusion: np.ndarray  # [sum of n_occlusion >= 0] int8: -1 null, else index in OCCLUSION_LABELS
    mask_ann: np.ndarray  # [S] annotation index of each present mask
    mask_frame: np.ndarray  # [S]
    height: np.ndarray  # [S] the mask's ``size``
    width: np.ndarray  # [S]
    counts: Spans  # [S]
    scan: Scan  # [S] (totals height * width)


#: The labels of ``ParsedGT.occlusion``.
OCCLUSION_LABELS = ("no_occlusion", "slight_occlusion", "severe_occlusion")


def parse_gt(data: Text) -> ParsedGT | None:
    """Read the raw bytes of a GT annotation file with the C reader, or None where it is anything
    but the plain format (then parse it as JSON and validate it): see ``parse_gt`` in ``_rle.c``."""
    r = _rle.parse_gt(data)
    if r is None:
        return None

    def col(key: str, dtype: type = np.int64) -> np.ndarray:
        return np.frombuffer(r[key], dtype)

    return ParsedGT(
        video_id=col("v_id"), video_height=col("v_h"), video_width=col("v_w"), video_length=col("v_len"),
        video_n_files=col("v_nf"), category_id=col("c_id"), has_annotations=bool(r["has_annotations"]),
        ann_id=col("a_id"), ann_video_id=col("a_vid"), ann_category_id=col("a_cat"),
        ann_iscrowd=col("a_crowd"), ann_n_segmentations=col("a_nseg"), ann_n_areas=col("a_narea"),
        ann_n_bboxes=col("a_nbox"), ann_n_occlusion=col("a_nocc"),
        area_value=col("ar_val", np.float64), area_int=col("ar_int"), area_kind=col("ar_kind", np.int8),
        occlusion=col("occ", np.int8), mask_ann=col("m_ann"), mask_frame=col("m_frame"),
        height=col("m_h"), width=col("m_w"), counts=Spans(data, col("m_off"), col("m_len")),
        scan=Scan(codes=col("codes", np.int8), areas=col("areas"), first=col("first"), end=col("end")),
    )  # fmt: skip


def scan(strings: Strings, totals: np.ndarray) -> Scan:
    """Decode every compressed-RLE string (str or bytes, or :class:`Spans`) once; ``totals`` = h*w
    of each mask."""
    t = np.ascontiguousarray(totals, dtype=np.int64)
    if len(t) != len(strings):
        raise ValueError(f"{len(strings)} strings but {len(t)} totals")
    c, a, f, e = _rle.scan(_arg(strings), t.tobytes())
    return Scan(
        codes=np.frombuffer(c, dtype=np.int8),
        areas=np.frombuffer(a, dtype=np.int64),
        first=np.frombuffer(f, dtype=np.int64),
        end=np.frombuffer(e, dtype=np.int64),
    )


def intersect(
    a: Strings, b: Strings, ia: np.ndarray, ib: np.ndarray, limit: np.ndarray | None = None
) -> np.ndarray:
    """Exact |a[ia[k]] & b[ib[k]]| per pair; every string used must have scan code 0 and both masks
    of a pair the same pixel count (raises ValueError otherwise). ``limit``: a pixel index per pair
    beyond which one of the masks has no foreground (e.g. the smaller :class:`Scan` ``end``); the
    merge stops there (default: decode to the end). Consecutive pairs with the same ``ib`` decode
    that string once: sort the pairs by ``ib``."""
    ia = np.ascontiguousarray(ia, dtype=np.int64)
    ib = np.ascontiguousarray(ib, dtype=np.int64)
    if len(ia) == 0:
        return np.zeros(0, dtype=np.int64)
    lim = np.full(len(ia), np.iinfo(np.int64).max) if limit is None else limit
    lim = np.ascontiguousarray(lim, dtype=np.int64)
    out = _rle.intersect(_arg(a), _arg(b), ia.tobytes(), ib.tobytes(), lim.tobytes())
    return np.frombuffer(out, dtype=np.int64)


@dataclass
class Matched:
    """What :func:`match` gives, per prediction / GT, range and IoU threshold (writable arrays)."""

    dtm: np.ndarray  # [N, A, T] bool: matched to a GT whose id is not 0
    dtig: np.ndarray  # [N, A, T] bool: matched to an ignored GT
    gtm: np.ndarray  # [G, A, T] bool: matched


def match(
    ious: np.ndarray,
    det_start: np.ndarray,
    gt_start: np.ndarray,
    gt_ignored: np.ndarray,
    crowd: np.ndarray,
    gt_id_nonzero: np.ndarray,
    thresholds: np.ndarray,
) -> Matched:
    """COCO's greedy matching of every unit (C kernel ``match``, see ``_rle.c``).

    Args:
        ious: every unit's [D_u, G_u] IoU matrix, row-major, concatenated (float64).
        det_start, gt_start: [U + 1] offsets of the units' predictions (score order) and GT (file
            order).
        gt_ignored: [G, A] per GT and range; crowd, gt_id_nonzero: [G].
        thresholds: [T] IoU thresholds (capped at 1 - 1e-10).
    """
    G, A = gt_ignored.shape
    N, T = int(det_start[-1]), len(thresholds)

    def buf(x: np.ndarray, dtype: type) -> bytes:
        return np.ascontiguousarray(x, dtype=dtype).tobytes()

    dtm, dtig, gtm = _rle.match(
        buf(ious, np.float64), buf(det_start, np.int64), buf(gt_start, np.int64), buf(gt_ignored, np.uint8),
        buf(crowd, np.uint8), buf(gt_id_nonzero, np.uint8), buf(thresholds, np.float64), A,
    )  # fmt: skip
    return Matched(
        dtm=np.frombuffer(dtm, dtype=bool).reshape(N, A, T),
        dtig=np.frombuffer(dtig, dtype=bool).reshape(N, A, T),
        gtm=np.frombuffer(gtm, dtype=bool).reshape(G, A, T),
    )


def accumulate(
    dtm: np.ndarray,
    dtig: np.ndarray,
    order: np.ndarray,
    cat_start: np.ndarray,
    rank: np.ndarray,
    npig: np.ndarray,
    max_dets: np.ndarray,
    rec_thrs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The official precision [T, R, K, A, M] and recall [T, K, A, M] (C kernel ``accumulate``, see
    ``_rle.c``): ``dtm``, ``dtig`` [N, A, T] as :func:`match` gives them; ``order`` the
    predictions grouped by category (offsets ``cat_start`` [K + 1]), by score within (stable);
    ``rank`` [N] within the video; ``npig`` [K, A] regular GT counts."""
    _, A, T = dtm.shape
    K, M, R = len(cat_start) - 1, len(max_dets), len(rec_thrs)

    def buf(x: np.ndarray, dtype: type) -> bytes:
        return np.ascontiguousarray(x, dtype=dtype).tobytes()

    p, r = _rle.accumulate(
        buf(dtm, np.uint8), buf(dtig, np.uint8), buf(order, np.int64), buf(cat_start, np.int64),
        buf(rank, np.int64), buf(npig, np.int64), buf(max_dets, np.int64), buf(rec_thrs, np.float64), A, T,
    )  # fmt: skip
    return np.frombuffer(p, np.float64).reshape(T, R, K, A, M), np.frombuffer(r, np.float64).reshape(
        T, K, A, M
    )


def pycoco_areas(strings: list[Any], sizes: np.ndarray) -> np.ndarray:
    """pycocotools' pixel counts of compressed RLEs (what the official evaluator uses), for the
    strings the C scan does not accept."""
    from pycocotools import mask as mask_utils

    out = np.zeros(len(strings), dtype=np.int64)
    rles = [
        {"size": [int(h), int(w)], "counts": s} for s, (h, w) in zip(strings, sizes.tolist(), strict=True)
    ]
    for i in range(0, len(rles), _AREA_CHUNK):
        out[i : i + _AREA_CHUNK] = mask_utils.area(rles[i : i + _AREA_CHUNK])
    return out
