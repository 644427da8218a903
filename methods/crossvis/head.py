"""FCOS head with CrossVIS's re-id tower, and the official test-time proposal selection.

The head is shared over P3-P7. Per level it gives class logits (cls tower), ltrb regression,
centerness and the CondInst controller parameters (all three from the **bbox** tower), and a
256-d re-id embedding (reid tower -> 1x1 conv -> BatchNorm with running statistics).
Names follow the official state dict (``proposal_generator.fcos_head.cls_tower.0.weight``...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

__all__ = ["FCOSHead", "HeadOutputs", "ProposalConfig", "Proposals", "compute_locations", "select_proposals"]

STRIDES = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ProposalConfig:
    """Official test-time constants (AdelaiDet defaults + the CrossVIS configs)."""

    score_thresh: float = 0.05  # INFERENCE_TH_TEST, on cls * ctr (THRESH_WITH_CTR)
    pre_nms_topk: int = 1000  # PRE_NMS_TOPK_TEST, per level
    nms_thresh: float = 0.6  # NMS_TH, per class, IoU > thresh suppresses
    post_nms_topk: int = 100  # POST_NMS_TOPK_TEST, by kthvalue (ties kept)


@dataclass
class HeadOutputs:
    """Per level (P3..P7), batch 1: ``logits [40,h,w]``, ``reg [4,h,w]`` (stride units, after
    Scale and ReLU), ``ctrness [1,h,w]``, ``top_feats [169,h,w]``, ``reid [256,h,w]``."""

    logits: list[torch.Tensor]
    reg: list[torch.Tensor]
    ctrness: list[torch.Tensor]
    top_feats: list[torch.Tensor]
    reid: list[torch.Tensor]


@dataclass
class Proposals:
    """Detections of one image after NMS and the top-100 cut, in descending score order.

    Boxes are at the resized (unpadded) input resolution; ``top_feat`` are the mask-head params.
    """

    boxes: torch.Tensor  # [N, 4]
    scores: torch.Tensor  # [N] sqrt(cls * ctr)
    classes: torch.Tensor  # [N] int64, 0-based
    locations: torch.Tensor  # [N, 2] (x, y)
    fpn_levels: torch.Tensor  # [N] int64
    top_feat: torch.Tensor  # [N, 169]
    reid: torch.Tensor  # [N, 256]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def index(self, keep: torch.Tensor) -> Proposals:
        return Proposals(*(t[keep] for t in (self.boxes, self.scores, self.classes, self.locations,
                                             self.fpn_levels, self.top_feat, self.reid)))  # fmt: skip


class Scale(nn.Module):
    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tower(channels: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.GroupNorm(32, channels), nn.ReLU()]
    return nn.Sequential(*layers)


class FCOSHead(nn.Module):
    """cls / bbox / reid towers (4 x conv3x3-GN-ReLU each) and the prediction convs."""

    def __init__(
        self, num_classes: int = 40, channels: int = 256, num_convs: int = 4, num_levels: int = 5
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        # registration order = the official state-dict order
        self.cls_tower = _tower(channels, num_convs)
        self.bbox_tower = _tower(channels, num_convs)
        self.reid_tower = _tower(channels, num_convs)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, 1, 1)
        self.reid_pred = nn.Conv2d(channels, 256, 1)
        self.reid_pred_bn = nn.BatchNorm2d(256)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, 1, 1)
        self.ctrness = nn.Conv2d(channels, 1, 3, 1, 1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                assert m.bias is not None
                nn.init.constant_(m.bias, 0.0)
        assert self.cls_logits.bias is not None
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, feats: list[torch.Tensor], controller: nn.Module) -> HeadOutputs:
        out = HeadOutputs([], [], [], [], [])
        for lvl, x in enumerate(feats):
            cls_t = self.cls_tower(x)
            box_t = self.bbox_tower(x)
            reid_t = self.reid_tower(x)
            out.logits.append(self.cls_logits(cls_t))
            out.ctrness.append(self.ctrness(box_t))
            out.reid.append(self.reid_pred_bn(self.reid_pred(reid_t)))
            out.reg.append(F.relu(self.scales[lvl](self.bbox_pred(box_t))))  # ReLU, not exp
            out.top_feats.append(controller(box_t))
        return out


class ProposalGenerator(nn.Module):
    """Holds ``fcos_head`` so that names read ``proposal_generator.fcos_head.*``."""

    def __init__(self, num_classes: int = 40) -> None:
        super().__init__()
        self.fcos_head = FCOSHead(num_classes)


def compute_locations(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """``[h*w, 2]`` (x, y) = (stride*j + stride//2, stride*i + stride//2), row-major."""
    xs = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=device)
    ys = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1) + stride // 2


def _level_candidates(head: HeadOutputs, lvl: int, cfg: ProposalConfig) -> tuple[torch.Tensor, ...]:
    logits, reg, ctr = head.logits[lvl][0], head.reg[lvl][0], head.ctrness[lvl][0]
    c, h, w = logits.shape
    stride = STRIDES[lvl]
    locs = compute_locations(h, w, stride, logits.device)
    prob = logits.permute(1, 2, 0).reshape(-1, c).sigmoid()
    prob = prob * ctr.permute(1, 2, 0).reshape(-1).sigmoid()[:, None]  # threshold on cls * ctr
    cand = prob > cfg.score_thresh
    p = prob[cand]
    nz = cand.nonzero()  # row-major (location, class): the official candidate order
    loc_idx, cls_idx = nz[:, 0], nz[:, 1]
    k = min(int(cand.sum()), cfg.pre_nms_topk)
    if p.numel() > k:
        # topk(sorted=False) as the official code: its order only matters for exact score ties
        p, top = p.topk(k, sorted=False)
        loc_idx, cls_idx = loc_idx[top], cls_idx[top]
    r = reg.permute(1, 2, 0).reshape(-1, 4)[loc_idx] * stride
    xy = locs[loc_idx]
    boxes = torch.stack(
        (xy[:, 0] - r[:, 0], xy[:, 1] - r[:, 1], xy[:, 0] + r[:, 2], xy[:, 1] + r[:, 3]), dim=1
    )
    top_feat = head.top_feats[lvl][0].permute(1, 2, 0).reshape(h * w, -1)[loc_idx]
    reid = head.reid[lvl][0].permute(1, 2, 0).reshape(h * w, -1)[loc_idx]
    levels = torch.full_like(cls_idx, lvl)
    return boxes, p.sqrt(), cls_idx, xy, levels, top_feat, reid


def select_proposals(head: HeadOutputs, cfg: ProposalConfig | None = None) -> Proposals:
    """Per-level threshold + top-k, per-class NMS over all levels, top-100 by kthvalue."""
    cfg = cfg or ProposalConfig()
    per_level = [_level_candidates(head, lvl, cfg) for lvl in range(len(head.logits))]
    props = Proposals(*(torch.cat(parts) for parts in zip(*per_level, strict=True)))
    # not clipped before NMS; area without +1 (torchvision = detectron2's batched_nms)
    keep = batched_nms(props.boxes.float(), props.scores, props.classes, cfg.nms_thresh)
    props = props.index(keep)
    n = len(props)
    if n > cfg.post_nms_topk > 0:
        # kthvalue + '>=': ties with the 100th score are all kept (more than 100 detections)
        thr, _ = torch.kthvalue(props.scores.cpu(), n - cfg.post_nms_topk + 1)
        props = props.index(torch.nonzero(props.scores >= thr.item()).squeeze(1))
    return props
