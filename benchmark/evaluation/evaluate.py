"""``evaluate()``: the evaluator's Python entry point (paths or parsed objects in, EvalResult out)."""

from __future__ import annotations

import gc
import hashlib
import logging
import mmap
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import __version__
from benchmark.data.results import ResultsCheck, check_parsed, gt_index, read_json_fast, validate_results
from benchmark.data.ytvis import validate_annotation_dict
from benchmark.errors import InputError
from benchmark.evaluation import rle as rle_kernels
from benchmark.evaluation import ytvis_eval as ye
from benchmark.evaluation.loading import GTTable, PredTable, build_gt, build_preds, gt_table_from_parsed

__all__ = ["EvalResult", "evaluate"]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """What :func:`evaluate` computed.

    Attributes:
        stats: The 12 official statistics (``STAT_NAMES``; -1 = undefined).
        per_category: ``{category id: the 12 statistics of that category alone}``.
        ovis: The OVIS fork's 18 statistics when every GT track has occlusion labels, else None.
        bootstrap: AP bootstrap summary (see :func:`bootstrap_ap`) when asked.
        per_video: Per-video diagnostics when asked.
        meta: Files, their sha256, counts, mode, version.
        warnings: What the official code would print, and what was dropped.
    """

    stats: dict[str, float]
    per_category: dict[int, dict[str, float]]
    ovis: dict[str, float] | None = None
    bootstrap: dict[str, Any] | None = None
    per_video: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stats": dict(self.stats),
            "per_category": {str(k): dict(v) for k, v in self.per_category.items()},
        }
        if self.ovis is not None:
            out["ovis"] = dict(self.ovis)
        if self.bootstrap is not None:
            out["bootstrap"] = dict(self.bootstrap)
        if self.per_video is not None:
            out["per_video"] = self.per_video
        out["meta"] = dict(self.meta)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def _sha256(raw: rle_kernels.Text) -> str:
    return hashlib.sha256(raw).hexdigest()


def _read(p: Path) -> rle_kernels.Text:
    """The bytes of a file, mapped read-only where possible: no copy into fresh memory (whose page
    faults cost more than the parse of a large results file). The evaluator only reads it, within
    one call; the file must not be truncated meanwhile (reading a file that is being rewritten
    gives garbage either way). Pipes, empty and special files are read."""
    with open(p, "rb") as fh:
        try:
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            return mmap.mmap(fh.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        except (OSError, ValueError, AttributeError):  # not mappable (a pipe, empty, no mmap flags)
            return fh.read()


def _parse_json(raw: rle_kernels.Text, p: Path, what: str) -> Any:
    try:
        import orjson

        return orjson.loads(memoryview(raw))
    except ImportError:  # pragma: no cover
        import json

        return json.loads(bytes(raw))
    except Exception:
        return read_json_fast(p, what=what)  # raises the worded InputError


def _read_or_raise(p: Path, what: str) -> rle_kernels.Text:
    try:
        return _read(p)
    except OSError:
        read_json_fast(p, what=what)  # raises the worded InputError
        raise


def _load(obj: Any, what: str) -> tuple[Any, str | None, str | None]:
    """(parsed, file name, sha256) of a path or an already-parsed object."""
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        raw = _read_or_raise(p, what)
        # hashlib releases the GIL on large inputs: hash on a second core while JSON is parsed
        with ThreadPoolExecutor(max_workers=1) as pool:
            sha_f = pool.submit(_sha256, raw)
            data = _parse_json(raw, p, what)
            sha = sha_f.result()
        return data, str(p), sha
    return obj, None, None


@dataclass
class _GT:
    """The GT as the evaluator got it: parsed JSON (``data``), or on the fast path the table that
    :func:`gt_table_from_parsed` built from what :func:`rle_kernels.parse_gt` read (``data`` None)."""

    data: Any
    table: GTTable | None
    file: str | None
    sha: str | None


@dataclass
class _Results:
    """The results as the evaluator got them: parsed JSON (``data``) or, on the fast path, what
    :func:`rle_kernels.parse_results` read (``parsed``; ``data`` is None)."""

    data: Any
    parsed: rle_kernels.ParsedResults | None
    raw: rle_kernels.Text | None
    file: str | None
    sha: str | None


_GT_WHAT = "GT annotation file"
_RES_WHAT = "results file"


def _gt_fast(raw: rle_kernels.Text) -> GTTable | None:
    parsed = rle_kernels.parse_gt(raw)
    return None if parsed is None else gt_table_from_parsed(parsed)


def _load_gt_and_results(
    gt: str | Path | Mapping[str, Any], results: str | Path | list[Any]
) -> tuple[_GT, _Results]:
    """Both inputs. Files are mapped, then hashed and read by the C readers on worker threads
    (without the GIL) while the GT is read here; where a C reader does not support a file it is
    parsed as JSON (the GT first, so that errors come in the same order)."""
    gt_raw: rle_kernels.Text | None = None
    res_raw: rle_kernels.Text | None = None
    if isinstance(gt, (str, Path)):
        try:
            gt_raw = _read(Path(gt))
        except OSError:
            gt_raw = None  # _load words the error
    if isinstance(results, (str, Path)):
        try:
            res_raw = _read(Path(results))
        except OSError:
            res_raw = None  # _load words the error, after the GT's
    table: GTTable | None = None
    parsed: rle_kernels.ParsedResults | None = None
    gt_sha = res_sha = None
    if gt_raw is not None or res_raw is not None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            parse_f = pool.submit(rle_kernels.parse_results, res_raw) if res_raw is not None else None
            sha_f = [pool.submit(_sha256, r) if r is not None else None for r in (gt_raw, res_raw)]
            try:
                table = _gt_fast(gt_raw) if gt_raw is not None else None
            finally:
                parsed = parse_f.result() if parse_f is not None else None
                gt_sha, res_sha = (f.result() if f is not None else None for f in sha_f)
    if table is not None:
        g = _GT(None, table, str(gt), gt_sha)
    elif gt_raw is not None:
        g = _GT(_parse_json(gt_raw, Path(str(gt)), _GT_WHAT), None, str(gt), gt_sha)
    else:
        data, file, sha = _load(gt, _GT_WHAT)
        g = _GT(data, None, file, sha)
    if res_raw is None:
        data, file, sha = _load(results, _RES_WHAT)
        return g, _Results(data, None, None, file, sha)
    p = Path(results)  # type: ignore[arg-type]
    data = _parse_json(res_raw, p, _RES_WHAT) if parsed is None else None
    return g, _Results(data, parsed, res_raw, str(p), res_sha)


def _select(gt: GTTable, dt: PredTable) -> np.ndarray:
    """Rows of ``dt`` kept by the official per-(video, category) cut to 100, in (category, video,
    score rank) order; ties in score keep results-file order (stable sort)."""
    n = len(dt.video)
    order = np.lexsort((np.arange(n), -dt.score, dt.video, dt.cat))
    key = dt.cat[order] * (len(gt.video_ids) + 1) + dt.video[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1] if n else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.zeros(0, np.int64)
    rank = np.arange(n) - first
    return order[rank < ye.MAX_DETS[-1]]


def evaluate(
    gt: str | Path | Mapping[str, Any],
    results: str | Path | list[Any],
    *,
    lenient: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    per_video: bool = False,
) -> EvalResult:
    """Evaluate results against a GT file like the official YouTube-VIS (and OVIS) evaluator.

    Args:
        gt: GT annotation file (path or parsed dict).
        results: results file (path or parsed list).
        lenient: Accept what the official code accepts (wrong per-frame list lengths and mask
            sizes are scored with its truncation / size-mismatch rules, predictions for videos not
            in the GT are dropped with a warning); strict (default) rejects them.
        bootstrap: Number of bootstrap resamples of the videos for a CI of AP (0: none).
        seed: Seed of the bootstrap.
        per_video: Also compute per-video diagnostics.

    Raises:
        InputError: malformed GT or results (every problem listed).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects from JSON: the cyclic GC would only slow us down
    try:
        return _evaluate(gt, results, lenient=lenient, bootstrap=bootstrap, seed=seed, per_video=per_video)
    finally:
        if gc_was_enabled:
            gc.enable()


def _evaluate(
    gt: str | Path | Mapping[str, Any],
    results: str | Path | list[Any],
    *,
    lenient: bool,
    bootstrap: int,
    seed: int,
    per_video: bool,
) -> EvalResult:
    t0 = time.perf_counter()
    g, res = _load_gt_and_results(gt, results)
    gt_file, gt_sha, res_file, res_sha = g.file, g.sha, res.file, res.sha
    if g.table is None:
        # the official evaluator drops GT tracks of unlisted categories: accept them here
        validate_annotation_dict(g.data, gt_file, allow_unknown_categories=True)
    if res.parsed is None and not isinstance(res.data, list):
        raise InputError(f"results must be a JSON list, not {type(res.data).__name__}", file=res_file)
    if g.table is None:
        videos, cats = gt_index(g.data)
    else:
        videos, cats = g.table.video_info, set(g.table.cat_ids.tolist())
    check: ResultsCheck | None = None
    if res.parsed is not None:
        check = check_parsed(res.parsed, videos, cats, lenient=lenient)
        if check is None:  # a problem: the JSON route words it
            assert res.raw is not None
            res.data, res.parsed = _parse_json(res.raw, Path(str(res_file)), _RES_WHAT), None
    if check is None:
        # deep: every RLE string must decode to non-negative runs summing to H*W, also when
        # lenient (pycocotools hangs or reads out of bounds on the others; see benchmark.data.results)
        check = validate_results(res.data, videos, cats, file=res_file, lenient=lenient, deep=True)
    entries: list[Any] | rle_kernels.ParsedResults = res.parsed if res.parsed is not None else res.data
    res.raw = None  # the spans keep the bytes alive as long as needed
    n_entries = len(res.parsed.video_id) if res.parsed is not None else len(res.data)

    def ids(idx: list[int], key: str) -> list[Any]:
        if res.parsed is not None:
            col = res.parsed.video_id if key == "video_id" else res.parsed.category_id
            return sorted(set(col[idx].tolist()))
        return sorted({res.data[i][key] for i in idx})

    warnings: list[str] = []
    keep: list[int] | None = None
    if check.unknown_video:
        bad = ids(check.unknown_video, "video_id")
        warnings.append(
            f"dropped {len(check.unknown_video)} prediction(s) for video(s) not in the GT: {bad[:10]}"
            + (" ..." if len(bad) > 10 else "")
        )
        drop = set(check.unknown_video)
        keep = [i for i in range(n_entries) if i not in drop]
    if check.unknown_category:
        bad = ids(check.unknown_category, "category_id")
        warnings.append(
            f"ignored {len(check.unknown_category)} prediction(s) of categories not in the GT "
            f"(as the official evaluator does): {bad[:10]}"
        )
    if check.quirks:
        warnings.append(
            f"{len(check.quirks)} prediction(s) scored with the official truncation / size-mismatch rules"
        )
    t_load = time.perf_counter()
    gtt = g.table if g.table is not None else build_gt(g.data)
    g.data = g.table = None  # what is left of the GT is in gtt
    dtt = build_preds(entries, gtt, keep, check.masks)
    order = _select(gtt, dtt)
    kept = np.zeros(len(dtt.video), dtype=bool)
    kept[order] = True
    pairs = ye.track_ious(gtt, dtt, kept)
    ovis = gtt.has_occlusion
    n_ranges = 7 if ovis else 4
    mt = ye.match(gtt, dtt, order, pairs, n_ranges)
    warnings.extend(mt.warnings)
    acc = ye.accumulate(mt, len(gtt.cat_ids), n_ranges)
    stats = ye.summarize(acc)
    per_cat = {int(c): ye.summarize(acc, cat=k) for k, c in enumerate(gtt.cat_ids)}
    out = EvalResult(stats=stats, per_category=per_cat, warnings=warnings)
    if ovis:
        out.ovis = ye.summarize(acc, ovis=True)
    if bootstrap > 0:
        from benchmark.evaluation.bootstrap import bootstrap_ap

        out.bootstrap = bootstrap_ap(mt, len(gtt.video_ids), len(gtt.cat_ids), bootstrap, seed)
    if per_video:
        from benchmark.evaluation.diagnostics import per_video_diagnostics

        out.per_video = per_video_diagnostics(gtt, dtt, mt)
    for w in warnings:
        log.warning("%s", w)
    t_end = time.perf_counter()
    out.meta = {
        "gt_file": gt_file, "results_file": res_file, "gt_sha256": gt_sha, "results_sha256": res_sha,
        "n_videos": len(gtt.video_ids), "n_gt_tracks": len(gtt.video), "n_categories": len(gtt.cat_ids),
        "n_predictions": n_entries, "n_predictions_evaluated": len(order),
        "lenient": lenient, "ovis": ovis, "visrepro_version": __version__,
        "seconds": {"load_validate": round(t_load - t0, 4), "evaluate": round(t_end - t_load, 4)},
    }  # fmt: skip
    return out
