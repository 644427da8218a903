"""``visrepro evaluate``: YouTube-VIS / OVIS AP and AR of a results file.

    visrepro evaluate --gt GT.json --results RES.json [--out METRICS.json] [--per-category]
                      [--per-video] [--bootstrap N] [--seed S] [--lenient]

Prints a table on stdout and writes the metrics JSON atomically (``stats``, ``per_category``,
``ovis`` when the GT has occlusion labels, ``bootstrap``/``per_video`` when asked, ``meta``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from benchmark.errors import UsageError

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", type=Path, required=True, help="GT annotation file (YouTube-VIS / OVIS)")
    parser.add_argument("--results", type=Path, required=True, help="results.json to evaluate")
    parser.add_argument("--out", type=Path, help="write the metrics JSON here (atomically)")
    parser.add_argument("--per-category", action="store_true", help="print the per-category table")
    parser.add_argument("--per-video", action="store_true", help="add per-video diagnostics to the JSON")
    parser.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="bootstrap CI of AP, N resamples"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--lenient", action="store_true",
        help="score malformed predictions like the official code (zip truncation, size mismatch, "
        "unknown videos dropped) instead of rejecting them",
    )  # fmt: skip


def _fmt(x: float) -> str:
    return "   -  " if x < 0 else f"{100 * x:6.2f}"


def _table(rows: list[tuple[str, dict[str, float]]], names: tuple[str, ...]) -> str:
    width = max([len(r[0]) for r in rows] + [8])
    head = f"{'':<{width}} " + " ".join(f"{n:>6}" for n in names)
    lines = [head]
    for label, st in rows:
        lines.append(f"{label:<{width}} " + " ".join(_fmt(st[n]) for n in names))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.bootstrap < 0:
        raise UsageError("--bootstrap must be >= 0")
    from benchmark._io import atomic_write_json
    from benchmark.evaluation.evaluate import evaluate
    from benchmark.evaluation.ytvis_eval import OVIS_STAT_NAMES, STAT_NAMES

    res = evaluate(
        args.gt, args.results, lenient=args.lenient, bootstrap=args.bootstrap, seed=args.seed,
        per_video=args.per_video,
    )  # fmt: skip
    print(_table([("overall", res.stats)], STAT_NAMES))
    if res.ovis is not None:
        print("\nOVIS (occlusion ranges)")
        print(_table([("overall", res.ovis)], OVIS_STAT_NAMES[6:9] + OVIS_STAT_NAMES[15:]))
    if args.per_category:
        print("\nper category")
        print(_table([(f"cat {k}", v) for k, v in res.per_category.items()], STAT_NAMES))
    if res.bootstrap is not None and "mean" in res.bootstrap:
        b: dict[str, Any] = res.bootstrap
        print(
            f"\nbootstrap AP ({b['n']} resamples of videos, seed {b['seed']}): mean {100 * b['mean']:.2f}, "
            f"std {100 * b['std']:.2f}, 95% CI [{100 * b['p2_5']:.2f}, {100 * b['p97_5']:.2f}]"
        )
    if args.out:
        atomic_write_json(args.out, res.to_dict(), indent=1)
        log.info("wrote %s", args.out)
    return 0
