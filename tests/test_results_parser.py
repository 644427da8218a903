"""The C reader of results files (``rle.parse_results``) against the orjson + Python-check route.

The fast route must give exactly the tables of the JSON route wherever it accepts a file, and give
up (None -> the JSON route, same errors) on everything else.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.data.results import check_parsed, check_results, gt_index
from benchmark.errors import InputError
from benchmark.evaluation import evaluate as evaluate_mod
from benchmark.evaluation import rle
from benchmark.evaluation.evaluate import evaluate
from benchmark.evaluation.loading import build_gt, build_preds
from benchmark.masks import encode_mask

CASES = Path(__file__).parent / "fixtures" / "evaluator"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def _same_check(parsed: rle.ParsedResults, entries: list[Any], gt: dict[str, Any], lenient: bool) -> None:
    videos, cats = gt_index(gt)
    fast = check_parsed(parsed, videos, cats, lenient=lenient)
    slow = check_results(entries, videos, cats, lenient=lenient, deep=True)
    if slow.problems:
        assert fast is None
        return
    if fast is None:  # the reader gives up on any invalid RLE, even in an entry the checks skip
        assert parsed.scan.codes.any()
        return
    assert fast.unknown_video == slow.unknown_video
    assert fast.unknown_category == slow.unknown_category
    assert fast.quirks == slow.quirks
    fm, sm = fast.masks, slow.masks
    assert fm is not None and sm is not None
    for k in ("entry", "frame", "height", "width"):
        np.testing.assert_array_equal(getattr(fm, k), getattr(sm, k))
    assert [fm.counts[i] for i in range(len(fm.counts))] == list(sm.counts)
    for k in ("codes", "areas", "first", "end"):
        np.testing.assert_array_equal(getattr(fm.scan, k), getattr(sm.scan, k))
    # the prediction tables built from both
    gtt = build_gt(gt)
    drop = set(slow.unknown_video)
    keep = [i for i in range(len(entries)) if i not in drop] if drop else None
    a = build_preds(parsed, gtt, keep, fm)
    b = build_preds(entries, gtt, keep, sm)
    for k in ("video", "cat", "score", "avg_area", "length", "slot_mask", "flat_area", "area_offset",
              "flat_cum", "regular", "entry"):  # fmt: skip
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y, err_msg=k)
    assert a.n_dropped_category == b.n_dropped_category
    # without the checked masks too
    c = build_preds(parsed, gtt, keep)
    np.testing.assert_array_equal(c.flat_area, b.flat_area)
    np.testing.assert_array_equal(c.slot_mask >= 0, b.slot_mask >= 0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lenient", [False, True])
def test_cases_same_tables(name: str, lenient: bool) -> None:
    raw = (CASES / name / "results.json").read_bytes()
    gt = json.loads((CASES / name / "gt.json").read_text())
    entries = orjson.loads(raw)
    parsed = rle.parse_results(raw)
    if any(set(e) != {"video_id", "category_id", "score", "segmentations"} for e in entries):
        assert parsed is None  # e.g. an "areas" key: the JSON route
        return
    assert parsed is not None
    np.testing.assert_array_equal(parsed.score, np.array([e["score"] for e in entries], dtype=np.float64))
    _same_check(parsed, entries, gt, lenient)


def _fast_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate_mod.rle_kernels, "parse_results", lambda raw: None)


# ------------------------------------------------------------------------------------------------
# random files: whitespace, key order, number spellings, null frames

H, W, LEN = 6, 8, 4
GT: dict[str, Any] = {
    "videos": [{"id": v, "height": H, "width": W, "length": LEN, "file_names": [f"{v}/{i}.jpg" for i in range(LEN)]}
               for v in (1, 2, 3)],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [],
}  # fmt: skip

WS = st.text(alphabet=" \t\n\r", max_size=3)


def _mask_strategy(h: int = H) -> st.SearchStrategy[dict[str, Any]]:
    bits = st.lists(st.booleans(), min_size=h * W, max_size=h * W)
    return bits.map(lambda b: encode_mask(np.array(b, dtype=np.uint8).reshape(h, W)))


def _int_text(draw: st.DrawFn, x: int) -> str:
    return "-0" if x == 0 and draw(st.booleans()) else str(x)


def _float_text(draw: st.DrawFn, x: float) -> str:
    """A JSON spelling of x (or of a nearby number: the parsed value is what is compared)."""
    kind = draw(st.sampled_from(["repr", "exp", "fixed", "int", "long"]))
    if kind == "exp":
        t = f"{x:.{draw(st.integers(0, 20))}e}"
        return t.replace("e", draw(st.sampled_from(["e", "E"]))).replace(
            "+", draw(st.sampled_from(["+", ""]))
        )
    if kind == "fixed":
        return f"{x:.{draw(st.integers(1, 25))}f}"
    if kind == "int" and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if kind == "long":
        return f"{x:.40f}"
    r = repr(x)
    return r if ("e" in r or "." in r) else r + ".0"


@st.composite
def results_file(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(JSON text, whether every value is one the C reader supports)."""
    n = draw(st.integers(0, 5))
    parts = []
    masks = [draw(_mask_strategy()) for _ in range(3)]
    other = draw(_mask_strategy(H + 1))  # another size (lenient quirk)
    for _ in range(n):
        vid = draw(st.sampled_from([1, 2, 3, 0, 99]))
        cat = draw(st.sampled_from([1, 2, 0, 7]))
        score = draw(
            st.one_of(
                st.floats(0, 1),
                st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-3, 5e-324, 2.2250738585072014e-308, 0.1, 1 / 3]),
                st.floats(-2, 2, allow_nan=False),
            )
        )
        n_fr = draw(st.sampled_from([LEN, LEN, LEN, 0, 2, LEN + 1]))
        segs = []
        for _ in range(n_fr):
            if draw(st.booleans()):
                segs.append("null")
            else:
                m = masks[draw(st.integers(0, 2))] if draw(st.integers(0, 9)) else other
                size = m["size"] if draw(st.integers(0, 19)) else [H + 1, W]  # maybe a wrong total
                counts = json.dumps(m["counts"])
                fields = [f'"size"{draw(WS)}:{draw(WS)}[{draw(WS)}{size[0]}{draw(WS)},{draw(WS)}{size[1]}{draw(WS)}]',
                          f'"counts"{draw(WS)}:{draw(WS)}{counts}']  # fmt: skip
                fields = draw(st.permutations(fields))
                segs.append("{" + draw(WS) + f"{draw(WS)},{draw(WS)}".join(fields) + draw(WS) + "}")
        fields = [
            f'"video_id"{draw(WS)}:{draw(WS)}{_int_text(draw, vid)}',
            f'"category_id"{draw(WS)}:{draw(WS)}{_int_text(draw, cat)}',
            f'"score"{draw(WS)}:{draw(WS)}{_float_text(draw, score)}',
            f'"segmentations"{draw(WS)}:{draw(WS)}[{draw(WS)}'
            + f"{draw(WS)},{draw(WS)}".join(segs)
            + f"{draw(WS)}]",
        ]
        fields = draw(st.permutations(fields))
        parts.append(
            draw(WS) + "{" + draw(WS) + f"{draw(WS)},{draw(WS)}".join(fields) + draw(WS) + "}" + draw(WS)
        )
    text = draw(WS) + "[" + draw(WS) + ",".join(parts) + draw(WS) + "]" + draw(WS)
    return text.encode(), True


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results_file(), st.booleans())
def test_random_files_same_tables(f: tuple[bytes, bool], lenient: bool) -> None:
    raw, _ = f
    entries = orjson.loads(raw)
    parsed = rle.parse_results(raw)
    ok_scores = all((math.isfinite(float(e["score"])) and abs(float(e["score"])) > 2.2250738585072014e-308)
                    or e["score"] == 0 for e in entries)  # fmt: skip
    if not ok_scores:  # subnormals: strtod reports ERANGE, the reader gives up
        return
    assert parsed is not None, raw
    assert [_bits(x) for x in parsed.score.tolist()] == [_bits(float(e["score"])) for e in entries]
    assert parsed.video_id.tolist() == [e["video_id"] for e in entries]
    assert parsed.category_id.tolist() == [e["category_id"] for e in entries]
    assert parsed.n_frames.tolist() == [len(e["segmentations"]) for e in entries]
    _same_check(parsed, entries, GT, lenient)


def test_integer_scores_like_python() -> None:
    for t, want in (
        ("-0", 0.0),
        ("0", 0.0),
        ("1", 1.0),
        ("-3", -3.0),
        ("123456789012345678", 1.2345678901234568e17),
    ):
        raw = f'[{{"video_id":1,"category_id":1,"score":{t},"segmentations":[]}}]'.encode()
        p = rle.parse_results(raw)
        assert p is not None
        assert _bits(float(p.score[0])) == _bits(want) == _bits(float(orjson.loads(raw)[0]["score"])), t
    raw = b'[{"video_id":1,"category_id":1,"score":1234567890123456789,"segmentations":[]}]'
    assert rle.parse_results(raw) is None  # 19 digits: the JSON route


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 30))
def test_scores_parsed_like_float(x: float, digits: int) -> None:
    for t in (repr(x), f"{x:.{digits}e}", f"{x:.{digits}f}"):
        if "inf" in t or "nan" in t:
            continue
        raw = f'[{{"video_id":1,"category_id":1,"score":{t},"segmentations":[]}}]'.encode()
        p = rle.parse_results(raw)
        try:
            want = float(orjson.loads(raw)[0]["score"])  # an integer token: float(int), "-0" -> 0.0
        except orjson.JSONDecodeError:  # out of range
            assert p is None, t
            continue
        if want != 0 and abs(want) < 2.2250738585072014e-308:
            continue  # subnormal: ERANGE, the reader may give up
        if p is None:  # only an underflow (ERANGE) or an integer of more than 18 digits
            digits_only = t.lstrip("-")
            assert want == 0.0 or (digits_only.isdigit() and len(digits_only) > 18), t
            continue
        assert _bits(float(p.score[0])) == _bits(want), t


def test_backslash_counts() -> None:
    """A backslash is a valid RLE character, written "\\\\" in JSON: read in place."""
    m = np.zeros((40, 50), dtype=np.uint8)
    rng = np.random.default_rng(0)
    found = None
    for _ in range(200):
        m = (rng.random((40, 50)) < rng.random()).astype(np.uint8)
        r = encode_mask(m)
        if "\\" in r["counts"]:
            found = r
            break
    assert found is not None
    raw = json.dumps(
        [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [found, found]}]
    ).encode()
    p = rle.parse_results(raw)
    assert p is not None
    assert p.counts[0] == found["counts"]
    assert int(p.scan.areas[0]) == int(m.sum()) and p.scan.codes.tolist() == [0, 0]
    # intersect on spans equals intersect on the str
    got = rle.intersect(p.counts, p.counts, np.array([0]), np.array([1]))
    want = rle.intersect([found["counts"]], [found["counts"]], np.array([0]), np.array([0]))
    assert got.tolist() == want.tolist() == [int(m.sum())]


GOOD = '{"video_id":1,"category_id":1,"score":0.5,"segmentations":[null,{"size":[6,8],"counts":"0`0"},null,null]}'
UNSUPPORTED = {
    "escape_u": GOOD.replace('"0`0"', '"\\u0030`0"'),
    "escape_slash": GOOD.replace('"0`0"', '"0`\\/0"'),
    "escape_newline_in_counts": GOOD.replace('"0`0"', '"0`\\n0"'),
    "escaped_key": GOOD.replace('"score"', '"sc\\u006fre"'),
    "extra_key": GOOD.replace('"score"', '"areas":[1],"score"'),
    "extra_mask_key": GOOD.replace('{"size"', '{"area":3,"size"'),
    "duplicate_key": GOOD.replace('"score":0.5', '"score":0.5,"score":0.7'),
    "missing_key": GOOD.replace('"score":0.5,', ""),
    "float_video_id": GOOD.replace('"video_id":1', '"video_id":1.0'),
    "bool_video_id": GOOD.replace('"video_id":1', '"video_id":true'),
    "string_score": GOOD.replace("0.5", '"0.5"'),
    "huge_int": GOOD.replace('"video_id":1', '"video_id":1234567890123456789012'),
    "score_overflow": GOOD.replace("0.5", "1e400"),
    "nan_literal": GOOD.replace("0.5", "NaN"),
    "leading_zero": GOOD.replace("0.5", "00.5"),
    "leading_plus": GOOD.replace("0.5", "+0.5"),
    "bare_dot": GOOD.replace("0.5", ".5"),
    "uncompressed_rle": GOOD.replace('"0`0"', "[0, 48]"),
    "polygon": GOOD.replace('{"size":[6,8],"counts":"0`0"}', "[[1, 2, 3, 4, 5, 6]]"),
    "size_float": GOOD.replace("[6,8]", "[6.0,8]"),
    "size_three": GOOD.replace("[6,8]", "[6,8,1]"),
    "false_frame": GOOD.replace("null,{", "false,{"),
    "trailing_comma": GOOD.replace("null]}", "null,]}"),
    "truncated": GOOD[:-5],
    "not_a_list": GOOD,
    "trailing_data": "[" + GOOD + "] x",
    "two_arrays": "[" + GOOD + "][]",
    "comment": "[" + GOOD + "] // c",
    "bom": "\ufeff[" + GOOD + "]",
    "unterminated_string": '[{"video_id":1,"category_id":1,"score":0.5,"segmentations":[{"size":[6,8],"counts":"0`0',
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_falls_back(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = UNSUPPORTED[name]
    if not text.startswith(("[", "\ufeff")):
        text = "[" + text + "]" if name != "not_a_list" else text
    raw = text.encode()
    assert rle.parse_results(raw) is None
    _same_outcome(raw, tmp_path, monkeypatch)


# accepted by the reader, rejected (or flagged) by the checks: the JSON route words the problem
CHECKED = {
    "score_out_of_range": GOOD.replace("0.5", "1.5"),
    "negative_score": GOOD.replace("0.5", "-1e-3"),
    "wrong_length": GOOD.replace("null,null]", "null]"),
    "wrong_size": GOOD.replace("[6,8]", "[8,6]"),
    "unknown_video": GOOD.replace('"video_id":1', '"video_id":9'),
    "unknown_category": GOOD.replace('"category_id":1', '"category_id":9'),
    "bad_rle_char": GOOD.replace('"0`0"', '"0 0"'),
    "negative_run": GOOD.replace('"0`0"', '"0O"'),
    "wrong_total": GOOD.replace('"0`0"', '"14"'),
    "empty_counts": GOOD.replace('"0`0"', '""'),
    "control_char": GOOD.replace('"0`0"', '"0`\t0"'),
    "non_ascii": GOOD.replace('"0`0"', '"0`\u00e90"'),
}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_checked_problems_same_outcome(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = ("[" + CHECKED[name] + "]").encode()
    _same_outcome(raw, tmp_path, monkeypatch)


def _outcome(gt: Path, res: Path, lenient: bool) -> Any:
    try:
        r = evaluate(gt, res, lenient=lenient).to_dict()
        r["meta"].pop("seconds")
        return r
    except InputError as exc:
        return ("InputError", str(exc))


def _same_outcome(raw: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GT))
    res = tmp_path / "res.json"
    res.write_bytes(raw)
    fast = [_outcome(gt, res, lenient) for lenient in (False, True)]
    with monkeypatch.context() as mp:
        _fast_off(mp)
        slow = [_outcome(gt, res, lenient) for lenient in (False, True)]
    assert fast == slow


def test_spans_and_list_strings_agree() -> None:
    raw = ("[" + GOOD + "]").encode()
    p = rle.parse_results(raw)
    assert p is not None
    s = rle.scan(p.counts, p.height * p.width)
    s2 = rle.scan([p.counts[0]], p.height * p.width)
    assert s.areas.tolist() == s2.areas.tolist() == p.scan.areas.tolist()
    from benchmark.evaluation import _rle

    with pytest.raises(TypeError):  # lengths of offsets and lengths differ
        _rle.scan((b"x", b"", np.zeros(1, np.int64).tobytes()), b"")  # type: ignore[arg-type]
    bad = (b"0`0", np.array([2], np.int64).tobytes(), np.array([5], np.int64).tobytes())
    with pytest.raises(TypeError, match="span"):  # a span past the end of the data
        _rle.scan(bad, np.array([48], np.int64).tobytes())  # type: ignore[arg-type]
