"""``visrepro validate``: check an annotation file, and optionally its frames, before a long run."""

from __future__ import annotations

import argparse

from benchmark.data.ytvis import YTVISDataset, check_frames_on_disk

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ann_file", help="YouTube-VIS / OVIS annotation JSON")
    parser.add_argument(
        "--frames-root", help="image root the file_names are relative to: check every frame exists"
    )
    parser.add_argument("--decode", action="store_true", help="also open every frame and check its size")


def run(args: argparse.Namespace) -> int:
    ds = YTVISDataset.load(args.ann_file, args.frames_root)
    if args.frames_root:
        check_frames_on_disk(ds, decode=args.decode)
    n_tracks = "no annotations" if ds.tracks is None else f"{len(ds.tracks)} tracks"
    occl = any(t.occlusion is not None for t in ds.tracks or ())
    print(
        f"{args.ann_file}: OK: {len(ds.videos)} videos, {ds.num_frames()} frames, {len(ds.categories)} categories, "
        f"{n_tracks}{' (with OVIS occlusion labels)' if occl else ''}"
        + (f"; all frames present{' and readable' if args.decode else ''}" if args.frames_root else "")
    )
    return 0
