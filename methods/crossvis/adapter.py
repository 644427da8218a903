"""CrossVIS behind :class:`~benchmark.adapter.MethodAdapter`: official-equivalent online inference.

Stages per frame (``clip_length=1``):

* preprocess (:func:`preprocess_frame`): resize the uint8 frame with **PIL bilinear** (short side
  360, long side at most 640, ``int(x * scale + 0.5)``; PIL antialiases when downscaling, unlike
  ``F.interpolate``), BGR, subtract the BGR pixel mean (std 1: Caffe/MSRA inputs in 0..255),
  zero-pad bottom/right to a multiple of 32 *after* normalising. All as detectron2 does it for
  the official test script, because the released numbers were produced that way.
* forward: :meth:`CrossVISNet.detect <methods.crossvis.model.CrossVISNet.detect>` (network,
  proposals, NMS, top-100, box rescaling, batched dynamic mask head).
* track: :class:`~methods.crossvis.tracker.OnlineTracker` (``tools/test_vis.py``).
* postprocess: full-resolution masks of the detections kept this frame only, ``> 0.5``, RLE.
  Outputs are emitted in track-id order, so tracks appear in ``results.json`` in the official
  order (track-id order) and the category is the track's first (``category_vote = "first"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmark.adapter import Clip, InstanceOutput, MethodAdapter, masks_to_rles
from benchmark.data.frames import VideoSample
from benchmark.errors import InputError
from benchmark.options import opt_bool
from benchmark.variant_cfg import VariantCfg
from methods.crossvis.convert import DROPS, RENAMES
from methods.crossvis.model import CrossVISNet, FrameDetections, full_res_masks
from methods.crossvis.tracker import OnlineTracker, StepRecord

__all__ = ["PIXEL_MEAN_BGR", "CrossVISAdapter", "FrameInput", "build", "preprocess_frame", "resized_size"]

PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)
SIZE_DIVISIBILITY = 32
_POST_CHUNK = 8


def resized_size(h: int, w: int, short: int = 360, max_size: int = 640) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge`` output ``(h, w)`` (rounded with ``int(x + 0.5)``)."""
    scale = short / min(h, w)
    nh, nw = (short, scale * w) if h < w else (scale * h, short)
    if max(nh, nw) > max_size:
        s = max_size / max(nh, nw)
        nh, nw = nh * s, nw * s
    return int(nh + 0.5), int(nw + 0.5)


def preprocess_frame(
    rgb: np.ndarray, short: int = 360, max_size: int = 640
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``[H, W, 3]`` uint8 RGB -> (normalised BGR ``[1, 3, Hp, Wp]`` zero-padded to /32, (h, w))."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(
            f"frame of shape {list(rgb.shape)} {rgb.dtype}: expected [H, W, 3] uint8", entry="frames"
        )
    h, w = resized_size(rgb.shape[0], rgb.shape[1], short, max_size)
    # PIL bilinear on uint8 (channel-wise, so resizing RGB then flipping equals the official BGR)
    img = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float()
    x = x - torch.tensor(PIXEL_MEAN_BGR).view(3, 1, 1)
    ph = -(-h // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    pw = -(-w // SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY
    out = torch.zeros(1, 3, ph, pw)
    out[0, :, :h, :w] = x
    return out, (h, w)


@dataclass
class FrameInput:
    image: torch.Tensor  # [1, 3, Hp, Wp]
    resized_hw: tuple[int, int]
    orig_hw: tuple[int, int]
    frame: int


@dataclass
class FrameTracked:
    dets: FrameDetections
    record: StepRecord
    frame: int


class CrossVISAdapter(MethodAdapter):
    renames = RENAMES
    drops = DROPS
    category_vote = "first"

    def __init__(
        self, cfg: VariantCfg, model: CrossVISNet, *, device: str = "cpu", keep_debug: bool = False
    ) -> None:
        super().__init__(cfg, model, device=device)
        self.net: CrossVISNet = model
        self.tracker = OnlineTracker()
        self.keep_debug = keep_debug
        self.debug: list[FrameTracked] = []
        size = cfg.input_size
        self.min_size, self.max_size = (size.min_size, size.max_size) if size is not None else (360, 640)

    def checkpoint_num_classes(self, state: Mapping[str, torch.Tensor]) -> int | None:
        wt = state.get("proposal_generator.fcos_head.cls_logits.weight")
        return int(wt.shape[0]) if wt is not None else None

    def reset(self, video: VideoSample) -> None:
        self.tracker.reset()
        self.debug = []

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> FrameInput:
        rgb = frames[0]
        x, hw = preprocess_frame(rgb, self.min_size, self.max_size)
        return FrameInput(self.to_input(x), hw, (int(rgb.shape[0]), int(rgb.shape[1])), clip.frame_ids[0])

    def forward(self, inputs: FrameInput) -> tuple[FrameDetections, int]:
        return self.net.detect(inputs.image, inputs.resized_hw, inputs.orig_hw), inputs.frame

    def track(self, raw: tuple[FrameDetections, int], clip: Clip, video: VideoSample) -> FrameTracked:
        dets, frame = raw
        rec = self.tracker.step(frame, dets.boxes, dets.reid, dets.scores, dets.classes)
        out = FrameTracked(dets, rec, frame)
        if self.keep_debug:
            self.debug.append(out)
        return out

    def postprocess(self, tracked: FrameTracked, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        dets, kept = tracked.dets, sorted(tracked.record.kept.items())  # track-id order
        if not kept:
            return []
        if dets.orig_hw != (video.height, video.width):
            raise InputError(
                f"frame {tracked.frame} is {dets.orig_hw[0]}x{dets.orig_hw[1]}, the video "
                f"{video.height}x{video.width}", entry=video.name or "video",
            )  # fmt: skip
        rles: list[Any] = []
        for s in range(0, len(kept), _POST_CHUNK):
            idx = [d for _, d in kept[s : s + _POST_CHUNK]]
            rles += masks_to_rles(full_res_masks(dets, idx))
        cats = self.category_ids
        res = []
        for (tid, d), rle in zip(kept, rles, strict=True):
            cls = int(dets.classes[d])
            cat = cats[cls] if cats and cls < len(cats) else cls + 1
            res.append(InstanceOutput(tid, int(cat), float(dets.scores[d]), (tracked.frame,), (rle,)))
        return res


def build(
    cfg: VariantCfg, *, device: str = "cpu", batched_mask_head: bool | str = True, keep_debug: bool | str = False,
    **kwargs: Any,
) -> CrossVISAdapter:  # fmt: skip
    """Builder of ``crossvis_r50.*`` / ``crossvis_r101.*`` (random weights; load the checkpoint after).

    Options: ``batched_mask_head`` (default on; off = the official grouped conv, for comparisons),
    ``keep_debug`` (keep each frame's detections and tracking record in ``adapter.debug``).
    """
    if kwargs:
        raise InputError(f"unknown CrossVIS option(s) {sorted(kwargs)}", entry="options")
    depth = int(cfg.backbone[1:]) if cfg.backbone and cfg.backbone.startswith("r") else 50
    model = CrossVISNet(
        depth, cfg.num_classes or 40, batched_mask_head=opt_bool(batched_mask_head, "batched_mask_head")
    )
    return CrossVISAdapter(cfg, model, device=device, keep_debug=opt_bool(keep_debug, "keep_debug"))
