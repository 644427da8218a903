"""The C reader of GT files (``rle.parse_gt`` + ``loading.gt_table_from_parsed``) against the orjson +
``validate_annotation_dict`` + ``build_gt`` route.

Wherever the fast route accepts a file, the file must be valid and the GT table exactly the JSON
route's; on anything else it gives up (None -> the JSON route, which words the problems).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from benchmark.data.ytvis import validate_annotation_dict
from benchmark.errors import InputError
from benchmark.evaluation import evaluate as evaluate_mod
from benchmark.evaluation import rle
from benchmark.evaluation.evaluate import evaluate
from benchmark.evaluation.loading import GTTable, build_gt, gt_table_from_parsed
from benchmark.masks import encode_mask

CASES = Path(__file__).parent / "fixtures" / "evaluator"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def _assert_same(a: Any, b: Any, path: str = "table") -> None:
    if isinstance(a, (list, rle.Spans)):
        assert [a[i] for i in range(len(a))] == [b[i] for i in range(len(b))], path
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype or a.size == b.size == 0, (path, a.dtype, b.dtype)
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, (path, a, b)


def _fast_table(raw: bytes) -> GTTable | None:
    p = rle.parse_gt(raw)
    return None if p is None else gt_table_from_parsed(p)


def _is_valid(data: Any) -> bool:
    try:
        validate_annotation_dict(data, "gt.json", allow_unknown_categories=True)
    except InputError:
        return False
    return True


def _check(raw: bytes) -> GTTable | None:
    """The fast table of ``raw`` (asserting it equals the JSON route's), or None where it gives up."""
    fast = _fast_table(raw)
    if fast is not None:
        data = orjson.loads(raw)
        assert _is_valid(data)
        _assert_same(fast, build_gt(data))
    return fast


@pytest.mark.parametrize("name", NAMES)
def test_cases_same_table(name: str) -> None:
    raw = (CASES / name / "gt.json").read_bytes()
    fast = _check(raw)
    data = orjson.loads(raw)
    segs = [s for a in data.get("annotations") or [] for s in a["segmentations"] if s]
    if _is_valid(data) and all(isinstance(s, dict) and isinstance(s.get("counts"), str) for s in segs):
        assert fast is not None  # compressed RLE only: the fast route
    if not all(isinstance(s, dict) and isinstance(s.get("counts"), str) for s in segs):
        assert fast is None  # polygons, uncompressed RLE: the JSON route


# ------------------------------------------------------------------------------------------------
# variants of a small GT file

H, W, LEN = 6, 8, 4


def _rle(seed: int, h: int = H, w: int = W) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return encode_mask((rng.random((h, w)) < 0.4).astype(np.uint8))


def _base() -> dict[str, Any]:
    videos = [{"id": v, "height": H, "width": W, "length": LEN, "file_names": [f"v{v}/{i}.jpg" for i in range(LEN)]}
              for v in (3, 1, 2)]  # fmt: skip
    anns = []
    for k, (v, c) in enumerate([(1, 1), (2, 2), (1, 2), (3, 1), (1, 1), (2, 7)]):
        anns.append({
            "id": 10 + k, "video_id": v, "category_id": c, "iscrowd": int(k == 4),
            "segmentations": [_rle(10 * k + f) if (k + f) % 3 else None for f in range(LEN)],
            "areas": [None if (k + f) % 3 == 0 else [12, 7.5, 0, 3][f] for f in range(LEN)],
            "bboxes": [None] * LEN, "height": H, "width": W, "length": LEN,
        })  # fmt: skip
    return {"info": {"x": [1, {"y": None}]}, "licenses": [], "videos": videos,
            "categories": [{"id": 2, "name": "b", "supercategory": "s"}, {"id": 1, "name": "a"}],
            "annotations": anns}  # fmt: skip


def _variant(edit: Any) -> dict[str, Any]:
    g = _base()
    edit(g)
    return g


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(g: dict[str, Any]) -> None:
        d = g
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return edit


def _delete(path: tuple[Any, ...]) -> Any:
    def edit(g: dict[str, Any]) -> None:
        d = g
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]

    return edit


def _set_occlusion(g: dict[str, Any]) -> None:
    for a in g["annotations"]:
        a["occlusion"] = ["no_occlusion", "slight_occlusion", None, "severe_occlusion"]


ACCEPTED = {
    "base": lambda g: None,
    "no length": _delete(("videos", 0, "length")),
    "no bboxes": _delete(("annotations", 0, "bboxes")),
    "null bboxes": _set(("annotations", 0, "bboxes"), None),
    "boxes": _set(("annotations", 1, "bboxes"), [[1, 2.5, 3, 4e1], None, [0, 0, 0, 0], None]),
    "annotations null": _set(("annotations",), None),
    "annotations absent": _delete(("annotations",)),
    "no annotations": _set(("annotations",), []),
    "float areas": _set(("annotations", 2, "areas"), [1.25, None, 2.5, 1e3]),
    "whole float areas": _set(("annotations", 2, "areas"), [1.0, 2.0, 0.0, -0.0]),
    "all null areas": _set(("annotations", 3, "areas"), [None] * LEN),
    "occlusion": _set_occlusion,
    "some occlusion": _set(("annotations", 0, "occlusion"), ["no_occlusion", None, None, None]),
    "null occlusion": _set(("annotations", 0, "occlusion"), None),
    "unlisted category": _set(("annotations", 0, "category_id"), 99),
    "negative category id": _set(("categories", 0, "id"), -2),
    "extra keys": lambda g: g["videos"][0].update(coco_url='http://x/"y"', n=[{}, [], 1.5e-3, True]),
    "escaped name": _set(("categories", 0, "name"), 'a\\"b\n\t/'),
    "all-zero mask": _set(("annotations", 0, "segmentations", 1), encode_mask(np.zeros((H, W), np.uint8))),
    "no categories": _set(("categories",), []),
}

REJECTED = {  # the fast route gives up; valid or not, the JSON route decides
    "polygon": _set(("annotations", 0, "segmentations", 1), [[0, 0, 3, 0, 3, 3]]),
    "uncompressed": _set(("annotations", 0, "segmentations", 1), {"size": [H, W], "counts": [H * W]}),
    "mask key": _set(("annotations", 0, "segmentations", 1, "extra"), 1),
    "unicode name": _set(("categories", 0, "name"), "é"),
    "file name escape": _set(("videos", 0, "file_names", 0), "v3\\/0.jpg"),
    "dotdot": _set(("videos", 0, "file_names", 0), "../0.jpg"),
    "duplicate file": _set(("videos", 0, "file_names", 1), "v3/0.jpg"),
    "empty file_names": _set(("videos", 0, "file_names"), []),
    "duplicate video": _set(("videos", 1, "id"), 3),
    "duplicate category": _set(("categories", 1, "id"), 2),
    "duplicate annotation": _set(("annotations", 1, "id"), 10),
    "unknown video": _set(("annotations", 0, "video_id"), 9),
    "length differs": _set(("videos", 0, "length"), 5),
    "short segmentations": _set(("annotations", 0, "segmentations"), [None] * (LEN - 1)),
    "long areas": _set(("annotations", 0, "areas"), [1] * (LEN + 1)),
    "short boxes": _set(("annotations", 0, "bboxes"), [None]),
    "bad box": _set(("annotations", 0, "bboxes"), [[1, 2, 3], None, None, None]),
    "bad occlusion": _set(("annotations", 0, "occlusion"), ["heavy", None, None, None]),
    "negative area": _set(("annotations", 0, "areas"), [-1, None, None, None]),
    "bool area": _set(("annotations", 0, "areas"), [True, None, None, None]),
    "float iscrowd": _set(("annotations", 0, "iscrowd"), 0.0),
    "iscrowd 2": _set(("annotations", 0, "iscrowd"), 2),
    "string id": _set(("annotations", 0, "id"), "10"),
    "missing areas": _delete(("annotations", 0, "areas")),
    "missing iscrowd": _delete(("annotations", 0, "iscrowd")),
    "missing width": _delete(("videos", 0, "width")),
    "zero height": _set(("videos", 0, "height"), 0),
    "mask size": _set(("annotations", 0, "segmentations", 1), _rle(1, H, W + 1)),
    "bad rle": _set(("annotations", 0, "segmentations", 1), {"size": [H, W], "counts": "0O"}),
    "short rle": _set(("annotations", 0, "segmentations", 1), {"size": [H, W], "counts": "1"}),
    "videos not a list": _set(("videos",), {}),
    "annotation not an object": _set(("annotations", 0), []),
    "big int": _set(("videos", 0, "id"), 10**19),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_variants(name: str) -> None:
    g = _variant(ACCEPTED[name])
    raw = json.dumps(g).encode()
    assert _check(raw) is not None
    assert _check(json.dumps(g, indent=2).encode()) is not None  # whitespace anywhere


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_variants(name: str) -> None:
    g = _variant(REJECTED[name])
    assert _check(json.dumps(g).encode()) is None


def test_key_order_and_duplicate_keys() -> None:
    g = _base()
    shuffled = {k: g[k] for k in reversed(list(g))}
    shuffled["annotations"] = [dict(reversed(list(a.items()))) for a in g["annotations"]]
    assert _check(json.dumps(shuffled).encode()) is not None
    raw = json.dumps(g).encode()
    assert _check(raw.replace(b'"id": 10,', b'"id": 10, "id": 11,', 1)) is None  # JSON: the last wins
    assert _check(raw.replace(b'"videos":', b'"videos": [], "videos":', 1)) is None


def test_not_json() -> None:
    raw = json.dumps(_base()).encode()
    for bad in (raw[:-1], raw + b"x", raw.replace(b"null", b"nul", 1), raw.replace(b"12", b"012", 1),
                raw.replace(b": 1,", b": NaN,", 1), b"", b"[]", b'{"videos": []}'):  # fmt: skip
        assert rle.parse_gt(bad) is None or _check(bad) is not None


def test_random_mutations() -> None:
    """Byte mutations of a GT file: whatever the fast route accepts is valid JSON, valid GT and gives
    the JSON route's table."""
    rng = np.random.default_rng(0)
    raw = json.dumps(_variant(ACCEPTED["occlusion"])).encode()
    alphabet = b'0123456789-.eE,:[]{}" nultrfasb\\/_'
    n_fast = 0
    for _ in range(1500):
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(len(b)))
            op = rng.integers(3)
            if op == 0:
                b[k] = alphabet[int(rng.integers(len(alphabet)))]
            elif op == 1:
                del b[k]
            else:
                b.insert(k, alphabet[int(rng.integers(len(alphabet)))])
        fast = _fast_table(bytes(b))
        if fast is not None:
            n_fast += 1
            data = json.loads(bytes(b))  # the official json module agrees
            assert _is_valid(data)
            _assert_same(fast, build_gt(data))
    assert n_fast > 50


# ------------------------------------------------------------------------------------------------
# evaluate(): the same result on both routes


def _routes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate_mod.rle_kernels, "parse_gt", lambda raw: None)
    monkeypatch.setattr(evaluate_mod.rle_kernels, "parse_results", lambda raw: None)


@pytest.mark.parametrize("name", NAMES)
def test_cases_same_result_both_routes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gt, res = CASES / name / "gt.json", CASES / name / "results.json"
    lenient = name.startswith("quirk_") or name.startswith("error_") or name == "hm_empty_results"
    fast = evaluate(gt, res, lenient=lenient).to_dict()
    _routes_off(monkeypatch)
    slow = evaluate(gt, res, lenient=lenient).to_dict()
    for d in (fast, slow):
        d["meta"].pop("seconds")
    assert fast == slow


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_variants_same_outcome(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _variant(REJECTED[name])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(g))
    res = tmp_path / "res.json"
    a = g["annotations"][1] if isinstance(g.get("annotations"), list) and len(g["annotations"]) > 1 else None
    vid = a["video_id"] if isinstance(a, dict) else 1
    res.write_text(json.dumps([{"video_id": vid, "category_id": 2, "score": 0.5,
                                "segmentations": [_rle(f) for f in range(LEN)]}]))  # fmt: skip

    def outcome() -> Any:
        try:
            out = evaluate(gt, res).to_dict()
        except InputError as exc:
            return str(exc)
        out["meta"].pop("seconds")
        return out

    fast = outcome()
    with monkeypatch.context() as mp:
        _routes_off(mp)
        assert outcome() == fast


def test_ovis_file_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _variant(ACCEPTED["occlusion"])
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(g))
    res = tmp_path / "res.json"
    entries = [{"video_id": a["video_id"], "category_id": a["category_id"], "score": 0.1 * (k + 1),
                "segmentations": copy.deepcopy(a["segmentations"])} for k, a in enumerate(g["annotations"])]  # fmt: skip
    res.write_text(json.dumps(entries))
    fast = evaluate(gt, res)
    assert fast.ovis is not None
    _routes_off(monkeypatch)
    slow = evaluate(gt, res)
    assert fast.ovis == slow.ovis and fast.stats == slow.stats and fast.per_category == slow.per_category
