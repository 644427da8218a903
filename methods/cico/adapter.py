"""CiCo behind :class:`~benchmark.adapter.MethodAdapter`: official-equivalent clip inference.

Stages per clip (3 frames, overlap 1, the short last clip tiled; see
:func:`benchmark.adapter.clip_schedule`):

* preprocess: BGR float32, ``cv2.resize`` (short side 384, long side at most 640), normalisation
  with the ImageNet statistics applied to the **BGR** channels then reversed to RGB (the official
  quirk), zero padding to a multiple of 32 and at least 384x640.
* forward: :class:`~methods.cico.model.CiCoNet`; class scores activated (sigmoid, or softmax with
  background for OVIS). The per-frame backbone + FPN of a frame shared with the previous clip
  (the overlap frame, the tiled last clip) is reused instead of recomputed.
* track: :func:`~methods.cico.detect.detect` then :class:`~methods.cico.track.TrackTF`.
* postprocess: the emitted frames' masks cropped to the unpadded part, bilinearly resized to the
  video size, ``> 0.5``, RLE-encoded (in chunks of objects to bound memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from benchmark.adapter import Clip, InstanceOutput, MethodAdapter, masks_to_rles
from benchmark.data.frames import VideoSample
from benchmark.errors import InputError
from benchmark.options import opt_bool
from benchmark.variant_cfg import VariantCfg
from methods.cico.convert import DROPS, RENAMES, is_legacy_proto_conv
from methods.cico.detect import DetectConfig, Detections, detect
from methods.cico.model import CiCoConfig, CiCoNet
from methods.cico.track import TrackConfig, TrackOutput, TrackTF

__all__ = ["MEAN_BGR", "STD_BGR", "CiCoAdapter", "ClipInput", "build", "config_of", "preprocess_frame"]

MEAN_BGR = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD_BGR = np.array([58.395, 57.12, 57.375], dtype=np.float32)
_POST_CHUNK = 8


def resized_size(h: int, w: int, min_size: int = 384, max_size: int = 640) -> tuple[int, int]:
    """``(H, W)`` after the official ``Resize(384, 640)``."""
    if h / w < min_size / max_size:
        return int(h * max_size / w), max_size
    return min_size, int(w * min_size / h)


def preprocess_frame(rgb: np.ndarray, min_size: int = 384, max_size: int = 640) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[3, h, w]`` float32 normalised (unpadded)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"frame of shape {list(rgb.shape)}: expected [H, W, 3]", entry="frames")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32)
    h, w = resized_size(rgb.shape[0], rgb.shape[1], min_size, max_size)
    img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    img = (img - MEAN_BGR) / STD_BGR
    return np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))


@dataclass
class ClipInput:
    frames: torch.Tensor  # [T, 3, Hp, Wp]
    keys: tuple[int, ...]  # frame ids (padded), for the per-frame feature cache
    img_hw: tuple[int, int]  # resized, unpadded
    clip: Clip


@dataclass
class ClipRaw:
    raw: dict[str, torch.Tensor]
    inp: ClipInput


def config_of(cfg: VariantCfg, legacy_3d_proto_conv: bool = False) -> CiCoConfig:
    """The network configuration of a registered CiCo variant (``cico_{head}_{backbone}.{dataset}``)."""
    head = cfg.name.split(".")[0].split("_")[1]
    ovis = cfg.train_dataset == "ovis"
    return CiCoConfig(
        backbone=cfg.backbone, mask_type=head, num_classes=cfg.num_classes, focal=not ovis,
        clip_frames=cfg.clip_length, legacy_3d_proto_conv=legacy_3d_proto_conv,
    )  # fmt: skip


class CiCoAdapter(MethodAdapter):
    renames = RENAMES
    drops = DROPS
    category_vote = "majority"

    def __init__(
        self, cfg: VariantCfg, model: CiCoNet, *, device: str = "cpu", keep_debug: bool = False
    ) -> None:
        super().__init__(cfg, model, device=device)
        self.net: CiCoNet = model
        c = model.cfg
        self.detect_cfg = DetectConfig(
            focal=c.focal, mask_type=c.mask_type, top_k=min(100 * c.clip_frames, 300)
        )
        self.tracker = TrackTF(
            TrackConfig(mask_type=c.mask_type, clip_frames=c.clip_frames, clip_overlap=cfg.clip_overlap)
        )
        self.keep_debug = keep_debug
        self.debug: list[dict[str, Any]] = []
        self._feat_cache: dict[int, list[torch.Tensor]] = {}
        self.cache_frames = True

    # ---- checkpoints ----------------------------------------------------------------------------
    def checkpoint_num_classes(self, state: Mapping[str, torch.Tensor]) -> int | None:
        wt = state.get("prediction_layers.conf_layer.weight")
        if wt is None:
            return None
        ch = int(wt.shape[0]) // 3
        return ch if self.net.cfg.focal else ch - 1

    def class_mismatch_hint(self, found: int, expected: int) -> str:
        # a small variant's checkpoint from the other classifier (softmax has one channel more per
        # anchor than the sigmoid focal head): the count is off by one, and the option says why
        if self.cfg.backbone == "tiny":
            focal = self.net.cfg.focal
            if found + (-1 if focal else 1) == expected:
                other = 0 if focal else 1
                kind = "softmax with background" if focal else "sigmoid focal"
                return (
                    f"hint: its classifier fits {expected} classes under the {kind} head: it was trained "
                    f"with --opt focal={other}; pass --adapter-arg focal={other}"
                )
        return super().class_mismatch_hint(found, expected)

    def convert_state_dict(self, official: Mapping[str, torch.Tensor]) -> Any:
        legacy = is_legacy_proto_conv(official)
        if legacy != self.net.cfg.legacy_3d_proto_conv:
            # the pre-2022-03-08 layout has a 3-D proto_conv: rebuild that part of the network
            from methods.cico.protonet import ClipProtoNet

            c = self.net.cfg
            self.net.ProtoNet = ClipProtoNet(
                c.features, c.proto_channels, c.mask_dim, c.clip_frames, 3, legacy
            )
            self.net.cfg = CiCoConfig(**{**c.__dict__, "legacy_3d_proto_conv": legacy})
            self.net.to(self.device).eval()
        return super().convert_state_dict(official)

    def settings(self) -> dict[str, Any]:
        # Detect's and Track_TF's effective configuration (the small variant's builder sets its own
        # thresholds and match coefficients), as JSON values
        return json.loads(json.dumps({"detect": asdict(self.detect_cfg), "track": asdict(self.tracker.cfg)}))

    # ---- stages ---------------------------------------------------------------------------------
    def reset(self, video: VideoSample) -> None:
        self.tracker.reset()
        self._feat_cache.clear()
        self.debug = []

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> ClipInput:
        size = self.cfg.input_size
        lo, hi = (size.min_size, size.max_size) if size is not None else (384, 640)
        imgs = [preprocess_frame(f, lo, hi) for f in frames]
        shapes = {im.shape for im in imgs}
        if len(shapes) != 1:
            raise InputError(
                f"frames of one video differ in size: {sorted(shapes)}", entry=video.name or "video"
            )
        _, h, w = imgs[0].shape
        d = size.pad_divisor if size is not None else 32  # 32 (official); the small variant 64
        ph, pw = -(-max(lo, h) // d) * d, -(-max(hi, w) // d) * d
        x = torch.zeros(len(imgs), 3, ph, pw)
        for i, im in enumerate(imgs):
            x[i, :, :h, :w] = torch.from_numpy(im)
        return ClipInput(self.to_input(x), tuple(clip.padded_ids), (h, w), clip)

    def forward(self, inputs: ClipInput) -> ClipRaw:
        net = self.net
        raw = net.heads(self._frame_features(inputs))
        raw["conf"] = raw["conf"].sigmoid() if net.cfg.focal else raw["conf"].softmax(dim=-1)
        return ClipRaw(raw, inputs)

    def _frame_features(self, inputs: ClipInput) -> list[torch.Tensor]:
        """Per-frame features of the clip's frames (``net.levels``: FPN levels P3..P7, and the
        small variant's fine maps); a frame seen by the previous clip is not recomputed."""
        net = self.net
        if not self.cache_frames:
            return net.levels(inputs.frames)
        todo = sorted({k for k in inputs.keys if k not in self._feat_cache})
        if todo:
            pos = [inputs.keys.index(k) for k in todo]
            outs = net.levels(inputs.frames[pos])
            for i, k in enumerate(todo):
                self._feat_cache[k] = [o[i : i + 1] for o in outs]
        n_levels = len(self._feat_cache[inputs.keys[0]])
        levels = [torch.cat([self._feat_cache[k][lv] for k in inputs.keys]) for lv in range(n_levels)]
        nxt = inputs.clip.frame_ids[0] + self.clip_length - self.clip_overlap
        for k in [k for k in self._feat_cache if k < nxt]:
            del self._feat_cache[k]
        return levels

    def track(self, raw: ClipRaw, clip: Clip, video: VideoSample) -> tuple[TrackOutput, ClipInput]:
        dets: Detections = detect(raw.raw, self.detect_cfg, keep_debug=self.keep_debug)
        img_ids = tuple(clip.padded_ids)
        out = self.tracker(dets, raw.raw["proto"], img_ids, clip.is_first, keep_debug=self.keep_debug)
        if self.keep_debug:
            self.debug.append({"clip": clip.index, "dets": dets, "track": out})
        return out, raw.inp

    def postprocess(
        self, tracked: tuple[TrackOutput, ClipInput], clip: Clip, video: VideoSample
    ) -> list[InstanceOutput]:
        out, inp = tracked
        if out.ids.numel() == 0:
            return []
        masks = out.masks  # one per mask source; objects of one source share their RLEs
        hm, wm = masks.shape[-2:]
        ph, pw = inp.frames.shape[-2:]
        ch, cw = int(inp.img_hw[0] / ph * hm), int(inp.img_hw[1] / pw * wm)
        pos = [clip.frame_ids.index(f) for f in clip.emit]
        sel = masks[:, pos, :ch, :cw]
        per_src: list[list[Any]] = [[] for _ in range(sel.shape[0])]
        for s in range(0, sel.shape[0], _POST_CHUNK):
            up = F.interpolate(
                sel[s : s + _POST_CHUNK].float(),
                (video.height, video.width),
                mode="bilinear",
                align_corners=False,
            )
            fg = up > 0.5
            for i in range(fg.shape[0]):
                per_src[s + i] = masks_to_rles(fg[i])
        per_obj = [per_src[j] for j in out.mask_idx.tolist()]
        cats = self.category_ids
        res = []
        for i, (oid, score, cls) in enumerate(
            zip(out.ids.tolist(), out.score.tolist(), out.cls.tolist(), strict=True)
        ):
            cat = cats[cls - 1] if cats and cls - 1 < len(cats) else int(cls)
            res.append(InstanceOutput(int(oid), int(cat), float(score), tuple(clip.emit), tuple(per_obj[i])))
        return res


def build(
    cfg: VariantCfg,
    *,
    device: str = "cpu",
    keep_debug: bool | str = False,
    legacy_3d_proto_conv: bool | str = False,
    fast3d: bool | str = False,
    cache_frames: bool | str = True,
    **kwargs: Any,
) -> CiCoAdapter:
    """Builder of every ``cico_*`` variant (random weights; load the official checkpoint after).

    Options: ``fast3d`` (3x3x3 convolutions as channel-stacked 2-D ones; off by default: PyTorch's
    oneDNN ``conv3d`` is faster on CPU here), ``cache_frames`` (reuse the per-frame backbone/FPN of frames shared by clips),
    ``keep_debug`` (keep Detect/Track records in ``adapter.debug``), ``legacy_3d_proto_conv``.
    """
    if kwargs:
        raise InputError(f"unknown CiCo option(s) {sorted(kwargs)}", entry="options")
    model = CiCoNet(config_of(cfg, opt_bool(legacy_3d_proto_conv, "legacy_3d_proto_conv")))
    model.set_fast3d(opt_bool(fast3d, "fast3d"))
    ad = CiCoAdapter(cfg, model, device=device, keep_debug=opt_bool(keep_debug, "keep_debug"))
    ad.cache_frames = opt_bool(cache_frames, "cache_frames")
    return ad
