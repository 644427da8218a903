"""Run-length encoded masks: the one place the suite talks to ``pycocotools.mask``.

Conventions:
    * A *compressed RLE* is ``{"size": [H, W], "counts": str}`` (column-major, COCO's LEB128-like
      string). This is what result files and our own GT carry.
    * An *uncompressed RLE* has ``counts`` as a list of ints; a *polygon* segmentation is a list of
      flat ``[x0, y0, x1, y1, ...]`` lists. Both occur in YouTube-VIS / OVIS ground truth.
    * ``None`` means "object absent in this frame".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "RLE",
    "as_pycoco",
    "decode_rle",
    "encode_mask",
    "encode_masks",
    "is_compressed_rle",
    "rle_area",
    "to_compressed_rle",
]

RLE = dict[str, Any]

# pycocotools' ``area`` on many RLEs at once overflows under numpy 2 (a uint32 buffer sized by
# the count is re-used); batches of at most this many are safe.
_AREA_CHUNK = 255


def encode_mask(mask: np.ndarray) -> RLE:
    """Encode one ``[H, W]`` boolean/uint8 mask as compressed RLE with ``str`` counts."""
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects a 2-D mask, got shape {mask.shape}")
    arr = np.asfortranarray(mask.astype(np.uint8, copy=False)[:, :, None])
    rle = mask_utils.encode(arr)[0]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def encode_masks(masks: np.ndarray) -> list[RLE]:
    """Encode ``[N, H, W]`` masks as a list of compressed RLEs with ``str`` counts."""
    if masks.ndim != 3:
        raise ValueError(f"encode_masks expects [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    arr = np.asfortranarray(np.moveaxis(masks.astype(np.uint8, copy=False), 0, -1))
    return [
        {"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
        for r in mask_utils.encode(arr)
    ]


def as_pycoco(rle: RLE) -> RLE:
    """The same compressed RLE with ``bytes`` counts, as pycocotools' C functions want."""
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    return rle


def decode_rle(rle: RLE) -> np.ndarray:
    """Decode a compressed RLE to a ``[H, W]`` uint8 mask."""
    with warnings.catch_warnings():
        # pycocotools' Cython ``decode`` passes ``copy=False`` to ``__array__`` (numpy 2 deprecation).
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(mask_utils.decode(as_pycoco(rle)))


def rle_area(rles: Sequence[RLE]) -> np.ndarray:
    """Pixel counts of compressed RLEs, as ``uint32`` (chunked: see ``_AREA_CHUNK``)."""
    if len(rles) == 0:
        return np.zeros(0, dtype=np.uint32)
    coco = [as_pycoco(r) for r in rles]
    parts = [
        np.asarray(mask_utils.area(coco[i : i + _AREA_CHUNK]), dtype=np.uint32).reshape(-1)
        for i in range(0, len(coco), _AREA_CHUNK)
    ]
    return np.concatenate(parts)


def is_compressed_rle(seg: Any) -> bool:
    """True for ``{"size": [H, W], "counts": str | bytes}``."""
    return isinstance(seg, dict) and isinstance(seg.get("counts"), (str, bytes))


def to_compressed_rle(seg: Any, height: int, width: int) -> RLE:
    """Any YouTube-VIS segmentation (compressed RLE, uncompressed RLE, polygons) as compressed RLE.

    Follows the official loader (``ytvos.annToRLE``): polygons are rasterised at the video's
    ``height x width`` and their parts merged; an uncompressed RLE is converted with its own
    ``size``; a compressed RLE is returned as it is (counts as ``str``).
    """
    if is_compressed_rle(seg):
        counts = seg["counts"]
        return {
            "size": list(seg["size"]),
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
        }
    if isinstance(seg, dict):  # uncompressed RLE: counts is a list of ints
        h, w = seg["size"]
        rle = mask_utils.frPyObjects(seg, h, w)
    elif isinstance(seg, list):
        rles = mask_utils.frPyObjects(seg, height, width)
        rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
    else:
        raise TypeError(f"not a segmentation: {type(seg).__name__}")
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }
