#!/usr/bin/env python
"""Benchmark: visrepro's evaluator vs the official YouTube-VIS evaluator, end to end.

Generates (deterministically, cached under --workdir) a problem the size of YouTube-VIS 2019 valid:
302 videos of 20-36 frames at 720x1280 and 360x640, ~680 GT tracks over 40 categories, 10
predictions per video (matches of varying quality, wrong categories, duplicates, false positives,
absent frames). Then, each implementation in its own subprocess (fresh interpreter, so peak RSS is
its own; the two interleaved, so that a change of the machine's load hits both alike): load both
JSON files, evaluate, accumulate, summarize. Checks that the 12 numbers agree and reports seconds
(best of --repeat), the speed ratio (best over best, and the median over the interleaved pairs), the
load average and peak memory (VmHWM).

The official evaluator is optional: point --official at a directory holding a package
``ytvis_official`` with youtubevos/cocoapi's ``ytvos.py`` / ``ytvoseval.py`` (numpy fix applied:
``np.float`` -> ``float``, ``int()`` around the linspace ``num``) and a ``mask.py`` re-exporting
``pycocotools.mask``. It is never part of this repository.

    python benchmarks/bench_evaluator.py --official /tmp/official_cocoapi
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
GEN_VERSION = 2


# --------------------------------------------------------------------------------------------
# problem generation: ellipse masks written directly as RLE (no 720p rasterisation)


def ellipse_rle(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> dict | None:
    """Compressed RLE of an axis-aligned ellipse, built column by column (column-major)."""
    from pycocotools import mask as mask_utils

    x = np.arange(max(0, int(np.ceil(cx - rx))), min(w, int(np.floor(cx + rx)) + 1))
    if len(x) == 0:
        return None
    t = np.clip(1.0 - ((x - cx) / max(rx, 1e-6)) ** 2, 0.0, None)
    hh = ry * np.sqrt(t)
    y0 = np.clip(np.round(cy - hh), 0, h).astype(np.int64)
    y1 = np.clip(np.round(cy + hh), 0, h).astype(np.int64)
    keep = y1 > y0
    x, y0, y1 = x[keep], y0[keep], y1[keep]
    if len(x) == 0:
        return None
    start = x * h + y0
    end = x * h + y1
    counts = np.empty(2 * len(x) + 1, dtype=np.int64)
    counts[0] = start[0]
    counts[1::2] = end - start
    counts[2:-1:2] = start[1:] - end[:-1]
    counts[-1] = h * w - end[-1]
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts.astype(np.uint32)}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def generate(seed: int = 2019) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    n_videos, n_cats, preds_per_video = 302, 40, 10
    videos, anns, results = [], [], []
    ann_id = 0
    for v in range(1, n_videos + 1):
        h, w = (720, 1280) if rng.random() < 0.65 else (360, 640)
        n = int(rng.integers(20, 37))
        videos.append({"id": v, "height": h, "width": w, "length": n,
                       "file_names": [f"v{v:04d}/{f:05d}.jpg" for f in range(n)]})  # fmt: skip
        n_gt = int(rng.choice([1, 1, 1, 2, 2, 2, 3, 3, 4, 4]))
        tracks = []
        for _ in range(n_gt):
            cat = int(rng.integers(1, n_cats + 1))
            r0 = float(rng.uniform(0.04, 0.3)) * min(h, w)
            ar = float(rng.uniform(0.5, 2.0))
            c0 = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
            vel = rng.normal(0, 3, 2) * (w / 1280)
            first = int(rng.integers(0, n // 3)) if rng.random() < 0.3 else 0
            last = n - int(rng.integers(0, n // 3)) if rng.random() < 0.3 else n
            geo = []
            for f in range(n):
                c = c0 + vel * f
                rx, ry = r0 * ar**0.5 * (1 + 0.05 * np.sin(f / 3)), r0 / ar**0.5
                geo.append((float(c[0]), float(c[1]), rx, ry) if first <= f < last else None)
            segs = [ellipse_rle(h, w, *g) if g else None for g in geo]
            areas = [None if s is None else int(_area(s)) for s in segs]
            ann_id += 1
            anns.append({"id": ann_id, "video_id": v, "category_id": cat, "iscrowd": 0, "segmentations": segs,
                         "areas": areas, "bboxes": [None] * n, "height": h, "width": w, "length": n})  # fmt: skip
            tracks.append((cat, geo))
        for p in range(preds_per_video):
            kind = rng.random()
            if kind < 0.8:  # a prediction of a GT object (top-10 outputs cluster on the objects)
                cat, geo = tracks[p % len(tracks)]
                if p >= len(tracks) and rng.random() < 0.5:
                    cat = int(rng.integers(1, n_cats + 1))  # the same object, another category
                q = float(rng.uniform(0.0, 0.35))  # localisation error
                score = float(np.clip(rng.beta(4, 2) - q, 0.01, 1.0))
                dx, dy = rng.normal(0, q * 60, 2)
                s = float(rng.uniform(1 - q, 1 + q))
                segs = []
                for g in geo:
                    if g is None or rng.random() < 0.03:
                        segs.append(ellipse_rle(h, w, g[0] + dx, g[1] + dy, g[2] * s, g[3] / s)
                                    if g is not None and rng.random() < 0.5 else None)  # fmt: skip
                    else:
                        segs.append(ellipse_rle(h, w, g[0] + dx, g[1] + dy, g[2] * s, g[3] * s))
            else:  # false positive somewhere, often of a category present in the video
                cat = tracks[0][0] if rng.random() < 0.5 else int(rng.integers(1, n_cats + 1))
                score = float(rng.uniform(0.01, 0.5))
                cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
                r = float(rng.uniform(0.03, 0.2)) * min(h, w)
                segs = [
                    ellipse_rle(h, w, cx + f, cy, r, r * 0.8) if rng.random() < 0.9 else None
                    for f in range(n)
                ]
            results.append(
                {"video_id": v, "category_id": cat, "score": round(score, 4), "segmentations": segs}
            )
    cats = [{"id": c, "name": f"cat{c}", "supercategory": "object"} for c in range(1, n_cats + 1)]
    return {"info": {}, "licenses": [], "videos": videos, "categories": cats, "annotations": anns}, results


def _area(rle: dict) -> int:
    from pycocotools import mask as mask_utils

    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))


def ensure_problem(workdir: Path, seed: int) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    gt_p, res_p = workdir / f"gt_s{seed}_v{GEN_VERSION}.json", workdir / f"res_s{seed}_v{GEN_VERSION}.json"
    if not (gt_p.exists() and res_p.exists()):
        t = time.perf_counter()
        gt, res = generate(seed)
        gt_p.write_text(json.dumps(gt, separators=(",", ":")))
        res_p.write_text(json.dumps(res, separators=(",", ":")))
        print(f"generated the problem in {time.perf_counter() - t:.1f}s -> {workdir}", file=sys.stderr)
    return gt_p, res_p


# --------------------------------------------------------------------------------------------
# workers (one subprocess per implementation and run)


def _hwm_kib() -> int:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it is reset by exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(impl: str, gt: str, res: str, official: str | None) -> None:
    base = _hwm_kib()
    if impl == "ours":
        from benchmark.evaluation.evaluate import evaluate

        t = time.perf_counter()
        r = evaluate(gt, res)
        secs = time.perf_counter() - t
        stats = [r.stats[n] for n in STAT_NAMES]
    else:
        sys.path.insert(0, str(official))
        with contextlib.redirect_stdout(io.StringIO()):
            from ytvis_official.ytvos import YTVOS
            from ytvis_official.ytvoseval import YTVOSeval

            base = _hwm_kib()
            t = time.perf_counter()
            g = YTVOS(gt)
            d = g.loadRes(res)
            e = YTVOSeval(g, d, "segm")
            e.evaluate()
            e.accumulate()
            e.summarize()
            secs = time.perf_counter() - t
        stats = [float(x) for x in e.stats]
    peak = _hwm_kib()
    print(
        json.dumps(
            {"seconds": secs, "maxrss_mib": peak / 1024, "import_rss_mib": base / 1024, "stats": stats}
        )
    )


def _loadavg() -> float:
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def run_worker(impl: str, gt: Path, res: Path, official: str | None) -> dict:
    cmd = [sys.executable, __file__, "--_worker", impl, "--_gt", str(gt), "--_res", str(res)]
    if official:
        cmd += ["--official", official]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", help="directory with the official evaluator package 'ytvis_official'")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "visrepro_bench_evaluator")
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the report here")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    ap.add_argument("--_gt", help=argparse.SUPPRESS)
    ap.add_argument("--_res", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        worker(args._worker, args._gt, args._res, args.official)
        return 0
    gt, res = ensure_problem(args.workdir, args.seed)
    g = json.loads(gt.read_text())
    n_pred = len(json.loads(res.read_text()))
    print(f"problem: {len(g['videos'])} videos, {len(g['annotations'])} GT tracks, {n_pred} predictions, "
          f"{len(g['categories'])} categories; GT {gt.stat().st_size / 2**20:.1f} MiB, "
          f"results {res.stat().st_size / 2**20:.1f} MiB")  # fmt: skip
    impls = ["ours"] + (["official"] if args.official else [])
    report: dict = {"loadavg_before": _loadavg()}
    # interleaved (ours, official, ours, ...): a change of the machine's load hits both alike
    all_runs: dict[str, list[dict]] = {impl: [] for impl in impls}
    for _ in range(max(1, args.repeat)):
        for impl in impls:
            all_runs[impl].append(run_worker(impl, gt, res, args.official))
    report["loadavg_after"] = _loadavg()
    for impl in impls:
        runs = all_runs[impl]
        best = min(runs, key=lambda r: r["seconds"])
        report[impl] = {"seconds_best": best["seconds"], "seconds_all": [r["seconds"] for r in runs],
                        "maxrss_mib": max(r["maxrss_mib"] for r in runs),
                        "import_rss_mib": best["import_rss_mib"], "stats": best["stats"]}  # fmt: skip
        print(f"{impl:>9}: {best['seconds']:.3f}s best of {len(runs)} "
              f"({', '.join('{:.3f}'.format(r['seconds']) for r in runs)}), peak RSS {report[impl]['maxrss_mib']:.0f} MiB "
              f"(after imports {best['import_rss_mib']:.0f} MiB)")  # fmt: skip
    print(
        "stats (ours): "
        + " ".join(f"{n}={v:.4f}" for n, v in zip(STAT_NAMES, report["ours"]["stats"], strict=False))
    )
    if "official" in report:
        diff = max(
            abs(a - b) for a, b in zip(report["ours"]["stats"], report["official"]["stats"], strict=True)
        )
        ratio = report["official"]["seconds_best"] / report["ours"]["seconds_best"]
        pairs = sorted(
            o / u
            for o, u in zip(report["official"]["seconds_all"], report["ours"]["seconds_all"], strict=True)
        )
        median = float(np.median(pairs))
        report["max_abs_diff"], report["speedup"], report["speedup_pairs_median"] = diff, ratio, median
        print(
            f"max |ours - official| over the 12 stats: {diff:.3e} ({'IDENTICAL' if diff == 0 else 'DIFFER'})"
        )
        print(f"speed-up: {ratio:.1f}x (best / best); per interleaved pair: median {median:.1f}x, "
              f"min {pairs[0]:.1f}x, max {pairs[-1]:.1f}x")  # fmt: skip
    print(
        f"load average (1 min) before / after: {report['loadavg_before']:.2f} / {report['loadavg_after']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if report.get("max_abs_diff", 0.0) <= 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
