"""The CiCo network (official ``CoreNet`` without Detect/Track): backbone -> FPN -> clip prediction
head and clip ProtoNet. Attribute names equal the official ones, so ``state_dict()`` keys equal
the official checkpoint's (``backbone.*``, ``fpn.*``, ``ProtoNet.*``, ``prediction_layers.*``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from methods.cico.backbone import build_backbone
from methods.cico.fpn import FPN
from methods.cico.head import ClipPredictionModule, HeadOutput
from methods.cico.masks import CONDINST_PARAMS
from methods.cico.protonet import ClipProtoNet

__all__ = ["CiCoConfig", "CiCoNet"]


@dataclass(frozen=True)
class CiCoConfig:
    """What distinguishes the 18 variants (plus the clip length)."""

    backbone: str = "r50"  # r50 | r101 | swint
    mask_type: str = "condinst"  # condinst | yolact
    num_classes: int = 40  # dataset classes
    focal: bool = True  # sigmoid (YTVIS) or softmax with background (OVIS)
    clip_frames: int = 3
    legacy_3d_proto_conv: bool = False

    @property
    def features(self) -> int:
        return 192 if self.backbone == "swint" and self.mask_type == "condinst" else 256

    @property
    def proto_channels(self) -> int:
        return 192 if self.backbone == "swint" else 256

    @property
    def mask_dim(self) -> int:
        return 8 if self.mask_type == "condinst" else 32

    @property
    def coeff_dim(self) -> int:
        return CONDINST_PARAMS if self.mask_type == "condinst" else self.mask_dim

    @property
    def conf_channels(self) -> int:
        return self.num_classes if self.focal else self.num_classes + 1


class CiCoNet(nn.Module):
    """``forward([T, 3, H, W])`` (one clip, frames contiguous) -> head outputs and ``proto``."""

    def __init__(self, cfg: CiCoConfig) -> None:
        super().__init__()
        if cfg.mask_type not in ("condinst", "yolact"):
            raise ValueError(f"unknown CiCo mask type {cfg.mask_type!r} (condinst, yolact)")
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        f = cfg.features
        self.fpn = FPN(tuple(self.backbone.channels[1:]), f)
        self.ProtoNet = ClipProtoNet(
            f, cfg.proto_channels, cfg.mask_dim, cfg.clip_frames, 3, cfg.legacy_3d_proto_conv
        )
        self.prediction_layers = ClipPredictionModule(f, cfg.conf_channels, cfg.coeff_dim, cfg.clip_frames)
        self.set_fast3d(False)

    def set_fast3d(self, on: bool) -> None:
        """Compute the 3x3x3 convolutions as channel-stacked 2-D convolutions or natively (default)."""
        self.prediction_layers.fast3d = on
        self.ProtoNet.fast3d = on

    def heads(self, fpn_outs: list[torch.Tensor]) -> HeadOutput:
        """Prediction head and ProtoNet on the FPN levels P3..P7 of a clip (training and the adapter)."""
        out = self.prediction_layers(fpn_outs)
        out["proto"] = self.ProtoNet(fpn_outs)
        return out

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The per-frame feature maps ``heads`` takes: the FPN levels P3..P7 of frames ``x``."""
        return list(self.fpn(self.backbone(x)[1:]))

    def forward(self, x: torch.Tensor) -> HeadOutput:
        return self.heads(self.levels(x))
