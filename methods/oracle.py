"""The oracle: a "method" that returns the ground-truth tracks, optionally perturbed.

It makes the whole chain testable without a trained model: ``visrepro predict --variant oracle.gt``
on a split with GT, then ``visrepro evaluate``, gives AP 1 (100 %) unperturbed; each perturbation
lowers it in a known direction. It is an online adapter (``clip_length=1``) that needs no frames.

Perturbations (builder keyword arguments, ``--adapter-arg KEY=VALUE`` on the command line), all
drawn from ``numpy.random.default_rng([seed, video_id])`` in a fixed order, so a video's output
does not depend on which process or in which order it was predicted:

* ``drop``: probability that a track's mask in a frame is left out (``None``).
* ``jitter``: ``k`` pixels; ``jitter_mode="shift"`` moves each mask by ``k`` px in one of the 8
  directions, ``"morph"`` dilates or erodes it with a ``(2k+1)`` square kernel (chosen at random).
* ``swap``: probability (per video) that two GT tracks of one category exchange identities from a
  random frame on (needs two same-category tracks in the video).
* ``score_drop``: scores are ``1 - u * score_drop`` with ``u ~ U(0, 1)`` per track output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np

from benchmark.adapter import Clip, InstanceOutput, MethodAdapter
from benchmark.data.frames import VideoSample
from benchmark.data.ytvis import Track, YTVISDataset
from benchmark.errors import InputError
from benchmark.masks import RLE, decode_rle, encode_mask, to_compressed_rle
from benchmark.variant_cfg import VariantCfg

__all__ = ["OracleAdapter", "build"]

_DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


class OracleAdapter(MethodAdapter):
    """Returns each GT track of the video (id = GT annotation id, category = GT category).

    Args:
        cfg: The variant (``oracle.gt``).
        device: Unused (no network).
        seed: Seed of the perturbations.
        drop: Per-(track, frame) drop probability.
        jitter: Mask jitter in pixels (0: none).
        jitter_mode: ``shift`` or ``morph``.
        swap: Per-video probability of an identity swap between two same-category tracks.
        score_drop: Maximum score decrease.
    """

    needs_frames = False
    category_vote = "first"

    def __init__(
        self,
        cfg: VariantCfg,
        *,
        device: str = "cpu",
        seed: int = 0,
        drop: float = 0.0,
        jitter: int = 0,
        jitter_mode: Literal["shift", "morph"] = "shift",
        swap: float = 0.0,
        score_drop: float = 0.0,
    ) -> None:
        super().__init__(cfg, None, device=device)
        for name, p in (("drop", drop), ("swap", swap), ("score_drop", score_drop)):
            if not 0.0 <= float(p) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {p}", entry="oracle options")
        if int(jitter) < 0 or jitter_mode not in ("shift", "morph"):
            raise InputError("jitter must be >= 0 and jitter_mode 'shift' or 'morph'", entry="oracle options")
        self.seed, self.drop, self.jitter = int(seed), float(drop), int(jitter)
        self.jitter_mode, self.swap, self.score_drop = jitter_mode, float(swap), float(score_drop)
        self._tracks: list[Track] = []
        self._rng = np.random.default_rng(0)
        self._swap: tuple[int, int, int] | None = None  # (track index a, track index b, from frame)

    def set_dataset(self, dataset: YTVISDataset | None) -> None:
        if dataset is None or not dataset.has_annotations:
            raise InputError(
                "the oracle needs ground truth: this dataset has no annotations",
                file=dataset.ann_file if dataset is not None else None,
            )
        super().set_dataset(dataset)

    def reset(self, video: VideoSample) -> None:
        assert self.dataset is not None, "set_dataset() first"
        self._tracks = list(self.dataset.tracks_of(video.video_id))
        self._rng = np.random.default_rng([self.seed, video.video_id])
        self._swap = None
        if self.swap > 0 and self._rng.random() < self.swap and video.length > 1:
            by_cat: dict[int, list[int]] = {}
            for i, t in enumerate(self._tracks):
                by_cat.setdefault(t.category_id, []).append(i)
            pairs = [v for v in by_cat.values() if len(v) >= 2]
            if pairs:
                group = pairs[int(self._rng.integers(len(pairs)))]
                a, b = self._rng.choice(len(group), size=2, replace=False)
                self._swap = (group[int(a)], group[int(b)], int(self._rng.integers(1, video.length)))

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> Any:
        return clip

    def forward(self, inputs: Any) -> Any:
        return inputs

    def track(self, raw: Any, clip: Clip, video: VideoSample) -> list[tuple[int, int, float, RLE]]:
        """``[(track id, category id, score, RLE)]`` of the clip's (single) frame."""
        (t,) = clip.emit
        out = []
        for i, tr in enumerate(self._tracks):
            seg = tr.segmentations[t] if t < len(tr.segmentations) else None
            # draw every random number whether or not it is used: the stream stays aligned
            u_drop, u_score = self._rng.random(), self._rng.random()
            u_dir = int(self._rng.integers(len(_DIRECTIONS)))
            u_morph = self._rng.random()
            if seg is None or u_drop < self.drop:
                continue
            rle = to_compressed_rle(seg, video.height, video.width)
            if self.jitter:
                rle = self._jitter(rle, u_dir, u_morph)
            tid = tr.id
            if self._swap is not None and t >= self._swap[2] and i in self._swap[:2]:
                other = self._swap[1] if i == self._swap[0] else self._swap[0]
                tid = self._tracks[other].id
            out.append((tid, tr.category_id, 1.0 - u_score * self.score_drop, rle))
        return out

    def _jitter(self, rle: RLE, direction: int, u: float) -> RLE:
        m = decode_rle(rle)
        k = self.jitter
        if self.jitter_mode == "shift":
            dy, dx = _DIRECTIONS[direction]
            h, w = m.shape
            out = np.zeros_like(m)
            ys, yd = (
                (slice(0, h - k * dy), slice(k * dy, h))
                if dy >= 0
                else (slice(-k * dy, h), slice(0, h + k * dy))
            )
            xs, xd = (
                (slice(0, w - k * dx), slice(k * dx, w))
                if dx >= 0
                else (slice(-k * dx, w), slice(0, w + k * dx))
            )
            out[yd, xd] = m[ys, xs]
        else:
            kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
            out = cv2.dilate(m, kernel) if u < 0.5 else cv2.erode(m, kernel)
        return encode_mask(out)

    def postprocess(self, tracked: Any, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        (t,) = clip.emit
        return [InstanceOutput(tid, cat, score, (t,), (rle,)) for tid, cat, score, rle in tracked]


def build(cfg: VariantCfg, *, device: str = "cpu", **kwargs: Any) -> OracleAdapter:
    """Builder registered for ``oracle.gt`` (keyword arguments: see :class:`OracleAdapter`)."""
    return OracleAdapter(cfg, device=device, **kwargs)
