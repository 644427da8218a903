"""``visrepro show``: draw ground-truth or predicted masks over a video's frames.

People look at masks before they trust a number. This module renders, per video, the frames with
semi-transparent coloured masks, their contours and a label per object (track id, category name,
and score for predictions), and writes any of:

* ``OUT/<video_name>/00000.png ...`` one PNG per frame (full resolution),
* ``OUT/<video_name>.gif`` an animated GIF (downscaled to at most 480 px on the longest side),
* ``OUT/<video_name>.mp4`` an MP4 (OpenCV ``VideoWriter``, ``mp4v``),

and always ``OUT/<video_name>_sheet.png``, a contact sheet of up to 8 evenly spaced frames.

Colours are stable per track id (a fixed palette indexed by id), so an identity swap is visible as a
colour change. Frames are decoded, drawn, written and dropped one at a time: memory does not grow with
the video's length for PNG and MP4. A GIF has to be written in one go (PIL keeps every frame), so its
frames are kept downscaled and palettised (about 130 kB per frame at 480x270).

Python API: :func:`draw_frame` (one frame), :class:`Overlay` (one object across a video),
:class:`Panel` (several panels side by side) and :func:`render_video` (a whole video).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark._io import atomic_open
from benchmark.data import results as results_io
from benchmark.data.frames import VideoSample
from benchmark.data.results import rle_counts_ok
from benchmark.data.ytvis import Track, YTVISDataset
from benchmark.errors import InputError, UsageError
from benchmark.masks import decode_rle, to_compressed_rle

__all__ = [
    "FORMATS",
    "PALETTE",
    "Overlay",
    "Panel",
    "RenderedVideo",
    "color_for",
    "configure",
    "draw_frame",
    "gt_overlays",
    "prediction_overlays",
    "read_results",
    "render_video",
    "run",
]

log = logging.getLogger("visrepro.show")

#: Output formats ``--format`` accepts (the contact sheet is always written).
FORMATS = ("png", "gif", "mp4")

Color = tuple[int, int, int]

#: Distinct, saturated RGB colours; neighbours differ strongly so consecutive ids look different.
PALETTE: tuple[Color, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (220, 190, 255),  # lavender
    (170, 110, 40),  # brown
    (255, 250, 200),  # beige
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (255, 215, 180),  # apricot
    (0, 0, 128),  # navy
    (128, 128, 128),  # grey
)

#: Longest side of GIF frames (GIFs are for quick looks and reports, not pixel inspection).
GIF_MAX_SIDE = 480
#: Frames on a contact sheet, its columns, and the longest side of one cell.
SHEET_FRAMES = 8
SHEET_COLUMNS = 4
SHEET_CELL_SIDE = 400
#: White columns between side-by-side panels.
PANEL_GAP = 4

_PNG_NAME = re.compile(r"^(\d{5})\.png$")


def color_for(track_id: int) -> Color:
    """The colour of a track id: stable across frames, runs and videos."""
    return PALETTE[track_id % len(PALETTE)]


# --------------------------------------------------------------------------------------------
# Drawing one frame
# --------------------------------------------------------------------------------------------


def _text_style(height: int, width: int) -> tuple[float, int]:
    """Font scale and stroke thickness readable at this frame size."""
    scale = min(1.0, max(0.4, min(height, width) / 1000))
    return scale, 1 if scale < 0.7 else 2


def _text_color(bg: Color) -> Color:
    """Black or white, whichever reads better on ``bg``."""
    r, g, b = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _put_label(canvas: np.ndarray, text: str, x: int, y: int, bg: Color, *, above: bool = True) -> None:
    """Draw ``text`` on a filled box of colour ``bg`` anchored at ``(x, y)``, kept inside the image.

    With ``above`` the box sits just above ``y`` when there is room, otherwise just below it.
    """
    import cv2

    h, w = canvas.shape[:2]
    scale, thick = _text_style(h, w)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(1, thick)
    box_w, box_h = tw + 2 * pad, th + base + 2 * pad
    top = y - box_h if above and y - box_h >= 0 else y
    top = max(0, min(top, h - box_h))
    left = max(0, min(x, w - box_w))
    cv2.rectangle(canvas, (left, top), (left + box_w - 1, top + box_h - 1), bg, thickness=-1)
    cv2.putText(
        canvas, text, (left + pad, top + pad + th), font, scale, _text_color(bg), thick, lineType=cv2.LINE_AA
    )


def draw_frame(
    frame: np.ndarray,
    masks: Sequence[np.ndarray | None],
    labels: Sequence[str],
    colors: Sequence[Color],
    alpha: float = 0.5,
) -> np.ndarray:
    """Draw masks, contours and labels over one frame; returns a new ``[H, W, 3]`` uint8 RGB array.

    Each mask is blended as ``frame * (1 - alpha) + color * alpha`` (later masks over earlier ones),
    outlined in its colour, and labelled at its bounding box's top-left corner (above the box when
    there is room). ``None`` masks and empty labels are skipped. The input frame is not modified.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB.
        masks: ``[H, W]`` bool/uint8 masks (or ``None`` for "absent in this frame").
        labels: One text per mask (``""``: no label).
        colors: One RGB colour per mask.
        alpha: Mask opacity in ``[0, 1]``.
    """
    import cv2

    if not (len(masks) == len(labels) == len(colors)):
        raise ValueError(f"draw_frame: {len(masks)} masks, {len(labels)} labels, {len(colors)} colors")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"draw_frame expects an [H, W, 3] frame, got shape {frame.shape}")
    h, w = frame.shape[:2]
    out = frame.astype(np.float32)
    present: list[tuple[np.ndarray, str, Color]] = []
    for mask, label, color in zip(masks, labels, colors, strict=True):
        if mask is None:
            continue
        if mask.shape != (h, w):
            raise ValueError(f"draw_frame: mask of shape {mask.shape} for a {h}x{w} frame")
        m = mask.astype(bool, copy=False)
        if not m.any():
            continue
        out[m] = out[m] * (1.0 - alpha) + np.asarray(color, dtype=np.float32) * alpha
        present.append((m, label, color))
    canvas = np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    thick = 1 if min(h, w) < 128 else max(2, round(min(h, w) / 360))
    for m, _, color in present:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, color, thick, lineType=cv2.LINE_8)
    for m, label, color in present:  # labels last: never hidden under another object's mask
        if label:
            ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            _put_label(canvas, label, int(xs[0]), int(ys[0]), color)
    return canvas


# --------------------------------------------------------------------------------------------
# Objects across a video
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlay:
    """One object across a video: per-frame segmentations, a label and a colour.

    Attributes:
        track_id: Identity used for the colour (GT annotation id, or prediction rank).
        label: Text drawn next to the mask, e.g. ``"#3 person"`` or ``"#0 person 0.87"``.
        segmentations: One per frame: compressed/uncompressed RLE, polygons, or ``None`` (absent).
        color: RGB colour; ``None`` means :func:`color_for` of ``track_id``.
        file: Where the segmentations come from, for error messages (e.g. the results file).
        entry: Which entry of ``file``, e.g. ``"results[3]"``.
    """

    track_id: int
    label: str
    segmentations: Sequence[Any] = field(repr=False)
    color: Color | None = None
    file: str | None = None
    entry: str | None = None

    @property
    def rgb(self) -> Color:
        return self.color if self.color is not None else color_for(self.track_id)

    def mask(self, index: int, height: int, width: int) -> np.ndarray | None:
        """The ``[H, W]`` uint8 mask in frame ``index`` (``None`` when absent or past the end)."""
        if index >= len(self.segmentations):
            return None
        seg = self.segmentations[index]
        if seg is None:
            return None
        rle = to_compressed_rle(seg, height, width)
        if not rle_counts_ok(rle["counts"], height * width)[0]:
            # pycocotools decodes a corrupt string into garbage (or reads past its buffer)
            where = f"{self.entry}, segmentations[{index}]" if self.entry else f"segmentations[{index}]"
            raise InputError(
                f"RLE 'counts' is not a valid compressed RLE of {height}x{width} pixels",
                file=self.file,
                entry=where,
            )
        return decode_rle(rle)


@dataclass(frozen=True)
class Panel:
    """One panel of a side-by-side rendering: a title and its objects."""

    title: str
    objects: Sequence[Overlay]


def _category_name(ds: YTVISDataset, category_id: int) -> str:
    cat = ds.categories.get(category_id)
    return cat.name if cat is not None else f"cat{category_id}"


def gt_overlays(ds: YTVISDataset, video_id: int) -> list[Overlay]:
    """The GT tracks of a video as overlays labelled ``#<annotation id> <category>``."""
    tracks: list[Track] = ds.tracks_of(video_id)
    return [Overlay(t.id, f"#{t.id} {_category_name(ds, t.category_id)}", t.segmentations) for t in tracks]


def prediction_overlays(
    ds: YTVISDataset,
    results: Sequence[dict[str, Any]],
    video_id: int,
    score_thr: float = 0.3,
    *,
    file: str | Path | None = None,
) -> list[Overlay]:
    """The predictions of a video with ``score >= score_thr`` as overlays.

    Predictions are ranked by score within the video (rank 0 = best, ties in file order) *before*
    thresholding, so a prediction keeps its colour and ``#rank`` whatever the threshold. They are
    returned worst first, so the best prediction is drawn on top. ``file`` names the results file
    in error messages (a corrupt RLE is reported as ``results[i], segmentations[j]``).
    """
    mine = [(i, r) for i, r in enumerate(results) if r["video_id"] == video_id]
    ranked = sorted(mine, key=lambda ir: -float(ir[1]["score"]))  # stable: ties keep file order
    out: list[Overlay] = []
    src = str(file) if file is not None else None
    for rank, (i, r) in enumerate(ranked):
        score = float(r["score"])
        if score < score_thr:
            continue
        label = f"#{rank} {_category_name(ds, r['category_id'])} {score:.2f}"
        out.append(Overlay(rank, label, r["segmentations"], file=src, entry=f"results[{i}]"))
    return out[::-1]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def read_results(path: str | Path, ds: YTVISDataset) -> list[dict[str, Any]]:
    """Read a YouTube-VIS results file and check it against ``ds``; raise :class:`InputError`.

    The checks are those of ``visrepro check-results`` (entry keys and types, finite scores in
    [0, 1], known videos and categories, one compressed RLE of the video's size or ``null`` per
    frame, RLE strings that decode to the frame's pixel count).
    """
    entries = results_io.read_results(path)
    videos = {v.id: (v.length, v.height, v.width) for v in ds.videos.values()}
    results_io.validate_results(
        entries, videos, set(ds.categories), file=path, unknown_category_is_error=True, deep=True
    )
    return entries


# --------------------------------------------------------------------------------------------
# Writing a video
# --------------------------------------------------------------------------------------------


@dataclass
class RenderedVideo:
    """What :func:`render_video` wrote for one video."""

    name: str
    frames: int
    size: tuple[int, int]  # (height, width) of the rendered frames
    files: list[Path] = field(default_factory=list)


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    s = max_side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)


def _sheet(cells: list[tuple[int, Image.Image]], *, columns: int = SHEET_COLUMNS) -> Image.Image:
    """A grid of captioned frames on a dark background."""
    cw = max(im.size[0] for _, im in cells)
    ch = max(im.size[1] for _, im in cells)
    if cw > 2 * ch:  # wide cells (side-by-side panels): fewer columns keep the sheet readable
        columns = max(1, columns // 2)
    cols = min(columns, len(cells))
    rows = math.ceil(len(cells) / cols)
    gap = 4
    sheet = np.full((rows * (ch + gap) + gap, cols * (cw + gap) + gap, 3), 32, dtype=np.uint8)
    for k, (index, im) in enumerate(cells):
        r, c = divmod(k, cols)
        y, x = gap + r * (ch + gap), gap + c * (cw + gap)
        cell = np.array(im)  # a writable copy (PIL's buffer is read-only)
        _put_label(cell, f"frame {index}", 0, cell.shape[0], (0, 0, 0))  # bottom-left corner
        sheet[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
    return Image.fromarray(sheet)


class _Mp4Writer:
    """An OpenCV ``mp4v`` writer onto a temporary file, renamed into place on :meth:`close`."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import cv2

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.mp4", dir=path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        h, w = size
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise InputError(
                "cannot open an MP4 writer (this OpenCV build has no 'mp4v' encoder?); "
                "use --format png,gif instead",
                file=path,
            )

    def write(self, rgb: np.ndarray) -> None:
        self.writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))

    def close(self, ok: bool) -> None:
        self.writer.release()
        if ok:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _hstack(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images side by side, separated by :data:`PANEL_GAP` white columns."""
    h = images[0].shape[0]
    gap = np.full((h, PANEL_GAP, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for k, im in enumerate(images):
        if k:
            parts.append(gap)
        parts.append(im)
    return np.concatenate(parts, axis=1)


def _as_panels(objects: Sequence[Overlay] | Sequence[Panel]) -> list[Panel]:
    if all(isinstance(o, Panel) for o in objects) and objects:
        return [o for o in objects if isinstance(o, Panel)]
    return [Panel("", [o for o in objects if isinstance(o, Overlay)])]


def render_video(
    sample: VideoSample,
    objects: Sequence[Overlay] | Sequence[Panel],
    out_dir: str | Path,
    *,
    formats: Iterable[str] = ("png", "gif"),
    fps: float = 6.0,
    alpha: float = 0.5,
    max_frames: int | None = None,
    sheet: bool = True,
    name: str | None = None,
) -> RenderedVideo:
    """Render a video's frames with its objects drawn over them, streaming frame by frame.

    Args:
        sample: The video (frames are decoded one at a time).
        objects: The overlays to draw, or several :class:`Panel` s to draw side by side (left to
            right, each titled).
        out_dir: Output directory; files are named after ``name`` (default: the video's name).
        formats: Any of ``"png"`` (``out_dir/<name>/00000.png ...``), ``"gif"``
            (``out_dir/<name>.gif``, longest side at most :data:`GIF_MAX_SIDE`) and ``"mp4"``
            (``out_dir/<name>.mp4``).
        fps: Frame rate of the GIF and MP4.
        alpha: Mask opacity.
        max_frames: Render only the first ``max_frames`` frames.
        sheet: Also write ``out_dir/<name>_sheet.png``, a grid of up to 8 evenly spaced frames.

    Raises:
        InputError: A frame is missing or unreadable, or the MP4 writer cannot be opened.
    """
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {FORMATS}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    panels = _as_panels(objects)
    out_dir = Path(out_dir)
    name = name or sample.name or str(sample.video_id)
    n = sample.length if max_frames is None else max(0, min(max_frames, sample.length))
    h, w = sample.height, sample.width
    size = (h, w * len(panels) + PANEL_GAP * (len(panels) - 1))
    result = RenderedVideo(name, n, size)
    if n == 0:
        return result

    png_dir = out_dir / name
    if "png" in formats:
        png_dir.mkdir(parents=True, exist_ok=True)
    sheet_at = (
        set(np.linspace(0, n - 1, min(SHEET_FRAMES, n)).round().astype(int).tolist()) if sheet else set()
    )
    sheet_cells: list[tuple[int, Image.Image]] = []
    gif_frames: list[Image.Image] = []
    mp4 = _Mp4Writer(out_dir / f"{name}.mp4", fps, size) if "mp4" in formats else None
    ok = False
    try:
        for i in range(n):
            frame = sample.frames.read(i)
            drawn = []
            for p in panels:
                masks = [o.mask(i, h, w) for o in p.objects]
                img = draw_frame(
                    frame, masks, [o.label for o in p.objects], [o.rgb for o in p.objects], alpha
                )
                if p.title:
                    _put_label(img, p.title, 0, 0, (255, 255, 255), above=False)
                drawn.append(img)
            canvas = drawn[0] if len(drawn) == 1 else _hstack(drawn)
            del frame, drawn
            if "png" in formats:
                Image.fromarray(canvas).save(png_dir / f"{i:05d}.png", compress_level=3)
            if mp4 is not None:
                mp4.write(canvas)
            if "gif" in formats or i in sheet_at:
                pil = Image.fromarray(canvas)
                if "gif" in formats:
                    gif_frames.append(_fit(pil, GIF_MAX_SIDE).quantize(256, Image.Quantize.FASTOCTREE))
                if i in sheet_at:
                    sheet_cells.append((i, _fit(pil, SHEET_CELL_SIDE)))
        ok = True
    finally:
        if mp4 is not None:
            mp4.close(ok)

    if "png" in formats:
        for old in png_dir.iterdir():  # frames left over from an earlier, longer rendering
            m = _PNG_NAME.match(old.name)
            if m and int(m.group(1)) >= n:
                old.unlink()
        result.files.append(png_dir)
    if "gif" in formats:
        gif_path = out_dir / f"{name}.gif"
        with atomic_open(gif_path, "wb") as fh:
            gif_frames[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=gif_frames[1:],
                duration=round(1000 / fps),
                loop=0,
                disposal=1,
            )
        result.files.append(gif_path)
        gif_frames.clear()
    if mp4 is not None:
        result.files.append(mp4.path)
    if sheet_cells:
        sheet_path = out_dir / f"{name}_sheet.png"
        with atomic_open(sheet_path, "wb") as fh:
            _sheet(sheet_cells).save(fh, format="PNG")
        result.files.append(sheet_path)
    return result


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, help="YouTube-VIS/OVIS annotation JSON")
    parser.add_argument(
        "--frames-root",
        required=True,
        type=Path,
        help="image root the annotation's file_names are relative to",
    )
    parser.add_argument("--results", type=Path, help="results JSON: draw predictions instead of GT")
    sel = parser.add_mutually_exclusive_group()
    sel.add_argument("--videos", help="comma-separated video ids (or names) to draw (default: all)")
    sel.add_argument("--max-videos", type=int, metavar="N", help="draw the first N videos")
    parser.add_argument(
        "--score-thr", type=float, default=0.3, help="draw predictions with score >= this (default 0.3)"
    )
    parser.add_argument("--out", type=Path, default=Path("visrepro_show"), help="output directory")
    parser.add_argument(
        "--format", default="png,gif", help=f"comma-separated, any of {','.join(FORMATS)} (default png,gif)"
    )
    parser.add_argument("--fps", type=float, default=6.0, help="frame rate of GIF/MP4 (default 6)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="draw only the first N frames per video")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask opacity (default 0.5)")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="GT on the left, predictions on the right (needs --results)",
    )


def _parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise UsageError(f"--format must be a comma-separated list of {', '.join(FORMATS)}, got {text!r}")
    return formats


def _select_videos(ds: YTVISDataset, args: argparse.Namespace) -> list[int]:
    if args.videos is not None:
        by_name = {v.name: v.id for v in ds.videos.values()}
        chosen: list[int] = []
        unknown: list[str] = []
        for tok in (t.strip() for t in args.videos.split(",")):
            if not tok:
                continue
            vid = int(tok) if re.fullmatch(r"-?\d+", tok) else None
            if vid is not None and vid in ds.videos:
                chosen.append(vid)
            elif tok in by_name:
                chosen.append(by_name[tok])
            else:
                unknown.append(tok)
        if unknown:
            raise InputError(
                f"unknown video id(s) requested with --videos: {', '.join(unknown)}", file=ds.ann_file
            )
        if not chosen:
            raise UsageError("--videos names no video")
        return list(dict.fromkeys(chosen))
    ids = list(ds.videos)
    if args.max_videos is not None:
        if args.max_videos < 1:
            raise UsageError("--max-videos must be at least 1")
        ids = ids[: args.max_videos]
    return ids


def run(args: argparse.Namespace) -> int:
    formats = _parse_formats(args.format)
    if args.fps <= 0:
        raise UsageError("--fps must be positive")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError("--alpha must be in [0, 1]")
    if args.side_by_side and args.results is None:
        raise UsageError("--side-by-side needs --results")
    if not args.frames_root.is_dir():
        what = "does not exist" if not args.frames_root.exists() else "is not a directory"
        raise InputError(f"frames root {what}", file=args.frames_root)

    ds = YTVISDataset.load(args.gt, image_root=args.frames_root)
    video_ids = _select_videos(ds, args)
    results = read_results(args.results, ds) if args.results is not None else None
    need_gt = results is None or args.side_by_side
    if need_gt and not ds.has_annotations:
        raise InputError(
            "the annotation file has no 'annotations' (a valid/test split): pass --results to draw predictions",
            file=args.gt,
        )

    for vid in video_ids:
        sample = ds.video_sample(vid)
        objects: list[Overlay] | list[Panel]
        if results is None:
            objects = gt_overlays(ds, vid)
        else:
            preds = prediction_overlays(ds, results, vid, args.score_thr, file=args.results)
            if args.side_by_side:
                objects = [Panel("GT", gt_overlays(ds, vid)), Panel(f"pred >= {args.score_thr:g}", preds)]
            else:
                objects = preds
        rendered = render_video(
            sample,
            objects,
            args.out,
            formats=formats,
            fps=args.fps,
            alpha=args.alpha,
            max_frames=args.max_frames,
        )
        log.info(
            "video %s (%s): %d frame(s) -> %s",
            vid,
            rendered.name,
            rendered.frames,
            ", ".join(str(p) for p in rendered.files),
        )
    print(f"wrote {len(video_ids)} video(s) to {args.out}")
    return 0
