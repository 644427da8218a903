"""CrossVIS network (CondInst + FCOS with a re-id branch) and its per-frame inference.

:class:`CrossVISNet` has the official module names (``backbone``, ``proposal_generator.fcos_head``,
``mask_head``, ``mask_branch``, ``controller``), so an official state dict loads after dropping
the training-only re-id classifier ``cls.*`` (:mod:`methods.crossvis.convert`).

Per frame (:meth:`CrossVISNet.detect`): backbone + FPN, mask branch, FCOS head, proposal
selection (:func:`~methods.crossvis.head.select_proposals`), box rescaling to the original size
with clipping and removal of empty boxes (the official ``postprocess``), and the dynamic mask
head (probabilities at stride 4 of the padded input). The full-resolution binary masks are made
later, only for the detections that need them (:func:`full_res_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.crossvis.backbone import FPNBackbone
from methods.crossvis.head import HeadOutputs, ProposalConfig, ProposalGenerator, Proposals, select_proposals
from methods.crossvis.mask import (
    NUM_PARAMS,
    DynamicMaskHead,
    MaskBranch,
    aligned_bilinear,
    dynamic_mask_logits,
    dynamic_mask_logits_grouped,
)

__all__ = ["CrossVISNet", "FrameDetections", "full_res_masks"]

MASK_OUT_STRIDE = 4


@dataclass
class FrameDetections:
    """One frame's detections in the official output order (descending score).

    ``boxes`` are at the original frame size (scaled, clipped, empty ones removed);
    ``global_masks`` are sigmoid probabilities ``[N, 1, Hp/4, Wp/4]`` of the padded input.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    locations: torch.Tensor
    fpn_levels: torch.Tensor
    mask_params: torch.Tensor
    reid: torch.Tensor
    global_masks: torch.Tensor
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    orig_hw: tuple[int, int]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class CrossVISNet(nn.Module):
    #: training only: features = m * f + (1 - m) * f.detach() (official gradient scaling 0.1)
    backbone_grad_mult: float = 0.1

    def __init__(self, depth: int = 50, num_classes: int = 40, batched_mask_head: bool = True) -> None:
        super().__init__()
        self.backbone = FPNBackbone(depth)
        self.proposal_generator = ProposalGenerator(num_classes)
        self.mask_head = DynamicMaskHead()
        self.mask_branch = MaskBranch()
        self.controller = nn.Conv2d(256, NUM_PARAMS, 3, 1, 1)
        nn.init.normal_(self.controller.weight, std=0.01)
        assert self.controller.bias is not None
        nn.init.constant_(self.controller.bias, 0.0)
        self.batched_mask_head = batched_mask_head
        self.proposal_cfg = ProposalConfig()

    @property
    def num_classes(self) -> int:
        return self.proposal_generator.fcos_head.num_classes

    def forward(self, x: torch.Tensor) -> tuple[HeadOutputs, torch.Tensor]:
        """Normalised, padded ``[1, 3, Hp, Wp]`` -> (head outputs per level, mask_feats [1,8,Hp/8,Wp/8])."""
        feats = self.backbone(x)
        if self.training and self.backbone_grad_mult != 1.0:
            # official training: backbone + FPN get their gradients scaled (0.1); no-op at inference
            m = self.backbone_grad_mult
            feats = [f * m + f.detach() * (1.0 - m) for f in feats]
        mask_feats = self.mask_branch(feats[:3])
        head = self.proposal_generator.fcos_head(feats, self.controller)
        return head, mask_feats

    def detect(
        self, x: torch.Tensor, resized_hw: tuple[int, int], orig_hw: tuple[int, int]
    ) -> FrameDetections:
        """The official per-frame inference up to ``pred_global_masks`` (see the module docstring)."""
        head, mask_feats = self(x)
        props = select_proposals(head, self.proposal_cfg)
        props, boxes = _rescale_boxes(props, resized_hw, orig_hw)
        mask_fn = dynamic_mask_logits if self.batched_mask_head else dynamic_mask_logits_grouped
        if len(props):
            logits = mask_fn(mask_feats, props.top_feat, props.locations, props.fpn_levels,
                             self.mask_head.sizes_of_interest, MaskBranch.out_stride)  # fmt: skip
            factor = MaskBranch.out_stride // MASK_OUT_STRIDE
            global_masks = aligned_bilinear(logits, factor).sigmoid()
        else:
            h, w = mask_feats.shape[-2:]
            global_masks = mask_feats.new_zeros((0, 1, h * 2, w * 2))
        hp, wp = x.shape[-2:]
        return FrameDetections(
            boxes, props.scores, props.classes, props.locations, props.fpn_levels, props.top_feat,
            props.reid, global_masks, resized_hw, (int(hp), int(wp)), orig_hw,
        )  # fmt: skip


def _rescale_boxes(
    props: Proposals, resized_hw: tuple[int, int], orig_hw: tuple[int, int]
) -> tuple[Proposals, torch.Tensor]:
    """Scale by (W/w, H/h), clip to the original size, drop empty boxes (w or h == 0)."""
    h, w = orig_hw
    boxes = props.boxes.clone()
    boxes[:, 0::2] *= w / resized_hw[1]
    boxes[:, 1::2] *= h / resized_hw[0]
    boxes = torch.stack(
        (boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)),
        dim=-1,
    )
    keep = ((boxes[:, 2] - boxes[:, 0]) > 0) & ((boxes[:, 3] - boxes[:, 1]) > 0)
    if bool(keep.all()):
        return props, boxes
    return props.index(keep), boxes[keep]


def full_res_masks(dets: FrameDetections, index: torch.Tensor | list[int]) -> torch.Tensor:
    """Binary masks ``[k, H, W]`` (bool) at the original size for detections ``index``:
    aligned_bilinear x4 to the padded size, crop to the resized size, bilinear
    (align_corners=False) to the original size, ``> 0.5`` (the official postprocess)."""
    probs = dets.global_masks[index]
    factor = dets.padded_hw[0] // probs.shape[-2]
    probs = aligned_bilinear(probs, factor)[:, :, : dets.resized_hw[0], : dets.resized_hw[1]]
    probs = F.interpolate(probs, size=dets.orig_hw, mode="bilinear", align_corners=False)
    return probs[:, 0] > 0.5
