"""YouTube-VIS 2019/2021 and OVIS annotation files: reading and validation.

The format (one JSON file per split)::

    {"videos":      [{"id", "width", "height", "length", "file_names": ["<video>/00000.jpg", ...]}],
     "categories":  [{"id", "name", "supercategory"?}],
     "annotations": [{"id", "video_id", "category_id", "iscrowd",
                      "segmentations": [RLE | polygons | null, ...],   # one per frame
                      "areas": [number | null, ...], "bboxes": [[x, y, w, h] | null, ...],
                      "occlusion": ["no_occlusion" | "slight_occlusion" | "severe_occlusion" | null, ...]  # OVIS
                      }]}

``annotations`` is absent or ``null`` in the valid/test files, whose ground truth was never public.
``file_names`` are relative to the split's image root (``.../JPEGImages``).

:func:`validate_annotation_dict` checks everything the suite relies on and reports *all* problems at
once, each naming the file, the entry (``videos[3] (id 17)``) and what is wrong.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from benchmark._io import read_json
from benchmark.data.frames import ImageFiles, VideoSample
from benchmark.errors import InputError, Problem

__all__ = [
    "OCCLUSION_LABELS",
    "Category",
    "Track",
    "Video",
    "YTVISDataset",
    "check_frames_on_disk",
    "validate_annotation_dict",
]

#: OVIS per-frame occlusion labels -> the fork's occlusion score.
OCCLUSION_LABELS = {"no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75}

# Stop collecting after this many problems: a wholly wrong file would otherwise list millions.
_MAX_PROBLEMS = 1000
# Integers below this need no ``math.isfinite`` (which raises OverflowError on huge ones).
_INT_FAST = 1 << 53


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str = ""


@dataclass(frozen=True)
class Video:
    id: int
    width: int
    height: int
    length: int
    file_names: tuple[str, ...] = field(repr=False)

    @property
    def name(self) -> str:
        """The frame folder (``file_names[0]``'s directory), YouTube-VIS's video name."""
        parent = PurePosixPath(self.file_names[0]).parent.as_posix() if self.file_names else ""
        return parent if parent not in ("", ".") else str(self.id)


@dataclass(frozen=True)
class Track:
    """One ground-truth object track: per-frame segmentation (or ``None``), area and box."""

    id: int
    video_id: int
    category_id: int
    iscrowd: int
    segmentations: list[Any] = field(repr=False)
    areas: list[float | None] = field(repr=False)
    bboxes: list[list[float] | None] | None = field(default=None, repr=False)
    occlusion: list[str | None] | None = field(default=None, repr=False)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _unsafe_relpath(name: str) -> str | None:
    """Why a ``file_names`` entry would escape the image root, or ``None`` if it is safe."""
    if not name:
        return "is empty"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "contains '..' (escapes the image root)"
    return None


def _all_plain_relpaths(names: list[str]) -> bool:
    """A sufficient condition (one string search, no per-name call) for ``_unsafe_relpath`` to
    pass every name: none empty, none starting with a separator, no ':' and no '..' anywhere."""
    j = "\n" + "\n".join(names)
    return not (".." in j or ":" in j or "\n\n" in j or "\n/" in j or "\n\\" in j or j.endswith("\n"))


class _Collector:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, entry: str | None, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(self.file, entry, message))

    @property
    def full(self) -> bool:
        return len(self.problems) >= _MAX_PROBLEMS

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(self.problems)


def _check_segmentation(seg: Any, h: int, w: int, where: str, col: _Collector) -> None:
    if seg is None:
        return
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) for s in size)):
            col.add(where, f"RLE 'size' must be [height, width], got {size!r:.60}")
            return
        if isinstance(counts, str):
            if list(size) != [h, w]:
                col.add(where, f"RLE size {size} differs from the video's {h}x{w}")
        elif isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts):
                col.add(where, "uncompressed RLE 'counts' must be non-negative integers")
            elif sum(counts) != size[0] * size[1]:
                col.add(where, f"uncompressed RLE counts sum to {sum(counts)}, not {size[0]}x{size[1]}")
            elif list(size) != [h, w]:
                col.add(where, f"RLE size {size} differs from the video's {h}x{w}")
        else:
            col.add(where, "RLE 'counts' must be a string (compressed) or a list of integers")
        return
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not (isinstance(poly, list) and all(_is_num(x) for x in poly)):
                col.add(where, f"polygon {k} must be a flat list of numbers")
                return
            if len(poly) < 6 or len(poly) % 2:
                col.add(where, f"polygon {k} has {len(poly)} coordinates (needs an even number >= 6)")
                return
        return
    col.add(where, f"segmentation must be an RLE dict, a polygon list or null, not {type(seg).__name__}")


def _check_video(i: int, v: Any, col: _Collector, seen: dict[int, int]) -> None:
    if not isinstance(v, dict):
        col.add(f"videos[{i}]", f"must be an object, not {type(v).__name__}")
        return
    vid: Any = v.get("id")
    entry = f"videos[{i}] (id {vid})" if _is_int(vid) else f"videos[{i}]"
    missing = [k for k in ("id", "width", "height", "file_names") if k not in v]
    if missing:
        col.add(entry, f"missing key(s): {', '.join(missing)}")
        return
    if not _is_int(vid):
        col.add(entry, f"'id' must be an integer, got {vid!r:.40}")
    elif vid in seen:
        col.add(entry, f"duplicate video id {vid} (also videos[{seen[vid]}])")
    else:
        seen[vid] = i
    for k in ("width", "height"):
        if not (_is_int(v[k]) and v[k] > 0):
            col.add(entry, f"'{k}' must be a positive integer, got {v[k]!r:.40}")
    names = v["file_names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        col.add(entry, "'file_names' must be a non-empty list of strings")
        return
    if not _all_plain_relpaths(names):
        for j, n in enumerate(names):
            why = _unsafe_relpath(n)
            if why:
                col.add(entry, f"file_names[{j}] {n!r} {why}")
    if len(set(names)) != len(names):
        col.add(entry, "file_names has duplicate entries")
    if "length" in v and v["length"] != len(names):
        col.add(entry, f"'length' is {v['length']!r} but there are {len(names)} file_names")


def _check_annotation(
    i: int,
    a: Any,
    videos: Mapping[int, Video],
    cats: Mapping[int, Category] | None,
    col: _Collector,
    seen: dict[int, int],
    rle: _RleStrings,
) -> None:
    if not isinstance(a, dict):
        col.add(f"annotations[{i}]", f"must be an object, not {type(a).__name__}")
        return
    aid: Any = a.get("id")
    entry = f"annotations[{i}] (id {aid})" if _is_int(aid) else f"annotations[{i}]"
    missing = [
        k for k in ("id", "video_id", "category_id", "segmentations", "areas", "iscrowd") if k not in a
    ]
    if missing:
        col.add(entry, f"missing key(s): {', '.join(missing)}")
        return
    if not _is_int(aid):
        col.add(entry, f"'id' must be an integer, got {aid!r:.40}")
    elif aid in seen:
        col.add(entry, f"duplicate annotation id {aid} (also annotations[{seen[aid]}])")
    else:
        seen[aid] = i
    if a["iscrowd"] not in (0, 1) or isinstance(a["iscrowd"], bool):
        col.add(entry, f"'iscrowd' must be 0 or 1, got {a['iscrowd']!r:.20}")
    if cats is not None and a["category_id"] not in cats:
        col.add(entry, f"unknown category_id {a['category_id']!r:.20} (not in 'categories')")
    video = videos.get(a["video_id"]) if _is_int(a["video_id"]) else None
    if video is None:
        col.add(entry, f"unknown video_id {a['video_id']!r:.20} (not in 'videos')")
        return
    n = video.length
    segs = a["segmentations"]
    if not isinstance(segs, list):
        col.add(entry, "'segmentations' must be a list (one entry per frame)")
        return
    if len(segs) != n:
        col.add(entry, f"'segmentations' has {len(segs)} entries but video {video.id} has {n} frames")
    for key in ("areas", "bboxes", "occlusion"):
        vals = a.get(key)
        if vals is None and key != "areas":
            continue
        if not isinstance(vals, list):
            col.add(entry, f"'{key}' must be a list (one entry per frame)")
        elif len(vals) != n:
            col.add(entry, f"'{key}' has {len(vals)} entries but video {video.id} has {n} frames")
    hw = [video.height, video.width]
    total = video.height * video.width
    r_where, r_str, r_tot = rle.where, rle.strings, rle.totals
    for j, seg in enumerate(segs[:n]):
        if seg is None:
            continue
        if type(seg) is dict:  # fast path: a compressed RLE of the video's size has nothing to report
            size = seg.get("size")
            counts = seg.get("counts")
            if (type(counts) is str and type(size) is list and size == hw
                    and type(size[0]) is int and type(size[1]) is int):  # fmt: skip
                r_where.append((i, j))
                r_str.append(counts)
                r_tot.append(total)
                continue
        _check_segmentation(seg, video.height, video.width, f"{entry}, segmentations[{j}]", col)
        if isinstance(seg, dict) and isinstance(seg.get("counts"), str):
            size = seg.get("size")
            ok = isinstance(size, list) and len(size) == 2 and all(_is_int(x) for x in size)
            r_where.append((i, j))
            r_str.append(seg["counts"])
            # not ok: a problem is reported, there is no scan
            r_tot.append(size[0] * size[1] if ok and size is not None else 0)
        if col.full:
            return
    areas = a["areas"] if isinstance(a["areas"], list) else []
    for j, ar in enumerate(areas):
        t = type(ar)
        if ar is None or (t is int and 0 <= ar < _INT_FAST) or (t is float and 0.0 <= ar < math.inf):
            continue  # fast path: what the check below accepts
        if not (_is_num(ar) and ar >= 0):
            col.add(entry, f"areas[{j}] must be a non-negative number or null, got {ar!r:.20}")
    boxes = a.get("bboxes")
    if isinstance(boxes, list):
        for j, b in enumerate(boxes):
            if b is not None and not (isinstance(b, list) and len(b) == 4 and all(_is_num(x) for x in b)):
                col.add(entry, f"bboxes[{j}] must be [x, y, w, h] or null, got {b!r:.40}")
    occ = a.get("occlusion")
    if isinstance(occ, list):
        for j, o in enumerate(occ):
            if o is not None and o not in OCCLUSION_LABELS:
                col.add(
                    entry, f"occlusion[{j}] must be one of {sorted(OCCLUSION_LABELS)} or null, got {o!r:.30}"
                )


def validate_annotation_dict(
    data: Any, file: str | Path | None = None, *, allow_unknown_categories: bool = False
) -> None:
    """Check a parsed YouTube-VIS/OVIS annotation file; raise :class:`InputError` listing every problem.

    Checks: top-level keys and types; video ids unique, sizes positive, ``file_names`` non-empty,
    unique, relative and inside the image root, ``length`` consistent; category ids unique;
    annotation ids unique, ``video_id``/``category_id`` known, every per-frame list
    (``segmentations``, ``areas``, ``bboxes``, ``occlusion``) as long as its video, every
    segmentation a valid RLE (of the video's size) or polygon list, areas non-negative.

    Args:
        allow_unknown_categories: Accept annotations whose ``category_id`` is not in
            ``categories``. The official evaluator silently drops such GT tracks, so the evaluator
            passes ``True`` to give the official number; everything else rejects them.
    """
    _parse(data, str(file) if file is not None else None, allow_unknown_categories)


@dataclass
class _RleStrings:
    """The compressed-RLE strings of the GT segmentations (file order), as the annotation checks
    meet them: (annotation index, frame) and the mask's pixel count h*w."""

    where: list[tuple[int, int]] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)


def _check_rle_strings(ann: list[Any], rle: _RleStrings, col: _Collector) -> None:
    """Decode every compressed GT string once (C scan): runs must be non-negative and cover the
    mask. pycocotools never returns on some broken strings (a negative run) and reads past the end
    of others, so a broken GT mask is an input error here rather than a hang in the evaluator.
    Called once every annotation passed its checks (all per-frame lists as long as the video)."""
    from benchmark.data.results import rle_counts_ok
    from benchmark.evaluation.rle import scan

    where, strings, totals = rle.where, rle.strings, rle.totals
    if not strings:
        return
    codes = scan(strings, np.asarray(totals, dtype=np.int64)).codes
    for k in np.flatnonzero(codes).tolist():
        i, j = where[k]
        ok, why = rle_counts_ok(strings[k], totals[k])
        reason = why if not ok else "RLE 'counts' has a number of more than 60 bits"
        col.add(f"annotations[{i}] (id {ann[i]['id']}), segmentations[{j}]", reason)


def _parse(
    data: Any, file: str | None, allow_unknown_categories: bool = False
) -> tuple[dict[int, Video], dict[int, Category], list[Track] | None]:
    col = _Collector(file)
    if not isinstance(data, dict):
        col.add(
            None, f"top level must be an object with 'videos' and 'categories', not {type(data).__name__}"
        )
        col.raise_if_any()
    for key in ("videos", "categories"):
        if key not in data:
            col.add(None, f"missing top-level key '{key}'")
        elif not isinstance(data[key], list):
            col.add(key, f"must be a list, not {type(data[key]).__name__}")
    ann = data.get("annotations")
    if ann is not None and not isinstance(ann, list):
        col.add("annotations", f"must be a list or null, not {type(ann).__name__}")
    col.raise_if_any()

    seen_v: dict[int, int] = {}
    for i, v in enumerate(data["videos"]):
        _check_video(i, v, col, seen_v)
    seen_c: dict[int, int] = {}
    for i, c in enumerate(data["categories"]):
        entry = f"categories[{i}]"
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            col.add(entry, "must be an object with an integer 'id' and a string 'name'")
        elif c["id"] in seen_c:
            col.add(f"{entry} (id {c['id']})", f"duplicate category id (also categories[{seen_c[c['id']]}])")
        else:
            seen_c[c["id"]] = i
    col.raise_if_any()
    videos = {
        v["id"]: Video(v["id"], v["width"], v["height"], len(v["file_names"]), tuple(v["file_names"]))
        for v in data["videos"]
    }
    cats = {c["id"]: Category(c["id"], c["name"], c.get("supercategory") or "") for c in data["categories"]}
    if ann is None:
        return videos, cats, None
    seen_a: dict[int, int] = {}
    rle = _RleStrings()
    for i, a in enumerate(ann):
        _check_annotation(i, a, videos, None if allow_unknown_categories else cats, col, seen_a, rle)
        if col.full:
            break
    col.raise_if_any()
    _check_rle_strings(ann, rle, col)
    col.raise_if_any()
    tracks = [
        Track(
            a["id"],
            a["video_id"],
            a["category_id"],
            int(a["iscrowd"]),
            a["segmentations"],
            a["areas"],
            a.get("bboxes"),
            a.get("occlusion"),
        )
        for a in ann
    ]
    return videos, cats, tracks


class YTVISDataset:
    """A parsed, validated YouTube-VIS/OVIS annotation file with lazy access to its frames.

    Attributes:
        ann_file: The JSON file (``None`` when built from a dict).
        image_root: Directory that ``file_names`` are relative to (``None``: frames not available).
        videos: ``video id -> Video`` in file order.
        categories: ``category id -> Category`` in file order.
        tracks: The GT tracks, or ``None`` when the file has no annotations (valid/test splits).
        sha256: Digest of the JSON file's bytes, for provenance (``None`` when built from a dict).
    """

    def __init__(
        self,
        videos: dict[int, Video],
        categories: dict[int, Category],
        tracks: list[Track] | None,
        *,
        ann_file: Path | None = None,
        image_root: Path | None = None,
        sha256: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.videos = videos
        self.categories = categories
        self.tracks = tracks
        self.ann_file = ann_file
        self.image_root = image_root
        self.sha256 = sha256
        self.raw = raw
        self._by_video: dict[int, list[Track]] | None = None

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls, data: Any, *, file: str | Path | None = None, image_root: str | Path | None = None
    ) -> YTVISDataset:
        """Validate and wrap an already-parsed annotation dict."""
        videos, cats, tracks = _parse(data, str(file) if file is not None else None)
        return cls(
            videos,
            cats,
            tracks,
            ann_file=Path(file) if file is not None else None,
            image_root=Path(image_root) if image_root is not None else None,
            raw=data,
        )

    @classmethod
    def load(
        cls, ann_file: str | Path, image_root: str | Path | None = None, *, check_frames: bool = False
    ) -> YTVISDataset:
        """Read, validate and (optionally) check that every frame file exists under ``image_root``."""
        ann_file = Path(ann_file)
        data = read_json(ann_file, what="annotation file")
        ds = cls.from_dict(data, file=ann_file, image_root=image_root)
        with open(ann_file, "rb") as fh:
            ds.sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
        if check_frames:
            check_frames_on_disk(ds)
        return ds

    # ---- access ----------------------------------------------------------------------------
    @property
    def has_annotations(self) -> bool:
        return self.tracks is not None

    def tracks_of(self, video_id: int) -> list[Track]:
        """GT tracks of one video in file order (empty without annotations)."""
        if self._by_video is None:
            self._by_video = {vid: [] for vid in self.videos}
            for t in self.tracks or ():
                self._by_video[t.video_id].append(t)
        return self._by_video.get(video_id, [])

    def frame_paths(self, video_id: int) -> list[Path]:
        if self.image_root is None:
            raise InputError("no image root given: frames of this dataset cannot be read", file=self.ann_file)
        return [self.image_root / n for n in self.videos[video_id].file_names]

    def video_sample(self, video_id: int) -> VideoSample:
        """The video with lazily decoded frames (each checked against the annotated size)."""
        v = self.videos[video_id]
        entry = f"video {v.id} ({v.name})"
        frames = ImageFiles(self.frame_paths(video_id), size=(v.height, v.width), entry=entry)
        return VideoSample(v.id, v.height, v.width, frames, v.file_names, v.name)

    def __iter__(self) -> Iterator[VideoSample]:
        for vid in self.videos:
            yield self.video_sample(vid)

    def __len__(self) -> int:
        return len(self.videos)

    def num_frames(self) -> int:
        return sum(v.length for v in self.videos.values())


def check_frames_on_disk(ds: YTVISDataset, *, decode: bool = False) -> None:
    """Every frame file of ``ds`` exists (and with ``decode``, opens as an image of the annotated size).

    Raises :class:`InputError` listing the missing or unreadable frames, per video.
    """
    from PIL import Image

    col = _Collector(str(ds.ann_file) if ds.ann_file else None)
    if ds.image_root is None or not ds.image_root.is_dir():
        col.add(None, f"image root {ds.image_root} is not a directory")
        col.raise_if_any()
    assert ds.image_root is not None
    for i, v in enumerate(ds.videos.values()):
        entry = f"videos[{i}] (id {v.id})"
        for j, name in enumerate(v.file_names):
            path = ds.image_root / name
            if not path.is_file():
                col.add(entry, f"frame file_names[{j}] missing on disk: {path}")
            elif decode:
                try:
                    with Image.open(path) as im:
                        w, h = im.size
                        im.verify()
                except Exception as exc:  # PIL raises many types for broken files
                    col.add(entry, f"frame file_names[{j}] is not a readable image: {path} ({exc})")
                    continue
                if (h, w) != (v.height, v.width):
                    col.add(
                        entry,
                        f"frame file_names[{j}] is {h}x{w}, the video says {v.height}x{v.width}: {path}",
                    )
            if col.full:
                col.raise_if_any()
    col.raise_if_any()
