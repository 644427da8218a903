"""ToyVIS: the suite's embedded synthetic video instance segmentation dataset.

``visrepro toyvis --out DIR`` writes a deterministic dataset in the YouTube-VIS 2019 layout::

    DIR/train/JPEGImages/<video>/<frame>.jpg     frames (JPEG, quality 90, 4:2:0)
    DIR/valid/JPEGImages/<video>/<frame>.jpg
    DIR/annotations/train.json                   YouTube-VIS 2019 JSON, with GT
    DIR/annotations/valid.json                   with GT too: ToyVIS is for local evaluation
    DIR/toyvis.json                              generator version, parameters, counts, digests
    DIR/README.md                                the same in words

``file_names`` are relative to the split's ``JPEGImages`` directory (``"train_0003/00005.jpg"``);
frames are numbered in steps of 5 like the 2019 archive (``00000.jpg, 00005.jpg, ...``). Category
ids, video ids and annotation ids start at 1. Segmentations are compressed RLE with ``str`` counts
(``null`` where the object is absent), ``areas`` the RLE pixel counts, ``bboxes`` ``[x, y, w, h]``
of the mask. ``toyvis.json`` is written last: its presence means the dataset is complete (while a
run is writing, ``DIR/.toyvis-incomplete`` marks it, so a rerun after an interruption may replace it).

Content (see :func:`benchmark.data._toyvis_render.make_scene`): six shape categories (disc, ring,
square, triangle, star, cross); each instance has its own colours and texture (stripes, checker,
dots, mosaic or concentric rings) that moves, scales and turns with it, so identity is learnable
and two instances of one category look different. Objects move smoothly (velocity plus a slowly
varying acceleration, some bouncing off the border), change scale and rotate; they occlude each
other in a fixed depth order and the masks are the *visible* parts (an object hidden entirely in a
frame is ``null``), enter and leave the frame (clipped masks; ``null`` when wholly outside), and
some exist for only part of the video. In most videos two instances of one category cross each
other, so a tracker that swaps identities loses AP. The background is textured, and every frame
gets sensor noise.

Defaults and why: 48 train and 12 valid videos of 12-24 frames (length drawn per video, like
YouTube-VIS's varying lengths) at 96x160 (YouTube-VIS's 9:16-ish aspect, scaled down). That is
about 1,100 frames and 170 tracks: enough variety (every category and pattern, many occlusions
and crossings) for a small model to learn something measurable, small enough that one CPU epoch
takes seconds and the whole set generates in about two seconds. Shapes have radii of 9-19% of the
shorter side (9-18 px at the default size), so textures with periods of a few pixels survive the
JPEG compression.

Determinism: the same arguments give byte-identical files on the same platform and library build
(numpy, OpenCV, Pillow/libjpeg; their versions are recorded in ``toyvis.json``). Each video's
random stream is ``PCG64(SeedSequence(seed, spawn_key=(split, index, stream)))``, so adding videos
(``--videos``) or changing other videos never changes the earlier ones.

Streaming: frames are rendered, written and RLE-encoded one at a time, so ``--videos 1 --frames
1000 --size 1080x1920`` needs memory for a few frames plus the (small) RLE strings, whatever the
length (``benchmarks/bench_toyvis_memory.py`` measures it).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark._io import atomic_open, atomic_write_json
from benchmark.data._toyvis_render import CATEGORIES, Scene, make_scene
from benchmark.errors import InputError, UsageError
from benchmark.masks import encode_mask

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_SIZE",
    "DEFAULT_TRAIN_VIDEOS",
    "DEFAULT_VALID_VIDEOS",
    "GENERATOR_VERSION",
    "JPEG_QUALITY",
    "MIN_SIZE",
    "SplitSummary",
    "ToyVISSummary",
    "configure",
    "generate_toyvis",
    "parse_frames",
    "parse_size",
    "run",
]

log = logging.getLogger(__name__)

#: Bump whenever the output for the same arguments changes (pipelines compare it).
GENERATOR_VERSION = 1
DEFAULT_TRAIN_VIDEOS = 48
DEFAULT_VALID_VIDEOS = 12
DEFAULT_FRAMES = (12, 24)
DEFAULT_SIZE = (96, 160)
DEFAULT_SEED = 0
MIN_SIZE = 32
MAX_SIZE = 8192
MAX_FRAMES = 100_000
JPEG_QUALITY = 90
FRAME_STEP = 5  # file-name numbering step, as in the YouTube-VIS 2019 archive
SPLITS = ("train", "valid")
#: Present while a run is writing ``DIR`` (an interrupted run leaves it; a rerun may replace it).
INCOMPLETE_MARKER = ".toyvis-incomplete"
_STREAM_SCENE, _STREAM_NOISE, _STREAM_LENGTH = 0, 1, 2


@dataclass
class SplitSummary:
    """What one split holds.

    ``stats`` counts object-frames (one object in one frame) by what happened to it: ``visible``,
    ``occluded`` (partly hidden by a nearer object), ``fully_occluded`` (inside the frame but all
    hidden: ``null``), ``clipped`` (partly outside the frame), ``outside`` (alive but wholly outside
    the frame: ``null``), ``absent`` (outside its lifespan: ``null``); and events: ``enter``,
    ``leave`` (an object coming into / going out of the frame), ``crossing_pairs`` (planted
    same-category crossings), ``same_category_videos`` (videos with two instances of one category),
    ``dropped_tracks`` (never visible, so not annotated).
    """

    split: str
    videos: int
    frames: int
    tracks: int
    annotation_file: Path
    image_root: Path
    sha256: str = ""
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class ToyVISSummary:
    out_dir: Path
    version: int
    params: dict[str, Any]
    splits: dict[str, SplitSummary]
    seconds: float


# ---- argument parsing -------------------------------------------------------------------------
def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)``; raises :class:`UsageError` with the reason."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--size must be HEIGHTxWIDTH in pixels, e.g. 96x160; got {text!r}")
    size = (int(m.group(1)), int(m.group(2)))
    _check_size(size)
    return size


def _check_size(size: tuple[int, int]) -> None:
    h, w = size
    if h < MIN_SIZE or w < MIN_SIZE:
        raise UsageError(f"--size must be at least {MIN_SIZE}x{MIN_SIZE}; got {h}x{w}")
    if h > MAX_SIZE or w > MAX_SIZE:
        raise UsageError(f"--size must be at most {MAX_SIZE}x{MAX_SIZE}; got {h}x{w}")


def parse_frames(text: str) -> tuple[int, int]:
    """``"T"`` (every video T frames) or ``"A-B"`` (lengths drawn from A..B) -> ``(A, B)``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not m:
        raise UsageError(
            f"--frames must be a number of frames T or a range A-B, e.g. 16 or 12-24; got {text!r}"
        )
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    frames = (lo, hi)
    _check_frames(frames)
    return frames


def _check_frames(frames: tuple[int, int]) -> None:
    lo, hi = frames
    if lo < 1:
        raise UsageError(f"--frames must be at least 1; got {lo}")
    if hi < lo:
        raise UsageError(f"--frames range {lo}-{hi} is empty (the first number must not exceed the second)")
    if hi > MAX_FRAMES:
        raise UsageError(f"--frames must be at most {MAX_FRAMES}; got {hi}")


# ---- generation -------------------------------------------------------------------------------
def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    ss = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index, stream))
    return np.random.Generator(np.random.PCG64(ss))


def _video_length(seed: int, split: str, index: int, frames: tuple[int, int]) -> int:
    lo, hi = frames
    if lo == hi:
        return lo
    return int(_rng(seed, split, index, _STREAM_LENGTH).integers(lo, hi + 1))


def _frame_name(t: int, length: int) -> str:
    digits = max(5, len(str((length - 1) * FRAME_STEP)))
    return f"{t * FRAME_STEP:0{digits}d}.jpg"


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    # Fixed encoder settings (no optimisation pass, no EXIF/ICC, fixed subsampling): same bytes
    # every run. Frames are written directly (no fsync each); toyvis.json, written last, marks
    # the dataset complete.
    with open(path, "wb") as fh:
        Image.fromarray(image, "RGB").save(
            fh, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False
        )


def _render_video(
    scene: Scene, video_dir: Path, names: list[str], stats: dict[str, int]
) -> list[tuple[int, list[Any], list[Any], list[Any]]]:
    """Render, write and encode one video frame by frame.

    Returns ``(category_id, segmentations, areas, bboxes)`` per object that is visible at least once.
    """
    h, w = scene.height, scene.width
    n = len(scene.objects)
    segs: list[list[Any]] = [[] for _ in range(n)]
    areas: list[list[Any]] = [[] for _ in range(n)]
    bboxes: list[list[Any]] = [[] for _ in range(n)]
    prev_inside = [False] * n
    video_dir.mkdir(parents=True, exist_ok=True)
    for t, name in enumerate(names):
        frame = scene.render()
        _write_jpeg(video_dir / name, frame.image)
        for k, obj in enumerate(scene.objects):
            box = frame.boxes[k]
            alive = obj.t_start <= t < obj.t_end
            inside = box is not None
            if alive and t > 0 and obj.t_start < t and inside != prev_inside[k]:
                stats["enter" if inside else "leave"] += 1
            prev_inside[k] = inside
            if box is None:
                stats["outside" if alive else "absent"] += 1
                for lst in (segs, areas, bboxes):
                    lst[k].append(None)
                continue
            x0, y0, x1, y1 = box
            vis = frame.labels[y0:y1, x0:x1] == k + 1
            area = int(vis.sum())
            if area == 0:
                stats["fully_occluded"] += 1
                for lst in (segs, areas, bboxes):
                    lst[k].append(None)
                continue
            stats["visible"] += 1
            stats["occluded"] += area < frame.full_area[k]
            stats["clipped"] += frame.clipped[k]
            mask = np.zeros((h, w), np.uint8)
            mask[y0:y1, x0:x1] = vis
            segs[k].append(encode_mask(mask))
            areas[k].append(area)
            cols = np.flatnonzero(vis.any(axis=0))
            rows = np.flatnonzero(vis.any(axis=1))
            bx, by = x0 + int(cols[0]), y0 + int(rows[0])
            bboxes[k].append(
                [float(bx), float(by), float(x0 + int(cols[-1]) + 1 - bx), float(y0 + int(rows[-1]) + 1 - by)]
            )
    out = []
    for k, obj in enumerate(scene.objects):
        if all(a is None for a in areas[k]):
            stats["dropped_tracks"] += 1
            continue
        out.append((obj.category + 1, segs[k], areas[k], bboxes[k]))
    cats = [c for c, *_ in out]
    stats["same_category_videos"] += len(set(cats)) < len(cats)
    stats["crossing_pairs"] += sum(o.planted == "crossing" for o in scene.objects) // 2
    return out


def _categories() -> list[dict[str, Any]]:
    return [{"id": i + 1, "name": name, "supercategory": sup} for i, (name, sup) in enumerate(CATEGORIES)]


def _generate_split(
    out_dir: Path,
    split: str,
    num_videos: int,
    frames: tuple[int, int],
    size: tuple[int, int],
    seed: int,
    progress: Any,
) -> SplitSummary:
    h, w = size
    image_root = out_dir / split / "JPEGImages"
    stats = dict.fromkeys(
        (
            "visible",
            "occluded",
            "fully_occluded",
            "clipped",
            "outside",
            "absent",
            "enter",
            "leave",
            "crossing_pairs",
            "same_category_videos",
            "dropped_tracks",
        ),
        0,
    )
    videos: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    total_frames = 0
    for index in range(num_videos):
        length = _video_length(seed, split, index, frames)
        name = f"{split}_{index:04d}"
        names = [_frame_name(t, length) for t in range(length)]
        scene = make_scene(
            _rng(seed, split, index, _STREAM_SCENE), _rng(seed, split, index, _STREAM_NOISE), h, w, length
        )
        tracks = _render_video(scene, image_root / name, names, stats)
        vid = index + 1
        videos.append(
            {
                "id": vid,
                "width": w,
                "height": h,
                "length": length,
                "file_names": [f"{name}/{n}" for n in names],
            }
        )
        for cat, segs, areas, boxes in tracks:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": 0,
                    "segmentations": segs,
                    "areas": areas,
                    "bboxes": boxes,
                    "length": 1,
                    "height": h,
                    "width": w,
                }
            )
        total_frames += length
        progress.update(length)
        log.debug("%s: %d frames, %d tracks", name, length, len(tracks))
    data = {
        "info": {
            "description": f"ToyVIS {split} split (synthetic, visrepro generator v{GENERATOR_VERSION})",
            "version": str(GENERATOR_VERSION),
            "contributor": "visrepro",
            "year": 2024,
        },
        "licenses": [],
        "videos": videos,
        "categories": _categories(),
        "annotations": anns,
    }
    ann_file = out_dir / "annotations" / f"{split}.json"
    atomic_write_json(ann_file, data)
    digest = hashlib.sha256(ann_file.read_bytes()).hexdigest()
    return SplitSummary(split, len(videos), total_frames, len(anns), ann_file, image_root, digest, stats)


def _prepare_out_dir(out_dir: Path) -> None:
    """Make ``out_dir`` an empty directory marked incomplete; refuse to touch anything not ours."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a directory", file=out_dir)
    if out_dir.is_dir():
        entries = sorted(out_dir.iterdir())
        marked = (out_dir / "toyvis.json").is_file() or (out_dir / INCOMPLETE_MARKER).is_file()
        if entries and not marked:
            raise InputError(
                "output directory is not empty and holds no ToyVIS dataset (no toyvis.json); "
                "refusing to write into it: choose an empty or new directory",
                file=out_dir,
            )
        ours = {"train", "valid", "annotations", "README.md", "toyvis.json", INCOMPLETE_MARKER}
        strangers = [
            p.name
            for p in entries
            if p.name not in ours and not (p.name.startswith(".") and p.name.endswith(".tmp"))
        ]
        if strangers:
            raise InputError(
                f"output directory holds files ToyVIS did not write ({', '.join(strangers[:5])}); "
                "refusing to replace it",
                file=out_dir,
            )
        # An earlier ToyVIS dataset (complete or interrupted): mark it incomplete first, so an
        # interrupted run is never taken for a complete one, then remove the old content, so
        # fewer videos leave no stale ones behind.
        (out_dir / INCOMPLETE_MARKER).touch()
        (out_dir / "toyvis.json").unlink(missing_ok=True)
        for p in entries:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.name != INCOMPLETE_MARKER:
                p.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INCOMPLETE_MARKER).touch()


def _library_versions() -> dict[str, str]:
    import cv2
    import PIL

    return {"numpy": np.__version__, "opencv": cv2.__version__, "pillow": PIL.__version__}


def _readme(params: dict[str, Any], splits: dict[str, SplitSummary]) -> str:
    f_lo, f_hi = params["frames"]
    frames_arg = str(f_lo) if f_lo == f_hi else f"{f_lo}-{f_hi}"
    h, w = params["size"]
    cmd = (
        f"visrepro toyvis --out DIR --videos {params['num_train_videos']} "
        f"--valid-videos {params['num_valid_videos']} --frames {frames_arg} --size {h}x{w} --seed {params['seed']}"
    )
    lines = [
        "# ToyVIS",
        "",
        f"Synthetic video instance segmentation data written by visrepro's ToyVIS generator, version "
        f"{GENERATOR_VERSION} (`benchmark/data/toyvis.py`). Same arguments, same bytes.",
        "",
        "Regenerate with:",
        "",
        f"    {cmd}",
        "",
        f"Seed {params['seed']}; frames {h}x{w}; video lengths {frames_arg} frames; "
        f"JPEG quality {JPEG_QUALITY}.",
        "",
        "Layout (YouTube-VIS 2019):",
        "",
        "    train/JPEGImages/<video>/<frame>.jpg   valid/JPEGImages/<video>/<frame>.jpg",
        "    annotations/train.json                 annotations/valid.json (both with ground truth)",
        "",
        "| split | videos | frames | tracks | annotation sha256 |",
        "|---|---|---|---|---|",
    ]
    for s in splits.values():
        lines.append(f"| {s.split} | {s.videos} | {s.frames} | {s.tracks} | `{s.sha256}` |")
    lines += ["", "Categories: " + ", ".join(f"{i + 1} {n}" for i, (n, _) in enumerate(CATEGORIES)) + ".", ""]
    return "\n".join(lines)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def generate_toyvis(
    out_dir: str | Path,
    *,
    num_train_videos: int = DEFAULT_TRAIN_VIDEOS,
    num_valid_videos: int = DEFAULT_VALID_VIDEOS,
    frames: int | tuple[int, int] = DEFAULT_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    progress: bool | None = None,
) -> ToyVISSummary:
    """Write the ToyVIS dataset to ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: New or empty directory, or one holding an earlier ToyVIS dataset (replaced).
        num_train_videos: Videos in ``train`` (at least 1).
        num_valid_videos: Videos in ``valid`` (0 writes an empty split).
        frames: Frames per video, or ``(min, max)``: each video's length drawn from that range.
        size: ``(height, width)`` of every frame, at least ``MIN_SIZE`` each.
        seed: Non-negative seed; the output is a function of the arguments alone.
        progress: Show a progress bar over frames (``None``: when stderr is a terminal and
            logging is at INFO or more verbose).

    Raises:
        UsageError: An argument out of range.
        InputError: ``out_dir`` is a file, or a non-empty directory that is not a ToyVIS dataset.
    """
    fr = (frames, frames) if isinstance(frames, int) else (int(frames[0]), int(frames[1]))
    _check_frames(fr)
    sz = (int(size[0]), int(size[1]))
    _check_size(sz)
    if num_train_videos < 1:
        raise UsageError(f"--videos must be at least 1; got {num_train_videos}")
    if num_valid_videos < 0:
        raise UsageError(f"--valid-videos must be 0 or more; got {num_valid_videos}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer; got {seed}")
    out = Path(out_dir)
    _prepare_out_dir(out)
    t0 = time.perf_counter()
    params: dict[str, Any] = {
        "num_train_videos": num_train_videos,
        "num_valid_videos": num_valid_videos,
        "frames": list(fr),
        "size": list(sz),
        "seed": seed,
        "jpeg_quality": JPEG_QUALITY,
    }
    counts = {"train": num_train_videos, "valid": num_valid_videos}
    total = sum(_video_length(seed, s, i, fr) for s in SPLITS for i in range(counts[s]))
    if progress is None:
        progress = sys.stderr.isatty() and logging.getLogger().getEffectiveLevel() <= logging.INFO
    bar: Any
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="toyvis", leave=False)
    else:
        bar = _NoBar()
    try:
        splits = {s: _generate_split(out, s, counts[s], fr, sz, seed, bar) for s in SPLITS}
    finally:
        bar.close()
    meta = {
        "generator": "visrepro toyvis",
        "version": GENERATOR_VERSION,
        "params": params,
        "libraries": _library_versions(),
        "categories": _categories(),
        "splits": {
            s.split: {
                "videos": s.videos,
                "frames": s.frames,
                "tracks": s.tracks,
                "annotation_file": f"annotations/{s.split}.json",
                "image_root": f"{s.split}/JPEGImages",
                "annotation_sha256": s.sha256,
                "stats": s.stats,
            }
            for s in splits.values()
        },
    }
    with atomic_open(out / "README.md", "w") as fh:
        fh.write(_readme(params, splits))
    atomic_write_json(out / "toyvis.json", meta, indent=2)
    (out / INCOMPLETE_MARKER).unlink()
    seconds = time.perf_counter() - t0
    return ToyVISSummary(out, GENERATOR_VERSION, params, splits, seconds)


# ---- visrepro toyvis --------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, help="output directory (new, empty, or an earlier ToyVIS)"
    )
    parser.add_argument(
        "--videos",
        type=int,
        default=DEFAULT_TRAIN_VIDEOS,
        help=f"train videos (default {DEFAULT_TRAIN_VIDEOS})",
    )
    parser.add_argument(
        "--valid-videos",
        type=int,
        default=DEFAULT_VALID_VIDEOS,
        help=f"valid videos (default {DEFAULT_VALID_VIDEOS}; 0: empty valid split)",
    )
    parser.add_argument(
        "--frames",
        default=f"{DEFAULT_FRAMES[0]}-{DEFAULT_FRAMES[1]}",
        help="frames per video: T, or A-B to draw each video's length from A..B (default %(default)s)",
    )
    parser.add_argument(
        "--size",
        default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
        help="frame size HEIGHTxWIDTH (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    frames = parse_frames(str(args.frames))
    summary = generate_toyvis(
        args.out,
        num_train_videos=args.videos,
        num_valid_videos=args.valid_videos,
        frames=frames,
        size=size,
        seed=args.seed,
        progress=False if args.no_progress else None,
    )
    parts = [
        f"{s.split} {s.videos} videos / {s.frames} frames / {s.tracks} tracks"
        for s in summary.splits.values()
    ]
    log.info(
        "wrote ToyVIS v%d to %s (%s) in %.1f s",
        summary.version,
        summary.out_dir,
        "; ".join(parts),
        summary.seconds,
    )
    return 0
