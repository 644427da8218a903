"""Lazy frame sources: a video's frames are decoded one at a time, never held whole.

OVIS has videos of hundreds of 720p frames; holding a decoded video costs gigabytes. A
:class:`FrameSource` knows how many frames there are and decodes frame ``i`` only when asked, so
iterating a 1000-frame 1080p video keeps one frame in memory at a time.

Frames are ``[H, W, 3]`` ``uint8`` arrays in **RGB** order (the official CrossVIS and CiCo test
pipelines read with PIL and convert to RGB/BGR themselves; adapters do that conversion).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from benchmark.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "FrameSource", "ImageFiles", "VideoFile", "VideoSample"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class FrameSource(abc.ABC):
    """A sequence of frames decoded on demand."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def read(self, index: int) -> np.ndarray:
        """Decode frame ``index`` as ``[H, W, 3]`` uint8 RGB."""

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.read(i)

    def __getitem__(self, index: int) -> np.ndarray:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        return self.read(index)


class ImageFiles(FrameSource):
    """Frames stored as image files (the YouTube-VIS layout: one JPEG per frame).

    Args:
        paths: One image file per frame, in order.
        size: Expected ``(height, width)``; a frame of another size is an :class:`InputError`.
        entry: How to name this video in error messages (e.g. ``"videos[3] (id 17)"``).
    """

    def __init__(
        self, paths: Sequence[str | Path], *, size: tuple[int, int] | None = None, entry: str | None = None
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.size = size
        self.entry = entry

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        path = self.paths[index]
        entry = f"{self.entry}, frame {index}" if self.entry else f"frame {index}"
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise InputError("frame file is missing", file=path, entry=entry) from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(f"frame is not a readable image ({exc})", file=path, entry=entry) from None
        if self.size is not None and arr.shape[:2] != tuple(self.size):
            raise InputError(
                f"frame is {arr.shape[0]}x{arr.shape[1]} but the annotation says {self.size[0]}x{self.size[1]}",
                file=path,
                entry=entry,
            )
        return arr

    @classmethod
    def from_dir(cls, directory: str | Path) -> ImageFiles:
        """All images of a directory in name order (a plain frames folder)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise InputError("not a directory of frames", file=directory)
        paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the directory", file=directory)
        return cls(paths)


class VideoFile(FrameSource):
    """Frames of a video file (mp4, avi, ...), decoded with OpenCV.

    Sequential reads stream through the decoder; a backwards or skipping read re-seeks. The frame
    count is counted once by decoding (container metadata is often wrong).
    """

    def __init__(self, path: str | Path) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("video file does not exist", file=self.path)
        self._cv2 = cv2
        self._cap: cv2.VideoCapture | None = None
        self._next = 0
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise InputError("video file cannot be opened (unknown format or codec)", file=self.path)
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        if n == 0:
            raise InputError("video file has no decodable frames", file=self.path)
        self._len = n

    def __len__(self) -> int:
        return self._len

    def read(self, index: int) -> np.ndarray:
        cv2 = self._cv2
        if self._cap is None or index != self._next:
            if self._cap is not None:
                self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path))
            for _ in range(index):
                self._cap.grab()
            self._next = index
        ok, frame = self._cap.read()
        if not ok:
            raise InputError(f"frame {index} cannot be decoded", file=self.path)
        self._next = index + 1
        return np.ascontiguousarray(frame[:, :, ::-1])

    def __del__(self) -> None:
        if getattr(self, "_cap", None) is not None:
            self._cap.release()  # type: ignore[union-attr]


@dataclass(frozen=True)
class VideoSample:
    """One video as methods see it: its identity, size and a lazy frame source.

    Attributes:
        video_id: The dataset's video id (the ``video_id`` of result entries).
        height: Frame height in pixels, as in the annotation file.
        width: Frame width in pixels.
        frames: The frames, decoded on demand.
        file_names: Frame file names as in the annotation file (relative to the image root).
        name: A readable name (the frame folder), for logs and plots.
    """

    video_id: int
    height: int
    width: int
    frames: FrameSource = field(repr=False)
    file_names: tuple[str, ...] = field(default=(), repr=False)
    name: str = ""

    @property
    def length(self) -> int:
        return len(self.frames)

    @classmethod
    def from_path(cls, path: str | Path, video_id: int = 1) -> VideoSample:
        """A plain video: a directory of frames or a video file."""
        path = Path(path)
        source: FrameSource
        if path.is_dir():
            files = ImageFiles.from_dir(path)
            names = tuple(p.name for p in files.paths)
            source = files
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            source = VideoFile(path)
            names = tuple(f"{i:05d}.jpg" for i in range(len(source)))
        elif not path.exists():
            raise InputError("no such video (expected a frames directory or a video file)", file=path)
        else:
            raise InputError(
                f"unsupported video input (expected a frames directory or {', '.join(VIDEO_SUFFIXES)})",
                file=path,
            )
        first = source.read(0)
        h, w = first.shape[:2]
        if isinstance(source, ImageFiles):
            source.size = (h, w)
        return cls(video_id=video_id, height=h, width=w, frames=source, file_names=names, name=path.stem)
