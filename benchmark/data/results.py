"""Result files: the YouTube-VIS / OVIS submission format, read, checked and written.

Format (``results.json``, what the evaluation servers take, zipped)::

    [{"video_id": int, "category_id": int, "score": float in [0, 1],
      "segmentations": [compressed RLE {"size": [H, W], "counts": str} | null, ...]},  # one per frame
     ...]

:func:`check_results` reports *every* malformed entry at once as :class:`~benchmark.errors.Problem`
s naming the file, the entry (``results[12] (video 3, category 5)``) and what is wrong. Strict
checks (the default) reject what the official evaluator would silently mis-score: a per-frame list
whose length differs from the video's, a mask of another size, a score outside [0, 1]. With
``lenient=True`` those are accepted (the evaluator then reproduces the official truncation and
size-mismatch behaviour), while input the official code crashes on stays an error.

Malformed RLE strings (quirk decision): pycocotools decodes ``counts`` without any check. A string
that ends in the middle of a number (or has characters outside '0'..'o') makes it read past the
end of the string; a run that decodes negative becomes a ~4e9 unsigned run, and runs that do not
sum to ``H*W`` make its ``merge`` / ``iou`` loops spin forever as soon as the mask meets a mask of
its size (the official ``iou_seq`` merges every co-present prediction/GT pair). So the evaluator
(``deep=True``, strict *and* lenient) rejects every string the C scan does not decode to
non-negative runs summing to the mask's own ``H*W``: nothing it accepts can hang or read out of
bounds. (The official code would score a wrong-total string that never meets a GT mask of its
size; such a file is rejected here, in both modes, rather than reproduced.)

Category ids that are not in the GT: the official evaluator drops such predictions silently, and
``visrepro evaluate`` does the same (with a logged warning) so its numbers equal the official ones;
``visrepro check-results`` reports them as problems, since such predictions can never score.

Also the ``visrepro check-results`` subcommand::

    visrepro check-results RES.json --gt GT.json [--zip OUT.zip]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark._io import atomic_open, atomic_write_bytes, read_json
from benchmark.errors import InputError, Problem
from benchmark.evaluation import rle as rle_kernels

__all__ = [
    "CheckedMasks",
    "ResultsCheck",
    "VideoInfo",
    "check_parsed",
    "check_results",
    "configure",
    "gt_index",
    "read_json_fast",
    "read_results",
    "rle_counts_ok",
    "run",
    "validate_results",
    "write_results",
    "write_results_zip",
]

log = logging.getLogger(__name__)

#: video id -> (length, height, width)
VideoInfo = Mapping[int, tuple[int, int, int]]
_KEYS = ("video_id", "category_id", "score", "segmentations")


def read_json_fast(path: str | Path, *, what: str = "JSON file") -> Any:
    """Read JSON with orjson when it is installed (several times faster on large result files),
    falling back to :func:`benchmark._io.read_json`, which also words the errors."""
    try:
        import orjson
    except ImportError:  # pragma: no cover - optional speed-up
        return read_json(path, what=what)
    try:
        with open(path, "rb") as fh:
            return orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError):
        return read_json(path, what=what)  # raises the worded InputError


def read_results(path: str | Path) -> list[Any]:
    """Read a results file; it must be a JSON list (entries are checked by :func:`check_results`)."""
    data = read_json_fast(path, what="results file")
    if not isinstance(data, list):
        raise InputError(
            f"a results file must be a JSON list of {{video_id, category_id, score, segmentations}}, "
            f"not a {type(data).__name__}",
            file=path,
        )
    return data


def gt_index(gt: Mapping[str, Any]) -> tuple[dict[int, tuple[int, int, int]], set[int]]:
    """``({video id: (length, height, width)}, {category ids})`` of a parsed GT file."""
    videos: dict[int, tuple[int, int, int]] = {}
    for v in gt.get("videos") or []:
        length = v.get("length")
        if not isinstance(length, int):
            length = len(v.get("file_names") or [])
        videos[int(v["id"])] = (int(length), int(v["height"]), int(v["width"]))
    cats = {int(c["id"]) for c in gt.get("categories") or []}
    return videos, cats


@dataclass
class CheckedMasks:
    """Every compressed RLE that :func:`check_results` decoded (entries without problems, in file
    order), with the decoding results, so that the evaluator need not decode them again.

    Attributes:
        entry, frame: [S] entry index in the results list and frame index of each mask.
        height, width: [S] the mask's own ``size``.
        counts: [S] the ``counts`` strings (str, or spans of the file's text from the fast reader).
        scan: codes, pixel counts and first/last foreground pixels (:func:`rle_kernels.scan`).
    """

    entry: np.ndarray
    frame: np.ndarray
    height: np.ndarray
    width: np.ndarray
    counts: list[str] | rle_kernels.Spans
    scan: rle_kernels.Scan


@dataclass
class ResultsCheck:
    """What :func:`check_results` found.

    Attributes:
        problems: Everything that makes the file unusable in the chosen mode.
        unknown_video: Entry indices whose video is not in the GT (an error unless lenient).
        unknown_category: Entry indices whose category is not in the GT.
        quirks: Entry indices accepted only in lenient mode (wrong length or mask size).
        masks: The decoded masks (see :class:`CheckedMasks`).
    """

    problems: list[Problem] = field(default_factory=list)
    unknown_video: list[int] = field(default_factory=list)
    unknown_category: list[int] = field(default_factory=list)
    quirks: list[int] = field(default_factory=list)
    masks: CheckedMasks | None = None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _label(i: int, e: Any) -> str:
    if isinstance(e, dict):
        v, c = e.get("video_id"), e.get("category_id")
        return f"results[{i}] (video {v!r:.20}, category {c!r:.20})"
    return f"results[{i}]"


def check_results(
    entries: Any,
    videos: VideoInfo,
    cat_ids: Collection[int] | None = None,
    *,
    file: str | Path | None = None,
    lenient: bool = False,
    unknown_category_is_error: bool = False,
    deep: bool = False,
) -> ResultsCheck:
    """Check result entries against a dataset; see the module docstring for what is checked.

    Args:
        entries: The parsed results (should be a list of dicts).
        videos: ``{video id: (length, height, width)}`` of the GT.
        cat_ids: The GT category ids (``None``: not checked).
        lenient: Accept what the official evaluator accepts (wrong lengths and mask sizes, scores
            outside [0, 1]) and let unknown videos be dropped instead of reported.
        unknown_category_is_error: Report categories not in ``cat_ids`` as problems.
        deep: Also reject RLE strings that decode to a negative run or do not describe exactly
            ``H*W`` pixels (every string is decoded anyway; ``check-results`` and ``evaluate``
            use it). Without it only character-level defects are reported.
    """
    fname = str(file) if file is not None else None
    out = ResultsCheck()
    probs = out.problems
    if not isinstance(entries, list):
        probs.append(Problem(fname, None, f"results must be a list, not {type(entries).__name__}"))
        return out
    counts_all: list[str] = []
    c_entry: list[int] = []
    c_frame: list[int] = []
    c_h: list[int] = []
    c_w: list[int] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            probs.append(Problem(fname, f"results[{i}]", f"must be an object, not {type(e).__name__}"))
            continue
        where = _label(i, e)
        missing = [k for k in _KEYS if k not in e]
        if missing:
            probs.append(Problem(fname, where, f"missing key(s) {', '.join(map(repr, missing))}"))
            continue
        vid, cid, score, segs = e["video_id"], e["category_id"], e["score"], e["segmentations"]
        bad = False
        if not _is_int(vid):
            probs.append(Problem(fname, where, f"video_id must be an integer, got {type(vid).__name__}"))
            bad = True
        if not _is_int(cid):
            probs.append(Problem(fname, where, f"category_id must be an integer, got {type(cid).__name__}"))
            bad = True
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            probs.append(Problem(fname, where, f"score must be a number, got {type(score).__name__}"))
            bad = True
        elif not math.isfinite(score):
            probs.append(Problem(fname, where, f"score must be finite, got {score}"))
            bad = True
        elif not lenient and not 0.0 <= score <= 1.0:
            probs.append(Problem(fname, where, f"score {score} is outside [0, 1]"))
            bad = True
        if not isinstance(segs, list):
            probs.append(
                Problem(
                    fname,
                    where,
                    f"segmentations must be a list (one entry per frame), got {type(segs).__name__}",
                )
            )
            bad = True
        if bad:
            continue
        if cat_ids is not None and cid not in cat_ids:
            out.unknown_category.append(i)
            if unknown_category_is_error:
                probs.append(Problem(fname, where, f"category {cid} is not a category of the ground truth"))
        info = videos.get(vid)
        if info is None:
            out.unknown_video.append(i)
            if not lenient:
                probs.append(Problem(fname, where, f"video {vid} is not a video of the ground truth"))
            continue
        length, h, w = info
        quirk = False
        if len(segs) != length:
            if lenient:
                quirk = True
            else:
                probs.append(
                    Problem(
                        fname, where, f"segmentations has {len(segs)} entries, the video has {length} frames"
                    )
                )
        hw = [h, w]
        n_present = len(segs) - segs.count(None)
        if n_present:
            # fast path: every present frame is {"size": [h, w], "counts": str}
            fast = [
                s["counts"]
                for s in segs
                if type(s) is dict and s.get("size") == hw and type(s.get("counts")) is str
            ]
            if len(fast) == n_present:
                counts_all.extend(fast)
                c_entry.extend([i] * n_present)
                c_frame.extend([j for j, s in enumerate(segs) if s is not None])
                c_h.extend([h] * n_present)
                c_w.extend([w] * n_present)
                if quirk:
                    out.quirks.append(i)
                continue
        for j, s in enumerate(segs):
            if s is None:
                continue
            if type(s) is dict and s.get("size") == hw and type(s.get("counts")) is str:
                counts_all.append(s["counts"])
                c_entry.append(i)
                c_frame.append(j)
                c_h.append(h)
                c_w.append(w)
                continue
            # slow path: say what is wrong
            fw = f"{where}, segmentations[{j}]"
            if not isinstance(s, dict):
                kind = "a polygon list" if isinstance(s, list) else type(s).__name__
                probs.append(
                    Problem(fname, fw, f"must be a compressed RLE {{'size', 'counts'}} or null, not {kind}")
                )
                continue
            size, counts = s.get("size"), s.get("counts")
            if not (isinstance(size, list) and len(size) == 2 and all(_is_int(x) and x >= 0 for x in size)):
                probs.append(Problem(fname, fw, f"RLE 'size' must be [height, width], got {size!r:.40}"))
                continue
            if isinstance(counts, bytes):
                probs.append(
                    Problem(fname, fw, "RLE 'counts' is bytes; it must be a str (decode it as ASCII)")
                )
                continue
            if isinstance(counts, list):
                probs.append(
                    Problem(fname, fw, "RLE 'counts' is a list (uncompressed RLE); results need compressed "
                            "RLE (pycocotools.mask.encode, counts as str)")
                )  # fmt: skip
                continue
            if not isinstance(counts, str):
                probs.append(Problem(fname, fw, f"RLE 'counts' must be a str, got {type(counts).__name__}"))
                continue
            if size != hw:
                if lenient:
                    quirk = True
                else:
                    probs.append(
                        Problem(fname, fw, f"mask size {size[0]}x{size[1]} differs from the video's {h}x{w}")
                    )
                    continue
            counts_all.append(counts)
            c_entry.append(i)
            c_frame.append(j)
            c_h.append(size[0])
            c_w.append(size[1])
        if quirk:
            out.quirks.append(i)
    height = np.array(c_h, dtype=np.int64)
    width = np.array(c_w, dtype=np.int64)
    scan = rle_kernels.scan(counts_all, height * width)
    out.masks = CheckedMasks(
        entry=np.array(c_entry, dtype=np.int64), frame=np.array(c_frame, dtype=np.int64),
        height=height, width=width, counts=counts_all, scan=scan,
    )  # fmt: skip
    for k, msg in _check_counts(counts_all, scan.codes, height * width, deep):
        i, j = int(out.masks.entry[k]), int(out.masks.frame[k])
        probs.append(Problem(fname, f"{_label(i, entries[i])}, segmentations[{j}]", msg))
    return out


def check_parsed(
    parsed: rle_kernels.ParsedResults,
    videos: VideoInfo,
    cat_ids: Collection[int] | None = None,
    *,
    lenient: bool = False,
) -> ResultsCheck | None:
    """:func:`check_results` (``deep=True``) of a file read by :func:`rle_kernels.parse_results`,
    for files without problems: the same :class:`ResultsCheck` (unknown videos and categories,
    quirks, masks), or None when :func:`check_results` would report any problem, or where a mask
    string is not a valid RLE even in an entry it would skip (then parse the file as JSON and run
    :func:`check_results`, which words the problems)."""
    n = len(parsed.video_id)
    sc = parsed.scan
    if sc.codes.any():
        return None
    if not lenient and n and ((parsed.score < 0.0) | (parsed.score > 1.0)).any():
        return None
    uniq, inv = np.unique(parsed.video_id, return_inverse=True)
    info = [videos.get(int(v)) for v in uniq.tolist()]
    known_u = np.array([x is not None for x in info], dtype=bool)
    lhw_u = np.array([x if x is not None else (0, 0, 0) for x in info], dtype=np.int64).reshape(-1, 3)
    known = known_u[inv]
    if not lenient and not known.all():
        return None
    lhw = lhw_u[inv]
    out = ResultsCheck()
    out.unknown_video = np.flatnonzero(~known).tolist()
    if cat_ids is not None:
        cats = np.fromiter(cat_ids, dtype=np.int64, count=len(cat_ids))
        out.unknown_category = np.flatnonzero(~np.isin(parsed.category_id, cats)).tolist()
    bad_len = known & (parsed.n_frames != lhw[:, 0])
    m_known = known[parsed.entry]
    m_lhw = lhw[parsed.entry]
    bad_size = m_known & ((parsed.height != m_lhw[:, 1]) | (parsed.width != m_lhw[:, 2]))
    if not lenient and (bad_len.any() or bad_size.any()):
        return None
    # (a set, not np.union1d: that imports numpy.ma on its first call, 15 ms of an evaluation)
    out.quirks = sorted(set(np.flatnonzero(bad_len).tolist()) | set(parsed.entry[bad_size].tolist()))
    if m_known.all():
        sel: np.ndarray | slice = slice(None)
        counts = parsed.counts
    else:  # entries of unknown videos are skipped (lenient), their masks too
        sel = np.flatnonzero(m_known)
        counts = parsed.counts.take(sel)
    out.masks = CheckedMasks(
        entry=parsed.entry[sel], frame=parsed.frame[sel], height=parsed.height[sel],
        width=parsed.width[sel], counts=counts,
        scan=rle_kernels.Scan(sc.codes[sel], sc.areas[sel], sc.first[sel], sc.end[sel]),
    )  # fmt: skip
    return out


def _check_counts(
    counts: Sequence[str] | rle_kernels.Spans, codes: np.ndarray, areas: np.ndarray, deep: bool
) -> list[tuple[int, str]]:
    """(index, message) of every RLE string that is not a plausible compressed RLE.

    Always: characters in '0'..'o' and a complete last group, non-empty. ``deep``: also runs
    non-negative and summing to the mask's pixel count. ``codes`` come from the C scan (which
    reports the first problem in decoding order); the messages from :func:`rle_counts_ok`.
    """
    bad: list[tuple[int, str]] = []
    for k in np.flatnonzero(codes != rle_kernels.RLE_OK).tolist():
        c = counts[k]
        if not deep and codes[k] in (rle_kernels.RLE_NEGATIVE, rle_kernels.RLE_TOTAL):
            # decodable up to a wrong run: only a character-level defect counts without ``deep``
            ch = c[-1:]
            if c.isascii() and all(48 <= ord(x) <= 111 for x in c) and not (ord(ch) - 48) & 0x20:
                continue
        ok, why = rle_counts_ok(c, int(areas[k]))
        if ok:  # only a number of more than 60 bits, which the C scan refuses to decode
            why = "RLE 'counts' has a number of more than 60 bits, not a plausible compressed RLE"
        bad.append((k, why))
    return bad


def rle_counts_ok(counts: str, area: int) -> tuple[bool, str]:
    """Whether a compressed-RLE string decodes (like pycocotools' ``rleFrString``) to non-negative
    runs summing to ``area``; with a reason when not."""
    if counts == "":
        return False, "RLE 'counts' is empty (it must describe every pixel)"
    total = 0
    runs: list[int] = []
    x = k = 0
    more = False
    for ch in counts:
        c = ord(ch) - 48
        if not 0 <= c < 64:
            return False, f"RLE 'counts' has the character {ch!r}, not a compressed RLE"
        x |= (c & 0x1F) << (5 * k)
        more = bool(c & 0x20)
        k += 1
        if not more:
            if c & 0x10:
                x |= -1 << (5 * k)
            if len(runs) > 2:
                x += runs[-2]
            if x < 0:
                return False, "RLE 'counts' decodes to a negative run length"
            runs.append(x)
            total += x
            x = k = 0
    if more:
        return False, "RLE 'counts' ends in the middle of a number (truncated string)"
    if total != area:
        return False, f"RLE 'counts' describes {total} pixels, the mask has {area}"
    return True, ""


def validate_results(
    entries: Any,
    videos: VideoInfo,
    cat_ids: Collection[int] | None = None,
    *,
    file: str | Path | None = None,
    lenient: bool = False,
    unknown_category_is_error: bool = False,
    deep: bool = False,
) -> ResultsCheck:
    """:func:`check_results`, raising :class:`InputError` listing every problem."""
    res = check_results(
        entries, videos, cat_ids, file=file, lenient=lenient,
        unknown_category_is_error=unknown_category_is_error, deep=deep,
    )  # fmt: skip
    if res.problems:
        raise InputError(res.problems)
    return res


def _normalise(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        segs = []
        for s in e["segmentations"]:
            if s is not None and isinstance(s.get("counts"), bytes):
                s = {"size": list(s["size"]), "counts": s["counts"].decode("ascii")}
            segs.append(s)
        out.append({
            "video_id": int(e["video_id"]), "category_id": int(e["category_id"]),
            "score": float(e["score"]), "segmentations": segs,
        })  # fmt: skip
    return out


def write_results(path: str | Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """Write entries as a compact ``results.json`` atomically (bytes counts are decoded to str)."""
    with atomic_open(path, "w") as fh:
        json.dump(_normalise(entries), fh, separators=(",", ":"), allow_nan=False)


def write_results_zip(path: str | Path, entries: Sequence[Mapping[str, Any]] | str | Path) -> None:
    """Write the zip a server expects (``results.json`` at its root) atomically.

    ``entries`` is either the entries or the path of an existing results file (copied as is).
    """
    if isinstance(entries, (str, Path)):
        data = Path(entries).read_bytes()
    else:
        data = json.dumps(_normalise(entries), separators=(",", ":"), allow_nan=False).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("results.json", data)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------------------
# visrepro check-results


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="results.json to check")
    parser.add_argument("--gt", type=Path, required=True, help="GT annotation file of the split")
    parser.add_argument("--zip", type=Path, help="also write the server zip (results.json at its root)")
    parser.add_argument(
        "--lenient", action="store_true",
        help="accept what the official evaluator accepts (wrong lengths/sizes, scores outside [0,1])",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    gt = read_json_fast(args.gt, what="GT annotation file")
    if not isinstance(gt, dict) or not isinstance(gt.get("videos"), list):
        raise InputError("a GT file must be an object with 'videos' and 'categories'", file=args.gt)
    videos, cats = gt_index(gt)
    entries = read_results(args.results)
    res = validate_results(
        entries, videos, cats, file=args.results, lenient=args.lenient,
        unknown_category_is_error=True, deep=True,
    )  # fmt: skip
    n_vid = len({e["video_id"] for e in entries})
    msg = f"{args.results}: OK, {len(entries)} predictions for {n_vid} of {len(videos)} videos"
    if res.quirks:
        msg += f" ({len(res.quirks)} accepted only leniently: wrong length or mask size)"
    if res.unknown_video:
        msg += f" ({len(res.unknown_video)} for videos not in the GT, dropped by the evaluator)"
    print(msg)
    if args.zip:
        write_results_zip(args.zip, args.results)
        print(f"wrote {args.zip}")
    return 0
