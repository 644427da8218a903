"""Local splits: hold out ~10% of a train file's videos as ``valid_sub`` for local evaluation.

The YouTube-VIS and OVIS servers no longer score submissions and their valid/test annotations were
never public, so the suite evaluates on videos held out from ``train``. The rule (``visrepro-split-v1``)
is deterministic and stratified by category:

1. Each video's *stratum* is its dominant category: the category with the most annotated frames
   (non-null segmentations) over its tracks; ties go to the smaller category id; a video without
   tracks is stratum 0.
2. Inside a stratum, videos are ordered by ``sha256("visrepro-split-v1:<seed>:<video id>")``.
3. The number held out is ``round(fraction * N)`` over all N videos, shared between strata by largest
   remainder: each stratum gets ``floor(fraction * n)``, and the rest go one each to the strata with
   the largest fractional parts (ties: smaller stratum id).
4. ``valid_sub`` is the first videos of each stratum's order; ``train_sub`` is the rest.

``split.json`` records the rule, the seed, the source file's sha256 and both id lists. Given back with
``--record`` it is checked against the source (a different file is an error) and its ids are used as
they are, so every result can say exactly which videos it was scored on.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmark._io import atomic_write_json, read_json
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError, UsageError

__all__ = ["RULE", "SplitResult", "choose_valid_videos", "configure", "run", "split_annotation_file"]

log = logging.getLogger(__name__)

RULE = "visrepro-split-v1"


class SplitResult(dict[str, Any]):
    """The ``split.json`` record (a dict: rule, seed, fraction, source, valid_sub, train_sub)."""


def _stratum(ds: YTVISDataset, video_id: int) -> int:
    frames: Counter[int] = Counter()
    for t in ds.tracks_of(video_id):
        frames[t.category_id] += sum(1 for s in t.segmentations if s is not None)
    if not frames:
        return 0
    best = max(frames.values())
    return min(c for c, n in frames.items() if n == best)


def choose_valid_videos(ds: YTVISDataset, fraction: float = 0.1, seed: int = 0) -> list[int]:
    """The ``valid_sub`` video ids of ``ds`` under :data:`RULE` (sorted ascending)."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--fraction must be in (0, 1), got {fraction}")
    strata: dict[int, list[int]] = defaultdict(list)
    for vid in ds.videos:
        strata[_stratum(ds, vid)].append(vid)
    for vids in strata.values():
        vids.sort(key=lambda v: hashlib.sha256(f"{RULE}:{seed}:{v}".encode()).hexdigest())
    total = round(fraction * len(ds.videos))
    quota = {s: math.floor(fraction * len(v)) for s, v in strata.items()}
    rest = total - sum(quota.values())
    by_remainder = sorted(strata, key=lambda s: (-(fraction * len(strata[s]) - quota[s]), s))
    for s in by_remainder[:rest]:
        quota[s] += 1
    return sorted(v for s, vids in strata.items() for v in vids[: quota[s]])


def _subset(raw: dict[str, Any], keep: set[int]) -> dict[str, Any]:
    out = {k: v for k, v in raw.items() if k not in ("videos", "annotations")}
    out["videos"] = [v for v in raw["videos"] if v["id"] in keep]
    out["annotations"] = [a for a in raw.get("annotations") or [] if a["video_id"] in keep]
    return out


def split_annotation_file(
    train_json: str | Path,
    out_dir: str | Path,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    record: str | Path | None = None,
) -> SplitResult:
    """Write ``train_sub.json``, ``valid_sub.json`` and ``split.json`` for ``train_json`` into ``out_dir``.

    Args:
        record: A ``split.json`` from an earlier run (e.g. the versioned one in the repo). When it
            exists, the source's sha256 must match it and its ids are used; when it does not, the
            new record is also written there.
    """
    ds = YTVISDataset.load(train_json)
    if not ds.has_annotations:
        raise InputError("has no 'annotations': only a train file with GT can be split", file=train_json)
    assert ds.raw is not None and ds.sha256 is not None
    record_path = Path(record) if record is not None else None
    if record_path is not None and record_path.is_file():
        rec = read_json(record_path, what="split record")
        if not isinstance(rec, dict) or rec.get("rule") != RULE or "valid_sub" not in rec:
            raise InputError(f"not a {RULE} split record", file=record_path)
        if rec.get("source", {}).get("sha256") != ds.sha256:
            raise InputError(
                f"the record was made from a different file (sha256 {rec.get('source', {}).get('sha256')}),"
                f" not {train_json} (sha256 {ds.sha256})",
                file=record_path,
            )
        unknown = sorted(set(rec["valid_sub"]) - set(ds.videos))
        if unknown:
            raise InputError(f"valid_sub ids not in the source file: {unknown[:10]}", file=record_path)
        valid = sorted(rec["valid_sub"])
        seed, fraction = rec.get("seed", seed), rec.get("fraction", fraction)
        log.info("using the recorded split %s (%d valid_sub videos)", record_path, len(valid))
    else:
        valid = choose_valid_videos(ds, fraction, seed)
    valid_set = set(valid)
    train = [v for v in ds.videos if v not in valid_set]
    result = SplitResult(
        rule=RULE,
        seed=seed,
        fraction=fraction,
        source={"file": Path(train_json).name, "sha256": ds.sha256, "videos": len(ds.videos)},
        valid_sub=valid,
        train_sub=sorted(train),
    )
    out = Path(out_dir)
    atomic_write_json(out / "train_sub.json", _subset(ds.raw, set(train)))
    atomic_write_json(out / "valid_sub.json", _subset(ds.raw, valid_set))
    atomic_write_json(out / "split.json", dict(result), indent=1)
    if record_path is not None and not record_path.is_file():
        atomic_write_json(record_path, dict(result), indent=1)
    log.info("split %s: %d train_sub, %d valid_sub videos -> %s", train_json, len(train), len(valid), out)
    return result


# ---- visrepro split ---------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", required=True, help="the train annotation JSON (with GT)")
    parser.add_argument(
        "--out", required=True, help="directory for train_sub.json, valid_sub.json, split.json"
    )
    parser.add_argument("--fraction", type=float, default=0.1, help="share of videos held out (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-stratum order (default 0)")
    parser.add_argument(
        "--record", help="a split.json to reproduce (checked against the source) or to create"
    )


def run(args: argparse.Namespace) -> int:
    res = split_annotation_file(
        args.train, args.out, fraction=args.fraction, seed=args.seed, record=args.record
    )
    print(
        f"train_sub: {len(res['train_sub'])} videos, valid_sub: {len(res['valid_sub'])} videos -> {args.out}"
    )
    return 0
