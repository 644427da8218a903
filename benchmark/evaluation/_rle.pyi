# Stub of the C extension benchmark/evaluation/_rle.c (see its header comment).
from typing import Any

from _typeshed import ReadableBuffer as Buffer

# a list of str/bytes, or a span tuple (data, int64 offsets, int64 lengths) of a JSON text
_Strings = list[Any] | tuple[Buffer, bytes, bytes]

def scan(strings: _Strings, totals: bytes, /) -> tuple[bytes, bytes, bytes, bytes]: ...
def intersect(a: _Strings, b: _Strings, ia: bytes, ib: bytes, limit: bytes, /) -> bytes: ...
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
