"""CrossVIS training losses (the loss functions only; target assignment is not implemented yet).

As in the official ``forward_train`` (all weights 1; per-frame terms averaged over the two frames):

* :func:`focal_loss`: FCOS classification, sigmoid focal (alpha 0.25, gamma 2), summed and divided
  by the number of positives (also the re-id loss, divided by the number of embeddings);
* :func:`giou_loss`: FCOS regression on ltrb distances, weighted by the centerness targets and
  normalised by their sum;
* :func:`centerness_targets` + :func:`centerness_loss`: BCE on centerness / number of positives;
* :func:`dice_loss`: CondInst mask loss ``1 - 2 sum(xy) / (sum(x^2) + sum(y^2) + 1e-5)``, mean
  over instances;
* :func:`crossover_loss`: crossover learning: the dynamic filters of frame A applied to frame B's
  mask features (relative coordinates w.r.t. a location of the same identity in B), dice against
  B's masks, A->B and B->A averaged;
* :func:`reid_loss`: ``emb_scale * L2normalize(e)`` -> ``Linear(256, nID)`` -> focal against the
  one-hot identity, divided by the number of embeddings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.crossvis.mask import aligned_bilinear, dynamic_mask_logits

__all__ = [
    "centerness_loss",
    "centerness_targets",
    "crossover_loss",
    "dice_loss",
    "emb_scale",
    "focal_loss",
    "giou_loss",
    "reid_loss",
]


def emb_scale(num_ids: int = 3774) -> float:
    """``sqrt(2) * log(nID - 1)`` (about 11.64 for YouTube-VIS-2019's 3774 identities)."""
    return math.sqrt(2) * math.log(num_ids - 1)


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_norm: float, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss summed over all entries, divided by ``max(num_norm, 1)``."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum() / max(float(num_norm), 1.0)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """GIoU loss of ltrb distances ``[N, 4]`` (FCOS's IOULoss, giou), weighted mean."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    p_area = (pl + pr) * (pt + pb)
    t_area = (tl + tr) * (tt + tb)
    inter = (torch.min(pl, tl) + torch.min(pr, tr)) * (torch.min(pb, tb) + torch.min(pt, tt))
    enclose = (torch.max(pl, tl) + torch.max(pr, tr)) * (torch.max(pb, tb) + torch.max(pt, tt)) + 1e-7
    union = t_area + p_area - inter
    ious = (inter + 1.0) / (union + 1.0)
    loss = 1 - (ious - (enclose - union) / enclose)
    if weight is None:
        return loss.mean() if loss.numel() else loss.sum()
    return (loss * weight).sum() / weight.sum().clamp(min=1e-6)


def centerness_targets(ltrb: torch.Tensor) -> torch.Tensor:
    """``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))`` for positive locations' ltrb targets."""
    lr, tb = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
    return torch.sqrt((lr.min(1).values / lr.max(1).values) * (tb.min(1).values / tb.max(1).values))


def centerness_loss(logits: torch.Tensor, targets: torch.Tensor, num_pos: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / max(float(num_pos), 1.0)


def dice_loss(probs: torch.Tensor, gt: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mean over instances of ``1 - 2 sum(xy) / (sum(x^2) + sum(y^2) + eps)``; ``[N, ...]``."""
    x, y = probs.flatten(1), gt.flatten(1).to(probs.dtype)
    return (1 - 2 * (x * y).sum(1) / ((x * x).sum(1) + (y * y).sum(1) + eps)).mean()


def _masks_of(
    params: torch.Tensor,
    mask_feats: torch.Tensor,
    locations: torch.Tensor,
    levels: torch.Tensor,
    soi: torch.Tensor,
) -> torch.Tensor:
    """Dynamic heads on one frame's mask features -> probabilities at stride 4 ``[N, 1, 2H, 2W]``."""
    logits = dynamic_mask_logits(mask_feats, params, locations, levels, soi)
    return aligned_bilinear(logits, 2).sigmoid()


def crossover_loss(
    params_a: torch.Tensor, locs_b: torch.Tensor, levels_b: torch.Tensor, feats_b: torch.Tensor, gt_b: torch.Tensor,
    params_b: torch.Tensor, locs_a: torch.Tensor, levels_a: torch.Tensor, feats_a: torch.Tensor, gt_a: torch.Tensor,
    soi: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Crossover dice, averaged over both directions.

    Row ``i`` pairs a positive of A (``params_a[i]``) with a location of the same identity in B
    (``locs_b[i]``, ``levels_b[i]``, B's GT mask ``gt_b[i]`` at stride 4), and vice versa.
    """
    a_to_b = dice_loss(_masks_of(params_a, feats_b, locs_b, levels_b, soi), gt_b)
    b_to_a = dice_loss(_masks_of(params_b, feats_a, locs_a, levels_a, soi), gt_a)
    return (a_to_b + b_to_a) / 2


def reid_loss(
    emb: torch.Tensor, ids: torch.Tensor, classifier: nn.Linear, scale: float | None = None
) -> torch.Tensor:
    """Re-id focal loss: ``ids`` are 0-based identities (instance id - 1)."""
    scale = emb_scale(classifier.out_features) if scale is None else scale
    logits = classifier(scale * F.normalize(emb, dim=1))
    targets = F.one_hot(ids, classifier.out_features).to(logits.dtype)
    return focal_loss(logits, targets, emb.shape[0])
