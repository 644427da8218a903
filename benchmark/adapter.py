"""The interface a VIS method implements, and the streaming loop that drives it over a video.

The unit is one video, but a video is never held whole: frames are decoded one at a time from
:attr:`VideoSample.frames <benchmark.data.frames.VideoSample>`, fed to the method frame by frame
(online methods, ``clip_length=1``) or as clips (clip methods: ``clip_length=3``, ``clip_overlap=1``
for CiCo), and each frame's instance masks are RLE-encoded as soon as they are final. Only the RLEs
(a few hundred bytes per mask) are kept until the video ends, when each track's per-frame list is
assembled. Peak memory is one clip's frames and dense masks, whatever the video length.

Per clip the base class runs five stages, each inside ``timer.section(name)`` so the FPS harness
can time them separately (:data:`STAGES`):

============  =============================================  ======================================
stage         what                                           FPS protocol
============  =============================================  ======================================
read          decode the clip's frames from disk             e2e
preprocess    resize / normalise / pad, move to device       model+track, e2e
forward       the network                                    model, model+track, e2e
track         method inference: tracking (online) or         model+track, e2e
              clip linking; assigns track ids
postprocess   decode masks to the frame size, threshold,     e2e
              RLE-encode (:class:`InstanceOutput`)
============  =============================================  ======================================

Clip schedule (:func:`clip_schedule`, CiCo's ``eval.py``): clips start every
``step = clip_length - clip_overlap`` frames; a short last clip is tile-padded (``[6] -> [6,6,6]``,
``[a,b] -> [a,b,a]``); a clip's outputs are final for its first ``step`` real frames (the
overlapped frames are written by the next clip), and the last clip's for all of its real frames.

Ids: ``track_id`` is the adapter's id, unique within one video (any int); ``category_id`` is the
**dataset's** category id (not a contiguous class index); ``video_id`` is the dataset's video id.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import torch
from torch import nn

from benchmark.checkpoint import (
    Converted,
    DropRule,
    LoadReport,
    RenameRule,
    convert_state_dict,
    load_strict,
    read_checkpoint,
)
from benchmark.data.frames import VideoSample
from benchmark.errors import InputError
from benchmark.masks import RLE, encode_masks
from benchmark.variant_cfg import VariantCfg

if TYPE_CHECKING:
    from benchmark.data.ytvis import YTVISDataset

__all__ = [
    "STAGES",
    "Clip",
    "InstanceOutput",
    "MethodAdapter",
    "NullTimer",
    "StageTimer",
    "TrackPrediction",
    "clip_schedule",
    "masks_to_rles",
]

log = logging.getLogger(__name__)

#: The timed stages of one clip, in order.
STAGES = ("read", "preprocess", "forward", "track", "postprocess")
Precision = Literal["fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class Clip:
    """One forward's worth of frames of a video.

    Attributes:
        index: Clip number within the video (0-based).
        frame_ids: The real frame indices, ascending (``len <= clip_length``).
        padded_ids: What the network sees: ``frame_ids`` tile-padded to ``clip_length``.
        emit: Frame indices whose outputs become final with this clip (a prefix of ``frame_ids``).
        num_frames: Frames in the video.
    """

    index: int
    frame_ids: tuple[int, ...]
    padded_ids: tuple[int, ...]
    emit: tuple[int, ...]
    num_frames: int

    @property
    def is_first(self) -> bool:
        return self.index == 0


def clip_schedule(num_frames: int, clip_length: int = 1, clip_overlap: int = 0) -> list[Clip]:
    """The clips covering ``num_frames`` frames (see the module docstring); each frame emitted once.

    Raises:
        ValueError: ``clip_length < 1`` or ``not 0 <= clip_overlap < clip_length``.
    """
    if clip_length < 1 or not 0 <= clip_overlap < clip_length:
        raise ValueError(f"bad clip_length {clip_length} / clip_overlap {clip_overlap}")
    step = clip_length - clip_overlap
    clips = []
    for c in range(-(-num_frames // step)):
        ids = tuple(range(c * step, min(c * step + clip_length, num_frames)))
        padded = tuple(ids[i % len(ids)] for i in range(clip_length))
        last = c * step + step >= num_frames
        emit = ids if last else ids[:step]
        clips.append(Clip(c, ids, padded, emit, num_frames))
    return clips


@dataclass(frozen=True)
class InstanceOutput:
    """One instance's final masks for (some of) a clip's emitted frames.

    Attributes:
        track_id: The adapter's track id (unique within the video).
        category_id: Dataset category id (one vote for the track's category).
        score: Confidence in [0, 1] (one vote for the track's score, averaged over its outputs).
        frames: Frame indices, a subset of ``clip.emit``.
        rles: Compressed RLE ``{"size": [H, W], "counts": str}`` at the video's size, one per frame.
    """

    track_id: int
    category_id: int
    score: float
    frames: tuple[int, ...]
    rles: tuple[RLE, ...]


@dataclass(frozen=True)
class TrackPrediction:
    """One predicted track of a video: an entry of ``results.json``.

    Attributes:
        video_id: Dataset video id.
        category_id: Dataset category id.
        score: In [0, 1].
        segmentations: One per frame of the video: compressed RLE at the video's size, or ``None``.
    """

    video_id: int
    category_id: int
    score: float
    segmentations: tuple[RLE | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": int(self.video_id),
            "score": float(self.score),
            "category_id": int(self.category_id),
            "segmentations": list(self.segmentations),
        }


class StageTimer(Protocol):
    """Times the stages of the loop; :class:`NullTimer` does nothing."""

    def section(self, name: str) -> contextlib.AbstractContextManager[None]: ...


class NullTimer:
    def section(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class _TrackAcc:
    votes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    rles: dict[int, RLE] = field(default_factory=dict)


def masks_to_rles(masks: torch.Tensor | np.ndarray) -> list[RLE]:
    """``[K, H, W]`` boolean (or 0/1) masks -> K compressed RLEs (moves to CPU as needed)."""
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().to("cpu", torch.uint8).numpy()
    return encode_masks(np.asarray(masks, dtype=np.uint8))


class MethodAdapter(abc.ABC):
    """One VIS method behind a dataset- and metric-agnostic, streaming interface.

    Subclasses implement :meth:`preprocess`, :meth:`forward`, :meth:`postprocess` and usually
    :meth:`track` and :meth:`reset`; the base class schedules clips, times the stages, accumulates
    the RLEs and assembles the tracks (:meth:`predict_video`). Adapters are stateful only within
    one video: :meth:`reset` is called before every video.

    Class attributes:
        renames / drops: The official-checkpoint conversion (:mod:`benchmark.checkpoint`).
        needs_frames: ``False`` for adapters that never look at pixels (the oracle): frames are
            then not decoded and ``preprocess`` gets an empty list.
        category_vote: How a track's category is chosen from its outputs: ``majority`` (ties:
            smallest id; CiCo) or ``first`` (CrossVIS).

    Args:
        cfg: The variant's metadata; ``clip_length``/``clip_overlap`` come from it.
        model: The network (``None`` for methods without one, e.g. the oracle). Put in eval mode
            and moved to ``device``.
        device: ``cpu``, ``cuda``, ``cuda:N``.
    """

    renames: ClassVar[tuple[RenameRule, ...]] = ()
    drops: ClassVar[tuple[DropRule, ...]] = ()
    category_vote: ClassVar[Literal["majority", "first"]] = "majority"
    needs_frames: ClassVar[bool] = True

    def __init__(self, cfg: VariantCfg, model: nn.Module | None = None, *, device: str = "cpu") -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if model is not None else None
        self.clip_length = cfg.clip_length
        self.clip_overlap = cfg.clip_overlap
        self.dataset: YTVISDataset | None = None
        self.category_ids: tuple[int, ...] = ()
        self.checkpoint_sha256: str | None = None
        self.precision: Precision = "fp32"
        self.channels_last = False

    # ---- to implement ---------------------------------------------------------------------------
    @abc.abstractmethod
    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> Any:
        """Resize/normalise/pad ``frames`` (``[H, W, 3]`` uint8 RGB, one per ``clip.padded_ids``)
        and move them to the device, as the official test pipeline does."""

    @abc.abstractmethod
    def forward(self, inputs: Any) -> Any:
        """The network on one preprocessed clip (batch 1). Timed as ``model``."""

    def track(self, raw: Any, clip: Clip, video: VideoSample) -> Any:
        """Method inference after the network: per-frame detection selection and association with
        the tracks so far (online) or clip linking; assigns track ids. Default: identity."""
        return raw

    @abc.abstractmethod
    def postprocess(self, tracked: Any, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        """Masks of ``clip.emit`` frames at ``(video.height, video.width)``, thresholded and
        RLE-encoded (:func:`masks_to_rles`), with dataset category ids."""

    def reset(self, video: VideoSample) -> None:
        """Clear per-video state (tracker memory) before ``video``. Default: nothing."""
        return None

    def checkpoint_num_classes(self, state: Mapping[str, torch.Tensor]) -> int | None:
        """The class count of a state dict in this model's key layout (``None``: cannot tell),
        e.g. the classifier's output channels. Used on the converted checkpoint and on the
        model's own state dict, so a class-count mismatch is reported as such, with a hint."""
        return None

    # ---- provided -------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def set_dataset(self, dataset: YTVISDataset | None) -> None:
        """Bind the dataset (categories; GT for the oracle). A class-count mismatch is an error.

        Raises:
            InputError: The variant's classifier has ``num_classes`` classes and the dataset another
                number of categories (e.g. a 40-class YouTube-VIS model on 25-class OVIS).
        """
        self.dataset = dataset
        self.category_ids = tuple(sorted(dataset.categories)) if dataset is not None else ()
        n = len(self.category_ids)
        if dataset is not None and self.num_classes and n != self.num_classes:
            raise InputError(
                f"variant {self.cfg.name} predicts {self.num_classes} classes but the dataset has {n} "
                f"categories; {_variants_hint(n)}",
                file=dataset.ann_file,
            )

    def set_runtime(
        self, *, precision: Precision = "fp32", channels_last: bool = False, compile: bool = False
    ) -> None:
        """Options for speed runs: autocast precision, channels-last model, ``torch.compile``."""
        self.precision = precision
        self.channels_last = channels_last
        if self.model is not None and channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.model is not None and compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """Move an input tensor to the device (channels-last for 4-D tensors when asked)."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def convert_state_dict(self, official: Mapping[str, torch.Tensor]) -> Converted:
        """Official keys -> this model's keys by :attr:`drops` and :attr:`renames`. Pure."""
        return convert_state_dict(official, self.renames, self.drops)

    def load_official_checkpoint(self, path: str | Path, *, strict: bool = True) -> LoadReport:
        """Read (sha256-verified when the variant knows it), convert and load an official checkpoint.

        The variant's recorded sha256 is that of its published file, so it is checked where ``path``
        is that file (named ``<variant>.pth``, as the fetch stage writes it, or the published file
        name); other weights of the same architecture (a model trained by ``visrepro train``) load
        unchecked, their digest in the load report.

        Raises:
            InputError: unreadable file, digest mismatch, class-count mismatch, or (``strict``)
                any missing / unexpected / mis-shaped key.
        """
        if self.model is None:
            raise InputError(f"variant {self.cfg.name} has no network: it takes no checkpoint", file=path)
        published = {f"{self.cfg.name}.pth", self.cfg.checkpoint_file}
        known = self.cfg.checkpoint_sha256 if Path(path).name in published else None
        state, digest = read_checkpoint(path, expected_sha256=known)
        converted = self.convert_state_dict(state)
        # the same hook on our own state dict says how many classes the model was built with
        n = self.checkpoint_num_classes(converted.state)
        expected = self.checkpoint_num_classes(self.model.state_dict()) or self.num_classes
        if n is not None and expected and n != expected:
            raise InputError(
                f"the checkpoint has {n} classes, variant {self.cfg.name} expects {expected} "
                f"(e.g. a 40-class YouTube-VIS checkpoint for a 25-class OVIS variant); "
                f"{self.class_mismatch_hint(n, expected)}",
                file=path,
            )
        report = load_strict(self.model, converted, strict=strict, file=path, sha256=digest)
        self.checkpoint_sha256 = digest
        return report

    def class_mismatch_hint(self, found: int, expected: int) -> str:
        """The hint of the class-count error of :meth:`load_official_checkpoint` (methods whose
        networks come in several head layouts override it)."""
        return _variants_hint(found, what="checkpoint")

    def settings(self) -> dict[str, Any]:
        """The test-time settings that shape the results beyond the variant and its options
        (thresholds a builder defaults); ``visrepro predict`` records them with the run and refuses to
        resume it under other ones. JSON values. Default: none."""
        return {}

    def iter_clips(self, video: VideoSample) -> list[Clip]:
        return clip_schedule(video.length, self.clip_length, self.clip_overlap)

    def run_clip(
        self,
        video: VideoSample,
        clip: Clip,
        cache: dict[int, np.ndarray],
        timer: StageTimer,
        on_stage: Callable[[str, Any], None] | None = None,
    ) -> list[InstanceOutput]:
        """Run the five stages on one clip; ``cache`` keeps decoded frames shared by clips."""
        with timer.section("read"):
            if not self.needs_frames:
                cache.clear()
            for i in clip.frame_ids if self.needs_frames else ():
                if i not in cache:
                    cache[i] = video.frames[i]
            frames = [cache[i] for i in clip.padded_ids] if self.needs_frames else []
            next_start = clip.frame_ids[0] + self.clip_length - self.clip_overlap
            for i in [k for k in cache if k < next_start]:
                del cache[i]  # keep only the frames the next clip shares
        with timer.section("preprocess"):
            inputs = self.preprocess(frames, clip, video)
        if on_stage is not None:
            on_stage("preprocess", inputs)
        with timer.section("forward"), self._autocast():
            raw = self.forward(inputs)
        with timer.section("track"), self._autocast():
            tracked = self.track(raw, clip, video)
        with timer.section("postprocess"):
            return self.postprocess(tracked, clip, video)

    def iter_outputs(
        self, video: VideoSample, timer: StageTimer | None = None
    ) -> Iterator[tuple[Clip, list[InstanceOutput]]]:
        """Stream ``(clip, outputs)`` over ``video`` (after :meth:`reset`), under inference mode."""
        timer = timer or NullTimer()
        cache: dict[int, np.ndarray] = {}
        self.reset(video)
        for clip in self.iter_clips(video):
            with torch.inference_mode():
                outs = self.run_clip(video, clip, cache, timer)
            yield clip, outs

    def predict_video(
        self,
        video: VideoSample,
        timer: StageTimer | None = None,
        on_clip: Callable[[Clip], None] | None = None,
    ) -> list[TrackPrediction]:
        """All tracks of ``video``, in order of first appearance (then output order within a clip).

        A track's score is the mean of its outputs' scores; its category the majority (or first,
        see :attr:`category_vote`) of its outputs' categories; frames without output are ``None``.
        ``on_clip(clip)`` is called after each clip (progress bars).
        """
        acc: dict[int, _TrackAcc] = {}
        size = [video.height, video.width]
        for clip, outs in self.iter_outputs(video, timer):
            emit = set(clip.emit)
            for o in outs:
                a = acc.setdefault(o.track_id, _TrackAcc())
                a.votes.append(int(o.category_id))
                a.scores.append(float(o.score))
                for f, rle in zip(o.frames, o.rles, strict=True):
                    if f not in emit or f in a.rles or list(rle["size"]) != size:
                        raise ValueError(
                            f"{type(self).__name__}: track {o.track_id} frame {f} in clip {clip.index}: "
                            f"not an emitted frame {sorted(emit)}, emitted twice, or RLE size "
                            f"{rle['size']} != {size}"
                        )
                    a.rles[f] = rle
            if on_clip is not None:
                on_clip(clip)
        return [self._finalize(video, a) for a in acc.values()]

    def _finalize(self, video: VideoSample, a: _TrackAcc) -> TrackPrediction:
        if self.category_vote == "first":
            cat = a.votes[0]
        else:
            ids, counts = np.unique(np.asarray(a.votes), return_counts=True)
            cat = int(ids[np.argmax(counts)])  # np.unique sorts: ties go to the smallest id
        segs = tuple(a.rles.get(t) for t in range(video.length))
        return TrackPrediction(video.video_id, cat, float(np.mean(a.scores)), segs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0


def _variants_hint(n: int, what: str = "dataset") -> str:
    from benchmark.registry import get_variant_cfg, list_variants

    names = [v for v in list_variants(kind="method") if get_variant_cfg(v).num_classes == n]
    if names:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        return f"hint: use a variant trained with {n} classes for this {what} ({shown})"
    return f"hint: no known variant has {n} classes; train one or map the categories"
