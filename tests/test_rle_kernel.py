"""The evaluator's C RLE kernels (benchmark.evaluation._rle) against pycocotools and rle_counts_ok."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from benchmark.data.results import rle_counts_ok
from benchmark.evaluation import rle

CODE_OF_MESSAGE = {
    "empty": rle.RLE_EMPTY,
    "character": rle.RLE_BADCHAR,
    "middle of a number": rle.RLE_TRUNCATED,
    "negative": rle.RLE_NEGATIVE,
    "describes": rle.RLE_TOTAL,
}


def _masks(rng: np.random.Generator, n: int, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    out = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        kind = i % 7
        if kind == 0:
            m = np.zeros((h, w), np.uint8)
        elif kind == 1:
            m = np.ones((h, w), np.uint8)
        elif kind == 2:  # one pixel
            m = np.zeros((h, w), np.uint8)
            m[rng.integers(h), rng.integers(w)] = 1
        elif kind == 3:  # a box
            m = np.zeros((h, w), np.uint8)
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = 1
        else:  # noise of random density
            m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        out.append(m)
    return out


def _encode(m: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(m))["counts"].decode("ascii")


@pytest.mark.parametrize("shapes", [[(1, 1), (1, 5), (7, 1)], [(6, 8), (5, 9)], [(97, 131)], [(720, 1280)]])
def test_scan_matches_pycocotools(shapes: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(len(shapes) * 1000 + shapes[0][0])
    ms = _masks(rng, 40 if shapes[0][0] < 500 else 8, shapes)
    strings = [_encode(m) for m in ms]
    sc = rle.scan(strings, np.array([m.size for m in ms]))
    assert (sc.codes == 0).all()
    assert sc.areas.tolist() == [int(m.sum()) for m in ms]
    rles = [{"size": list(m.shape), "counts": s} for m, s in zip(ms, strings, strict=True)]
    assert sc.areas.tolist() == np.asarray(mask_utils.area(rles)).astype(int).tolist()
    for m, f, e in zip(ms, sc.first, sc.end, strict=True):
        fg = np.flatnonzero(m.ravel(order="F"))
        assert (f, e) == ((fg[0], fg[-1] + 1) if len(fg) else (0, 0))
    # bytes work too
    assert rle.scan([s.encode() for s in strings], np.array([m.size for m in ms])).areas.tolist() == (
        sc.areas.tolist()
    )


@pytest.mark.parametrize("shapes", [[(1, 1)], [(3, 4)], [(6, 8)], [(31, 17)], [(200, 300)]])
def test_intersect_matches_pycocotools(shapes: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(shapes[0][0])
    ms = _masks(rng, 21, shapes)
    strings = [_encode(m) for m in ms]
    ia, ib = np.meshgrid(np.arange(len(ms)), np.arange(len(ms)), indexing="ij")
    ia, ib = ia.ravel(), ib.ravel()
    got = rle.intersect(strings, strings, ia, ib)
    sc = rle.scan(strings, np.array([m.size for m in ms]))
    assert (rle.intersect(strings, strings, ia, ib, np.minimum(sc.end[ia], sc.end[ib])) == got).all()
    h, w = shapes[0]
    for k, (i, j) in enumerate(zip(ia.tolist(), ib.tolist(), strict=True)):
        a = {"size": [h, w], "counts": strings[i]}
        b = {"size": [h, w], "counts": strings[j]}
        ref = int(mask_utils.area(mask_utils.merge([a, b], intersect=True)))
        assert got[k] == ref == int((ms[i] & ms[j]).sum())


def test_intersect_rejects_invalid_input() -> None:
    good = _encode(np.ones((2, 2), np.uint8))
    with pytest.raises(ValueError):
        rle.intersect([good], ["0P"], np.array([0]), np.array([0]))
    with pytest.raises(IndexError):
        rle.intersect([good], [good], np.array([0]), np.array([3]))
    assert rle.intersect([good], [good], np.zeros(0, np.int64), np.zeros(0, np.int64)).size == 0


@pytest.mark.parametrize(
    ("counts", "total", "code"),
    [
        ("", 4, rle.RLE_EMPTY),
        ("a b~", 48, rle.RLE_BADCHAR),
        ("0p", 4, rle.RLE_BADCHAR),  # 'p' = 112 is one past 'o'
        ("04é", 4, rle.RLE_BADCHAR),
        ("0P", 48, rle.RLE_TRUNCATED),
        ("14", 48, rle.RLE_TOTAL),
        ("04", 4, rle.RLE_OK),
        ("0O", 4, rle.RLE_NEGATIVE),  # second run -1
        ("PPPPPPPPPPPPPPP0", 0, rle.RLE_TOTAL),  # > 60 bits: rejected (never produced by an encoder)
    ],
)
def test_scan_error_codes(counts: str, total: int, code: int) -> None:
    assert rle.scan([counts], np.array([total])).codes.tolist() == [code]


def test_scan_codes_agree_with_rle_counts_ok() -> None:
    """Random strings: code 0 exactly when rle_counts_ok accepts, else the same first problem."""
    rng = np.random.default_rng(7)
    alphabet = [chr(c) for c in range(40, 116)]
    base = [_encode(m) for m in _masks(rng, 30, [(4, 5)])]
    n_bad = 0
    for trial in range(3000):
        if trial % 3 == 0:
            s = "".join(rng.choice(alphabet, size=rng.integers(0, 8)))
        else:  # mutate a valid string
            s = list(base[trial % len(base)])
            s[rng.integers(len(s))] = chr(int(rng.integers(44, 116)))
            s = "".join(s)
        code = int(rle.scan([s], np.array([20])).codes[0])
        ok, why = rle_counts_ok(s, 20)
        if ok:
            assert code == rle.RLE_OK, s
        else:
            n_bad += 1
            want = next(v for k, v in CODE_OF_MESSAGE.items() if k in why)
            assert code == want, (s, why, code)
    assert n_bad > 500


def test_scan_type_errors() -> None:
    with pytest.raises(TypeError):
        rle.scan([5], np.array([1]))
    with pytest.raises(ValueError):
        rle.scan(["0"], np.array([1, 2]))


def test_threaded_paths_match_single_strings() -> None:
    """>= 4096 strings/pairs use two threads: same answers as one call per item."""
    rng = np.random.default_rng(3)
    ms = _masks(rng, 5000, [(5, 7)])
    strings = [_encode(m) for m in ms]
    tot = np.full(len(ms), 35)
    sc = rle.scan(strings, tot)
    assert sc.areas.tolist() == [int(m.sum()) for m in ms]
    ia = rng.integers(0, len(ms), 6000)
    ib = rng.integers(0, len(ms), 6000)
    got = rle.intersect(strings, strings, ia, ib, np.minimum(sc.end[ia], sc.end[ib]))
    assert got.tolist() == [int((ms[i] & ms[j]).sum()) for i, j in zip(ia.tolist(), ib.tolist(), strict=True)]


def test_intersect_groups_and_fast_path_on_large_masks() -> None:
    """Pairs sorted by the second string (each decoded once per run of pairs), on masks big enough
    for the one-character fast path of the decoder (and its fallbacks: long runs, escapes)."""
    rng = np.random.default_rng(11)
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    ms = []
    for _ in range(24):
        cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 60), rng.uniform(3, 80)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        m &= rng.random((h, w)) < (0.97 if rng.random() < 0.5 else 1.0)  # some noise: long numbers
        ms.append(m.astype(np.uint8))
    strings = [_encode(m) for m in ms]
    sc = rle.scan(strings, np.full(len(ms), h * w))
    assert sc.areas.tolist() == [int(m.sum()) for m in ms]
    ib = np.repeat(np.arange(len(ms)), len(ms))
    ia = np.tile(np.arange(len(ms)), len(ms))
    want = [int((ms[i] & ms[j]).sum()) for i, j in zip(ia.tolist(), ib.tolist(), strict=True)]
    assert rle.intersect(strings, strings, ia, ib).tolist() == want
    limit = np.minimum(sc.end[ia], sc.end[ib])
    assert rle.intersect(strings, strings, ia, ib, limit).tolist() == want
    # the same strings as JSON spans (a backslash escaped as two)
    text = "".join(s.replace("\\", "\\\\") for s in strings).encode()
    lens = np.array([len(s.replace("\\", "\\\\")) for s in strings], dtype=np.int64)
    spans = rle.Spans(text, np.r_[0, np.cumsum(lens)[:-1]], lens)
    assert rle.scan(spans, np.full(len(ms), h * w)).areas.tolist() == sc.areas.tolist()
    assert rle.intersect(spans, strings, ia, ib, limit).tolist() == want


def test_scan_codes_of_mutated_large_strings() -> None:
    """Single-character mutations of long strings (the decoder's fast path) give rle_counts_ok's
    verdict and first problem."""
    rng = np.random.default_rng(5)
    h, w = 40, 50
    yy, xx = np.mgrid[:h, :w]
    base = [
        _encode((((yy - 20) / r) ** 2 + ((xx - 25) / (r + 3)) ** 2 <= 1).astype(np.uint8)) for r in (5, 9, 15)
    ]
    for trial in range(1500):
        s = list(base[trial % len(base)])
        for _ in range(int(rng.integers(1, 3))):
            s[rng.integers(len(s))] = chr(int(rng.integers(44, 116)))
        st = "".join(s)
        code = int(rle.scan([st], np.array([h * w])).codes[0])
        ok, why = rle_counts_ok(st, h * w)
        assert (code == rle.RLE_OK) == ok, st
        if not ok:
            assert code == next(v for k, v in CODE_OF_MESSAGE.items() if k in why), (st, why, code)
