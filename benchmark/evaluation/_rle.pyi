# Stub of the C extension benchmark/evaluation/_rle.c (see its header comment).
from typing import Any

from _typeshed import ReadableBuffer as Buffer

# a list of str/bytes, or a span tuple (data, int64 offsets, int64 lengths) of a JSON text
_Strings = list[Any] | tuple[Buffer, bytes, bytes]

def scan(strings: _Strings, totals: bytes, /) -> tuple[bytes, bytes, bytes, bytes]: ...
def intersect(a: _Strings, b: _Strings, ia: bytes, ib: bytes, limit: bytes, /) -> bytes: ...
def accumulate(
    dtm: bytes,
    dtig: bytes,
    order: bytes,
    cat_start: bytes,
    rank: bytes,
    npig: bytes,
    max_dets: bytes,
    rec_thrs: bytes,
    n_ranges: int,
    n_thrs: int,
    /,
) -> tuple[bytearray, bytearray]: ...
def match(
    iou: bytes,
    det_start: bytes,
    gt_start: bytes,
    gt_ignored: bytes,
    crowd: bytes,
    gt_id_nonzero: bytes,
    thresholds: bytes,
    n_ranges: int,
    /,
) -> tuple[bytearray, bytearray, bytearray]: ...
def parse_gt(data: Buffer, /) -> dict[str, Any] | None: ...
def parse_results(
    data: Buffer, /
) -> (
    tuple[
        int,
        bytes,
        bytes,
        bytes,
        bytes,
        int,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
    ]
    | None
): ...
