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
    "Scan",
    "intersect",
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


def scan(strings: list[Any], totals: np.ndarray) -> Scan:
    """Decode every compressed-RLE string (str or bytes) once; ``totals`` = h*w of each mask."""
    t = np.ascontiguousarray(totals, dtype=np.int64)
    if len(t) != len(strings):
        raise ValueError(f"{len(strings)} strings but {len(t)} totals")
    c, a, f, e = _rle.scan(strings, t.tobytes())
    return Scan(
        codes=np.frombuffer(c, dtype=np.int8),
        areas=np.frombuffer(a, dtype=np.int64),
        first=np.frombuffer(f, dtype=np.int64),
        end=np.frombuffer(e, dtype=np.int64),
    )


def intersect(
    a: list[Any], b: list[Any], ia: np.ndarray, ib: np.ndarray, limit: np.ndarray | None = None
) -> np.ndarray:
    """Exact |a[ia[k]] & b[ib[k]]| per pair; every string used must have scan code 0 and both masks
    of a pair the same pixel count (raises ValueError otherwise). ``limit``: a pixel index per pair
    beyond which one of the masks has no foreground (e.g. the smaller :class:`Scan` ``end``); the
    merge stops there (default: decode to the end)."""
    ia = np.ascontiguousarray(ia, dtype=np.int64)
    ib = np.ascontiguousarray(ib, dtype=np.int64)
    if len(ia) == 0:
        return np.zeros(0, dtype=np.int64)
    lim = np.full(len(ia), np.iinfo(np.int64).max) if limit is None else limit
    lim = np.ascontiguousarray(lim, dtype=np.int64)
    return np.frombuffer(_rle.intersect(a, b, ia.tobytes(), ib.tobytes(), lim.tobytes()), dtype=np.int64)


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
