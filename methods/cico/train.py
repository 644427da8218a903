"""Training CiCo (``visrepro train --variant cico_*``): the official data pipeline, losses, schedule
and initialisation behind :class:`benchmark.train.MethodTrainer`.

Data (``datasets/ytvos.py:pull_item`` and ``augmentations_vis.py`` of the official code):

* one item per (video, frame) with at least one valid, non-crowd GT box (``area > 0, w >= 1, h >= 1``);
* the clip is that frame plus ``T - 1`` frames drawn without replacement from the offsets
  ``range(-T*1//2, (T+1)//2) \\ {0}`` (``{-2, -1, +1}`` for T = 3: asymmetric, as official) among
  the annotated frames, sorted; too few candidates are repeated, none gives the frame itself;
* boxes are ``[x, y, x + w - 1, y + h - 1]`` (the official ``-1``) divided by the frame size;
* augmentation: p = 0.5 flip that is **vertical** (``image[::-1]``, official), resize (short side
  ``min_size``, long side at most ``max_size``; bilinear for images and masks), p = 0.5 zoom by
  ``U(0.5, 1.5)`` (zoom-out pastes top-left on a mean canvas, zoom-in random-crops and clips the
  boxes), then the inference normalisation (ImageNet statistics on the BGR channels, then RGB);
  the small variant (not official) flips horizontally and does not zoom (options ``flip``, ``expand``);
* objects absent from a clip frame get an all-zero box and mask (filled by the loss from the
  nearest frame); an object's label is the majority of its per-frame labels;
* a batch is zero-padded bottom/right to a multiple of 32, boxes rescaled to the padded size.

Schedule (``train.py``, ``configs/CiCo/base_vis.py``): SGD momentum 0.9, weight decay 1e-4 on all
parameters, LR 1e-3 (``--LR`` default; ``base_vis.py`` says 5e-4 but the CLI default overrides it),
linear warm-up from 1e-4 over 500 iterations, x0.1 at epoch 9 of 12, no gradient clipping; 6 clips
per GPU. Backbone BatchNorm is frozen when a GPU holds fewer than 4 clips.

Initialisation (``CoreNet.init_weights_coco``): Xavier-uniform for every Conv2d/Conv3d/Linear weight,
zero biases except the focal classifier's ``-log(99)``, then the COCO weights: equal shapes copied;
``conf_layer`` of another shape skipped; 1-D tensors whose size divides ours repeated; 2-D kernels
inflated to 3-D by repeating over ``t`` (ProtoNet: times ``[0.125, 0.75, 0.125]`` for t = 3, others
divided by ``t``); a 4-D weight of another shape is left at its initialisation (official, silently).
Here any other source key is an error, unless a known official-only module (``convert.DROPS``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from benchmark.checkpoint import read_checkpoint
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.masks import decode_rle, to_compressed_rle
from benchmark.options import opt_bool, opt_float, opt_int
from benchmark.train import Schedule
from benchmark.variant_cfg import VariantCfg
from methods.cico.adapter import MEAN_BGR, STD_BGR, config_of, resized_size
from methods.cico.convert import DROPS, RENAMES
from methods.cico.losses import ClipTargets, LossConfig, cico_losses
from methods.cico.model import CiCoConfig, CiCoNet

__all__ = [
    "CiCoClipDataset",
    "CiCoTrainer",
    "ClipBatch",
    "ClipSample",
    "build_trainer",
    "inflate_coco_weights",
    "init_weights",
    "sample_ref_frames",
]

log = logging.getLogger(__name__)

FOCAL_PRIOR = 0.01


# ---- data ----------------------------------------------------------------------------------------
@dataclass
class ClipSample:
    frames: np.ndarray  # [T, 3, h, w] float32, normalised
    boxes: np.ndarray  # [n, T, 4] normalised to (w, h)
    masks: np.ndarray  # [n, T, h, w] uint8
    labels: np.ndarray  # [n] int64, 1-based
    ids: np.ndarray  # [n] int64


@dataclass
class ClipBatch:
    frames: torch.Tensor  # [B*T, 3, H, W]
    targets: list[ClipTargets]


def sample_ref_frames(
    frame: int, candidates: set[int], clip_frames: int, rng: np.random.Generator
) -> list[int]:
    """The official ``sample_ref``: ``T - 1`` reference frames around ``frame``."""
    n = clip_frames
    valid = [frame + i for i in range(-n // 2, (n + 1) // 2) if i != 0 and frame + i in candidates]
    if not valid:
        return [frame] * (n - 1)
    if n - 1 > len(valid):
        valid += (valid * n)[: n - 1 - len(valid)]
    pick = rng.choice(len(valid), size=n - 1, replace=False)
    return [valid[int(k)] for k in pick]


FLIPS = ("vertical", "horizontal")  # the flip of the augmentation (official: vertical)


def _resize_stack(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """cv2 bilinear resize of ``[h0, w0, c]`` (any c >= 1) -> ``[h, w, c]``."""
    if x.shape[2] == 0:
        return np.zeros((h, w, 0), x.dtype)
    out = np.concatenate(
        [
            np.atleast_3d(cv2.resize(np.ascontiguousarray(x[:, :, s : s + 256]), (w, h)))
            for s in range(0, x.shape[2], 256)
        ],
        2,
    )
    return out.reshape(h, w, x.shape[2])


class CiCoClipDataset:
    """Training clips of a YouTube-VIS-style dataset (see the module docstring)."""

    def __init__(
        self,
        ds: YTVISDataset,
        clip_frames: int = 3,
        min_size: int = 384,
        max_size: int = 640,
        *,
        augment: bool = True,
        cache: bool | None = None,
        flip: str = "vertical",
        expand: bool = True,
    ) -> None:
        if flip not in FLIPS:
            raise InputError(f"flip={flip!r}: expected one of {FLIPS} (official: vertical)", entry="options")
        if not ds.has_annotations:
            raise InputError("training needs an annotation file with GT tracks", file=ds.ann_file)
        self.ds, self.clip_frames = ds, clip_frames
        self.min_size, self.max_size, self.augment = min_size, max_size, augment
        self.flip, self.expand = flip, expand
        self.cat2label = {cid: i + 1 for i, cid in enumerate(sorted(ds.categories))}
        # (vid, frame) -> [(track index, x1, y1, x2, y2, label, obj id)]
        self.frame_anns: dict[tuple[int, int], list[tuple[int, float, float, float, float, int, int]]] = {}
        self.tracks = list(ds.tracks or [])
        for ti, tr in enumerate(self.tracks):
            if tr.iscrowd:
                continue
            v = ds.videos[tr.video_id]
            for t in range(v.length):
                box = self._bbox(tr, t, v.height, v.width)
                area = tr.areas[t] if t < len(tr.areas) else None
                if box is None or area is None or area <= 0 or box[2] < 1 or box[3] < 1:
                    continue
                x, y, bw, bh = box
                rec = (ti, x, y, x + bw - 1, y + bh - 1, self.cat2label[tr.category_id], tr.id)
                self.frame_anns.setdefault((tr.video_id, t), []).append(rec)
        self.items = sorted(self.frame_anns)
        self.annotated = {vid: {f for (v, f) in self.items if v == vid} for vid in ds.videos}
        if not self.items:
            raise InputError("no annotated frame to train on", file=ds.ann_file)
        if cache is None:
            cache = sum(v.height * v.width * 3 for v in ds.videos.values() for _ in range(v.length)) < 2**30
        self.cache = cache
        self._frames: dict[tuple[int, int], np.ndarray] = {}
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    def _bbox(self, tr: Any, t: int, h: int, w: int) -> list[float] | None:
        if tr.bboxes is not None and t < len(tr.bboxes):
            b = tr.bboxes[t]
            return None if b is None else [float(c) for c in b]
        seg = tr.segmentations[t] if t < len(tr.segmentations) else None
        if seg is None:
            return None
        m = self._mask(tr, t, h, w)
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            return None
        return [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ]

    def _mask(self, tr: Any, t: int, h: int, w: int) -> np.ndarray:
        key = (tr.id, t)
        m = self._masks.get(key)
        if m is None:
            seg = tr.segmentations[t]
            m = np.zeros((h, w), np.uint8) if seg is None else decode_rle(to_compressed_rle(seg, h, w))
            m = np.ascontiguousarray(m, dtype=np.uint8)
            if self.cache:
                self._masks[key] = m
        return m

    def _frame(self, vid: int, t: int) -> np.ndarray:
        key = (vid, t)
        f = self._frames.get(key)
        if f is None:
            f = self.ds.video_sample(vid).frames.read(t)
            if self.cache:
                self._frames[key] = f
        return f

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int, rng: np.random.Generator) -> ClipSample:
        vid, frame = self.items[index]
        v = self.ds.videos[vid]
        t = self.clip_frames
        ids = sorted(set(self.annotated[vid]))
        clip = sorted([*sample_ref_frames(frame, set(ids), t, rng), frame]) if t > 1 else [frame]
        # BGR, uint8 until a resize needs floats (_transform): the values, hence the batch, are
        # those of the official float pipeline, without a float copy of every frame
        imgs = [self._frame(vid, f)[:, :, ::-1] for f in clip]
        objs: dict[int, int] = {}
        recs = [self.frame_anns.get((vid, f), []) for f in clip]
        for frame_recs in recs:
            for r in frame_recs:
                objs.setdefault(r[6], len(objs))
        order = sorted(objs)
        pos = {oid: k for k, oid in enumerate(order)}
        n = len(order)
        boxes = np.zeros((n, t, 4), np.float32)
        masks = np.zeros((n, t, v.height, v.width), np.uint8)
        present = np.zeros((n, t), bool)
        votes: list[list[int]] = [[] for _ in range(n)]
        for j, frame_recs in enumerate(recs):
            for ti, x1, y1, x2, y2, label, oid in frame_recs:
                k = pos[oid]
                boxes[k, j] = (x1, y1, x2, y2)
                masks[k, j] = self._mask(self.tracks[ti], clip[j], v.height, v.width)
                present[k, j] = True
                votes[k].append(label)
        labels = np.array([int(np.argmax(np.bincount(vs))) for vs in votes], np.int64)
        imgs, boxes, masks = self._transform(imgs, boxes, masks, rng)
        boxes[~present] = 0
        masks[~present] = 0
        return ClipSample(normalise_clip(imgs), boxes, masks, labels, np.array(order, np.int64))

    def _transform(
        self, imgs: list[np.ndarray], boxes: np.ndarray, masks: np.ndarray, rng: np.random.Generator
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        h0, w0 = imgs[0].shape[:2]
        boxes = boxes / np.array([w0, h0, w0, h0], np.float32)
        n, t = masks.shape[:2]
        if self.augment and rng.integers(2):
            if self.flip == "vertical":  # official RandomFlip: vertical
                imgs = [im[::-1] for im in imgs]
                masks = masks[:, :, ::-1]
                boxes = np.stack([boxes[..., 0], 1 - boxes[..., 3], boxes[..., 2], 1 - boxes[..., 1]], -1)
            else:  # option flip=horizontal (not official)
                imgs = [im[:, ::-1] for im in imgs]
                masks = masks[:, :, :, ::-1]
                boxes = np.stack([1 - boxes[..., 2], boxes[..., 1], 1 - boxes[..., 0], boxes[..., 3]], -1)
        h, w = resized_size(h0, w0, self.min_size, self.max_size)
        if (h, w) != (h0, w0):
            imgs = [cv2.resize(np.ascontiguousarray(im, np.float32), (w, h)) for im in imgs]
            m = _resize_stack(masks.reshape(n * t, h0, w0).transpose(1, 2, 0), w, h)
            masks = m.transpose(2, 0, 1).reshape(n, t, h, w)
        masks = np.ascontiguousarray(masks)
        # the official "expand" (zoom out / in); the draw is made with expand=0 too, so the two
        # runs see the same clips, flips and references
        if self.augment and rng.integers(2) and self.expand:
            scale = float(rng.uniform(0.5, 1.5))
            iw, ih = int(w * scale), int(h * scale)
            imgs = [cv2.resize(np.ascontiguousarray(im, np.float32), (iw, ih)) for im in imgs]
            m = _resize_stack(masks.reshape(n * t, h, w).transpose(1, 2, 0), iw, ih).transpose(2, 0, 1)
            if scale <= 1:
                canvas = []
                for im in imgs:
                    c = np.empty((h, w, 3), np.float32)
                    c[:] = MEAN_BGR
                    c[:ih, :iw] = im
                    canvas.append(c)
                imgs = canvas
                mm = np.zeros((n * t, h, w), np.uint8)
                mm[:, :ih, :iw] = m
                masks = mm.reshape(n, t, h, w)
                boxes = boxes * np.array([iw / w, ih / h, iw / w, ih / h], np.float32)
            else:
                sh = int(rng.integers(ih - h)) if ih > h else 0
                sw = int(rng.integers(iw - w)) if iw > w else 0
                imgs = [im[sh : sh + h, sw : sw + w] for im in imgs]
                masks = np.ascontiguousarray(m[:, sh : sh + h, sw : sw + w]).reshape(n, t, h, w)
                scale_xy = np.array([iw, ih, iw, ih], np.float32)
                boxes = np.clip(
                    (boxes * scale_xy - np.array([sw, sh, sw, sh], np.float32)) / [w, h, w, h], 0, 1
                )
        return imgs, boxes.astype(np.float32), masks


_MEAN_RGB = torch.from_numpy(MEAN_BGR[::-1].copy()).view(3, 1, 1)
_STD_RGB = torch.from_numpy(STD_BGR[::-1].copy()).view(3, 1, 1)


def normalise_clip(imgs: list[np.ndarray]) -> np.ndarray:
    """``[T, 3, h, w]`` float32 RGB of the clip's ``[h, w, 3]`` BGR frames (uint8 or float32):
    ``(x - mean) / std`` in float32 as the official pipeline, in one pass over the clip."""
    # BGR -> RGB and HWC -> CHW first (on uint8 where the frames are): the per-channel arithmetic
    # then gives the same floats
    x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs)[..., ::-1].transpose(0, 3, 1, 2)))
    x = (x.float() - _MEAN_RGB) / _STD_RGB
    return x.numpy()


def collate_clips(samples: list[ClipSample], divisor: int = 32) -> ClipBatch:
    """Zero-pad a batch of clips bottom/right to a common multiple of ``divisor``."""
    hs = [s.frames.shape[2] for s in samples]
    ws = [s.frames.shape[3] for s in samples]
    hp, wp = -(-max(hs) // divisor) * divisor, -(-max(ws) // divisor) * divisor
    t = samples[0].frames.shape[0]
    if all(h == hp for h in hs) and all(w == wp for w in ws):  # nothing to pad
        frames = torch.from_numpy(np.concatenate([s.frames for s in samples]))
    else:
        frames = torch.zeros(len(samples) * t, 3, hp, wp)
        for b, s in enumerate(samples):
            frames[b * t : (b + 1) * t, :, : hs[b], : ws[b]] = torch.from_numpy(s.frames)
    targets = []
    for s in samples:
        h, w = s.frames.shape[2:]
        boxes = torch.from_numpy(s.boxes) * torch.tensor([w / wp, h / hp, w / wp, h / hp])
        if (h, w) == (hp, wp):
            masks = torch.from_numpy(np.ascontiguousarray(s.masks))
        else:
            masks = torch.zeros(s.masks.shape[0], t, hp, wp, dtype=torch.uint8)
            masks[..., :h, :w] = torch.from_numpy(s.masks)
        targets.append(ClipTargets(boxes, torch.from_numpy(s.labels), torch.from_numpy(s.ids), masks))
    return ClipBatch(frames, targets)


# ---- initialisation ------------------------------------------------------------------------------
def init_weights(model: nn.Module, focal: bool) -> None:
    """The official pre-load initialisation: Xavier-uniform conv/linear weights, zero biases, the
    focal classifier bias at ``-log((1 - 0.01) / 0.01)``."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                if focal and name.endswith("conf_layer"):
                    nn.init.constant_(m.bias, -math.log((1 - FOCAL_PRIOR) / FOCAL_PRIOR))
                else:
                    nn.init.zeros_(m.bias)


def inflate_coco_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Load frame-level (2-D) COCO weights into a CiCo network as ``init_weights_coco`` does.

    Returns what happened to every key: ``copied``, ``repeated`` (1-D), ``inflated`` (2-D -> 3-D),
    ``skipped`` (official skips: ``conf_layer``, 4-D of another shape), ``dropped`` (official-only
    modules), ``left`` (model keys the source did not provide).

    Raises:
        InputError: a source key the network does not have (after the official renames), or a
            shape the official rules cannot map (listed all at once).
    """
    own = model.state_dict()
    rep: dict[str, list[str]] = {
        k: [] for k in ("copied", "repeated", "inflated", "skipped", "dropped", "left")
    }
    problems: list[str] = []
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key}: not a tensor")
            continue
        if any(d.matches(key) for d in DROPS):
            rep["dropped"].append(key)
            continue
        k = key
        for r in RENAMES:
            k = r.apply(k)
        if k not in own:
            problems.append(f"{key}: no such parameter or buffer in the network")
            continue
        dst = own[k]
        if dst.shape == value.shape:
            new[k] = value.to(dst.dtype)
            rep["copied"].append(k)
        elif "conf_layer" in k:
            rep["skipped"].append(f"{k} (classifier of another class count: not loaded, official)")
        elif value.dim() == 1 and dst.dim() == 1 and dst.shape[0] % value.shape[0] == 0:
            new[k] = value.repeat(dst.shape[0] // value.shape[0]).to(dst.dtype)
            rep["repeated"].append(k)
        elif value.dim() == 4 and dst.dim() == 5:
            co, ci, t, kh, kw = dst.shape
            cop, cip, khp, kwp = value.shape
            if (khp, kwp) == (kh, kw) and co % cop == 0 and cip == ci:
                w = value.unsqueeze(2).repeat(co // cop, 1, t, 1, 1).to(dst.dtype)
                if k.startswith("ProtoNet") and t == 3:
                    w = w * torch.tensor([0.125, 0.75, 0.125], dtype=dst.dtype).view(1, 1, -1, 1, 1)
                else:
                    w = w / t
                new[k] = w
                rep["inflated"].append(k)
            else:
                problems.append(f"{key}: {list(value.shape)} cannot be inflated to {list(dst.shape)}")
        elif value.dim() == dst.dim() == 4:
            rep["skipped"].append(
                f"{k} ({list(value.shape)} vs {list(dst.shape)}: left at its init, official)"
            )
        else:
            problems.append(f"{key}: shape {list(value.shape)} does not map to {list(dst.shape)}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        raise InputError(f"--init weights do not map onto the network: {shown}", entry="init")
    rep["left"] = sorted(k for k in own if k not in new)
    model.load_state_dict({**own, **new}, strict=True)
    return rep


# ---- the trainer ---------------------------------------------------------------------------------
class CiCoTrainer:
    """:class:`benchmark.train.MethodTrainer` for every ``cico_*`` variant."""

    OPTIONS = (
        "augment", "cache", "freeze_bn", "min_size", "max_size", "width", "tower_layers", "tower_norm",
        "head_min_level", "proto_min_level", "proto_stride", "anchor_scales", "grad_clip", "warmup", "pos_iou",
        "flip", "expand", "mask_dim", "channels_last", "decay", "focal", "track_alpha", "class_alpha",
    )  # fmt: skip
    TINY_ONLY = (
        "width", "tower_layers", "tower_norm", "head_min_level", "proto_min_level", "proto_stride",
        "anchor_scales", "grad_clip", "warmup", "pos_iou", "mask_dim", "decay", "focal", "track_alpha",
        "class_alpha",
    )  # fmt: skip

    def __init__(self, cfg: VariantCfg, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise InputError(
                f"unknown CiCo training option(s) {unknown}; known: {list(self.OPTIONS)}", entry="options"
            )
        self.cfg = cfg
        self.tiny = cfg.backbone == "tiny"
        size = cfg.input_size
        self.min_size = opt_int(
            options.get("min_size", size.min_size if size else 384), "min_size", minimum=1
        )
        self.max_size = opt_int(
            options.get("max_size", size.max_size if size else 640), "max_size", minimum=1
        )
        self.augment = opt_bool(options.get("augment", True), "augment")
        # flip (vertical: official; horizontal) and expand (the official zoom; 0: none) choose the
        # augmentations augment=1 applies. The small variant's defaults (not official) are a
        # horizontal flip and no zoom: with the official ones it scored ~4 AP less in its 10-minute
        # schedule, where it under-fits (mean of three runs each; TINY_SCHEDULE in methods/cico/small.py).
        self.flip = str(options.get("flip", "horizontal" if self.tiny else "vertical")).strip().lower()
        if self.flip not in FLIPS:
            raise InputError(
                f"option flip={options['flip']!r}: expected one of {FLIPS} (official: vertical)",
                entry="options",
            )
        self.expand = opt_bool(options.get("expand", not self.tiny), "expand")
        self.cache = None if "cache" not in options else opt_bool(options["cache"], "cache")
        self.freeze_bn = None if "freeze_bn" not in options else opt_bool(options["freeze_bn"], "freeze_bn")
        for k in self.TINY_ONLY:
            if k in options and cfg.backbone != "tiny":
                raise InputError(f"option {k} is for the small (tiny) CiCo variants only", entry="options")
        self.grad_clip = (
            opt_float(options["grad_clip"], "grad_clip", minimum=0.0) if "grad_clip" in options else None
        )
        self.warmup = opt_int(options["warmup"], "warmup", minimum=0) if "warmup" in options else None
        # decay (small variant only): the schedule's lr decay, step or cosine (benchmark.train.Schedule)
        self.decay = str(options["decay"]).strip().lower() if "decay" in options else None
        if self.decay not in (None, "step", "cosine"):
            raise InputError(f"option decay={options['decay']!r}: expected step or cosine", entry="options")
        # channels_last: the 2-D convolutions' weights and the input frames in NHWC memory order
        # (the same arithmetic up to float summation order; oneDNN's preferred layout on CPU, where a
        # small-variant step at 2 threads takes ~0.84x the time). On by default for the small variant.
        self.channels_last = opt_bool(options.get("channels_last", self.tiny), "channels_last")
        self.net_cfg: CiCoConfig
        if self.tiny:
            from methods.cico.small import net_overrides, tiny_config_of

            self.net_cfg = tiny_config_of(cfg, **net_overrides(dict(options)))
        else:
            self.net_cfg = config_of(cfg)
        # pos_iou (small variant only, not official): an anchor is positive at IoU >= pos_iou with a
        # GT box, negative under pos_iou - 0.1 (official 0.5 / 0.4)
        pos = opt_float(options.get("pos_iou", 0.5), "pos_iou", minimum=0.2, maximum=0.9)
        # track_alpha, class_alpha (small variant only, not official): the weights of the track
        # embedding and classification losses (official 5 and 5; the small variant's classification
        # weight is TINY_CLASS_ALPHA, methods/cico/small.py)
        class_alpha = LossConfig.class_alpha
        if self.tiny:
            from methods.cico.small import TINY_CLASS_ALPHA

            class_alpha = TINY_CLASS_ALPHA
        self.loss_cfg = LossConfig(
            clip_frames=cfg.clip_length, mask_type=self.net_cfg.mask_type, focal=self.net_cfg.focal,
            pos_threshold=pos, neg_threshold=round(pos - 0.1, 6),
            class_alpha=opt_float(options.get("class_alpha", class_alpha), "class_alpha", minimum=0.0),
            track_alpha=opt_float(options.get("track_alpha", LossConfig.track_alpha), "track_alpha", minimum=0.0),
        )  # fmt: skip

    # -- model
    def build_model(self) -> nn.Module:
        if self.tiny:
            from methods.cico.small import TinyCiCoNet

            model: CiCoNet = TinyCiCoNet(self.net_cfg)  # type: ignore[arg-type]
        else:
            model = CiCoNet(self.net_cfg)
        init_weights(model, self.net_cfg.focal)
        if self.channels_last:
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
        return model

    def init_from(self, model: nn.Module, path: Path) -> dict[str, Any]:
        state, digest = read_checkpoint(path)
        rep = inflate_coco_weights(model, state)
        return {"file": str(path), "sha256": digest, **{k: len(v) for k, v in rep.items()}, "detail": rep}

    def set_train_mode(self, model: nn.Module, clips_per_process: int) -> None:
        """``model.train()``; backbone BatchNorm frozen (eval, no grad) under 4 clips per process
        (official ``cfg.freeze_bn``), or as the ``freeze_bn`` option says."""
        model.train()
        freeze = self.freeze_bn if self.freeze_bn is not None else clips_per_process < 4
        if freeze:
            for name, m in model.named_modules():
                if name.startswith("backbone") and isinstance(m, nn.BatchNorm2d):
                    m.eval()
                    for p in m.parameters():
                        p.requires_grad_(False)

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The official checkpoint layout: the plain ``CoreNet`` state dict."""
        return {
            k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
            for k, v in model.state_dict().items()
        }

    # -- data
    def dataset(self, ds: YTVISDataset) -> CiCoClipDataset:
        if self.net_cfg.num_classes and len(ds.categories) != self.net_cfg.num_classes:
            raise InputError(
                f"variant {self.cfg.name} has {self.net_cfg.num_classes} classes, the dataset "
                f"{len(ds.categories)} categories",
                file=ds.ann_file,
            )
        return CiCoClipDataset(
            ds, self.cfg.clip_length, self.min_size, self.max_size, augment=self.augment, cache=self.cache,
            flip=self.flip, expand=self.expand,
        )  # fmt: skip

    def collate(self, samples: list[ClipSample]) -> ClipBatch:
        size = self.cfg.input_size
        return collate_clips(samples, size.pad_divisor if size is not None else 32)

    def losses(self, model: nn.Module, batch: ClipBatch, device: torch.device) -> dict[str, torch.Tensor]:
        frames = batch.frames.to(device)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        out = model(frames)
        targets = [t.to(device) for t in batch.targets]
        losses = cico_losses(out, targets, self.loss_cfg)
        # keep every output in the graph (DDP needs all parameters used) when a term is absent
        names = ("B", "BIoU", "center", "M_bce", "C_focal" if self.loss_cfg.focal else "C", "T")
        if any(n not in losses for n in names):
            zero = (
                sum((v.sum() for v in out.values() if v.requires_grad), torch.zeros((), device=device)) * 0.0
            )
            losses = {n: losses.get(n, zero) for n in names}
        return losses

    # -- schedule
    def default_batch_size(self) -> int:
        return 4 if self.tiny else 6

    def schedule(self, num_samples: int, global_batch: int) -> Schedule:
        epoch = max(num_samples // global_batch, 1)
        if self.tiny:
            # the small ToyVIS model (not official): see TINY_SCHEDULE in methods/cico/small.py
            from methods.cico.small import TINY_SCHEDULE

            s = TINY_SCHEDULE
            if self.grad_clip is not None:
                s = replace(s, grad_clip=self.grad_clip if self.grad_clip > 0 else None)
            if self.warmup is not None:
                s = replace(s, warmup_steps=self.warmup)
            return s if self.decay is None else replace(s, decay=self.decay)
        return Schedule(
            lr=1e-3, warmup_steps=500, warmup_init_lr=1e-4, max_steps=12 * epoch, decay_steps=(9 * epoch,)
        )

    def config(self) -> dict[str, Any]:
        return {
            "net": {k: v for k, v in self.net_cfg.__dict__.items()},
            "loss": self.loss_cfg.__dict__,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "augment": self.augment,
            "flip": self.flip,
            "expand": self.expand,
            "freeze_bn": self.freeze_bn,
        }


def build_trainer(cfg: VariantCfg, **options: Any) -> CiCoTrainer:
    return CiCoTrainer(cfg, **options)
