"""CiCo's per-clip detection (official ``Detect``, evaluation mode): pooled candidates, three
filters, clip masks and per-class Fast NMS with box, circumscribed-box and mask IoU.

Decisions equal the official code's; memory is bounded: the official gathers masks and IoU
matrices once per class (``[C * n, T, H, W]``), here each class only indexes the shared ``[n, n]``
matrix, and a kept (candidate, class) pair refers to its candidate's mask instead of holding a
copy (with random weights one clip can keep thousands of pairs of a few hundred candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from methods.cico.head import decode
from methods.cico.masks import center_size, instance_masks

__all__ = ["DetectConfig", "Detections", "box_iou", "detect", "mask_iou"]


@dataclass(frozen=True)
class DetectConfig:
    conf_thresh: float = 0.1
    nms_thresh: float = 0.5
    top_k: int = 300
    focal: bool = True
    mask_type: str = "condinst"
    nms_with_miou: bool = True


@dataclass
class Detections:
    """Detect's output for one clip (``k`` kept (candidate, class) pairs, sorted by score)."""

    score: torch.Tensor  # [k] class confidence (not centerness-rescored)
    cls: torch.Tensor  # [k] 1-based contiguous class
    box: torch.Tensor  # [k, T, 4]
    box_cir: torch.Tensor  # [k, 4]
    masks: torch.Tensor  # [u, T, H, W] probabilities, one per candidate some pair refers to
    mask_idx: torch.Tensor  # [k] each pair's row in ``masks``
    mask_coeff: torch.Tensor  # [k, D]
    track: torch.Tensor  # [k, 64]
    prior_levels: torch.Tensor  # [k]
    anchor: torch.Tensor  # [k] pooled frame-anchor index t * N + n
    debug: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def pair_masks(self) -> torch.Tensor:
        """``[k, T, H, W]``: each pair's mask (a copy per pair; for tests and small outputs)."""
        return self.masks[self.mask_idx]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``[..., A, 4] x [..., B, 4] -> [..., A, B]`` (Yolact's ``jaccard``)."""
    max_xy = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    min_xy = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    inter = (max_xy - min_xy).clamp(min=0)
    inter = inter[..., 0] * inter[..., 1]
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]))[..., :, None]
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[..., None, :]
    return inter / (area_a + area_b - inter)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mask IoU of boolean masks ``[T, A, H, W] x [T, B, H, W] -> [T, A, B]``."""
    fa = a.flatten(2).float()
    fb = b.flatten(2).float()
    inter = fa @ fb.transpose(1, 2)
    union = fa.sum(-1)[:, :, None] + fb.sum(-1)[:, None, :] - inter
    return inter / union.clamp(min=1)


def _empty(t: int, h: int, w: int, d: int, device: torch.device) -> Detections:
    z = torch.zeros(0, device=device)
    return Detections(
        z, z.long(), z.new_zeros(0, t, 4), z.new_zeros(0, 4), z.new_zeros(0, t, h, w), z.long(),
        z.new_zeros(0, d), z.new_zeros(0, 64), z, z.long(),
    )  # fmt: skip


def detect(raw: dict[str, torch.Tensor], cfg: DetectConfig, keep_debug: bool = False) -> Detections:
    """Detect on one clip's head outputs (``conf`` already sigmoid/softmax-activated)."""
    conf_all, loc_all = raw["conf"], raw["loc"]
    t_frames, n_priors, _ = conf_all.shape
    proto = raw["proto"]
    h, w = proto.shape[0], proto.shape[1]
    d = raw["mask_coeff"].shape[-1]
    dev = conf_all.device
    conf_flat = conf_all.reshape(t_frames * n_priors, -1)
    if not cfg.focal:
        conf_flat = conf_flat[:, 1:]
    scores = conf_flat.max(dim=-1).values
    idx_out = torch.nonzero(scores > cfg.conf_thresh).flatten()
    if idx_out.numel() > cfg.top_k:
        order = scores[idx_out].sort(0, descending=True).indices
        idx_out = idx_out[order[: cfg.top_k]]
    debug: dict[str, torch.Tensor] = {}
    if keep_debug:
        debug["cand_anchor"] = idx_out.clone()
        debug["cand_score"] = scores[idx_out].clone()
    if idx_out.numel() == 0:
        return _empty(t_frames, h, w, d, dev)

    prior_idx = idx_out % n_priors
    conf = conf_flat[idx_out]
    loc = loc_all.reshape(t_frames * n_priors, -1)[idx_out]
    cent = raw["centerness"].reshape(t_frames * n_priors, -1)[idx_out].mean(-1)
    coeff = raw["mask_coeff"].reshape(t_frames * n_priors, -1)[idx_out]
    track = raw["track"].reshape(t_frames * n_priors, -1)[idx_out]
    levels = raw["prior_levels"][prior_idx]
    t = loc.shape[-1] // 4
    priors = raw["priors"][prior_idx].repeat(1, t).reshape(-1, 4)
    box = decode(loc.reshape(-1, 4), priors).reshape(-1, t, 4)
    box_cir = torch.stack(
        [
            box[..., 0].min(-1).values,
            box[..., 1].min(-1).values,
            box[..., 2].max(-1).values,
            box[..., 3].max(-1).values,
        ],
        -1,
    )

    # Filter 1 (near-duplicate boxes) and Filter 2 (centre inside the image in >= T//2 frames)
    best = conf.max(dim=1).values
    order = (cent * best).sort(0, descending=True).indices
    box_o = box[order]
    biou = box_iou(box_o.transpose(0, 1), box_o.transpose(0, 1))  # [T, n, n]
    biou_cir = box_iou(box_cir[order], box_cir[order])
    iou = (0.5 * biou.mean(0) + 0.5 * biou_cir).triu(diagonal=1)
    iou_max = iou.max(dim=0).values
    c = center_size(box_o.reshape(-1, 4)).reshape(-1, t, 4)
    inside = ((c[..., :2] > 0) & (c[..., :2] < 1)).sum(-1) == 2
    keep = (inside.sum(-1) >= max(t // 2, 1)) & (iou_max <= 0.9)
    sel = order[keep]
    c = c[keep]
    biou, biou_cir = biou[:, keep][:, :, keep], biou_cir[keep][:, keep]
    if keep_debug:
        debug["f12_anchor"] = idx_out[sel].clone()
        debug["f12_key"] = (cent * best)[sel]  # the sort key of this order (for tie-aware tests)

    # clip masks, Filter 3 (blank masks, low box coverage)
    crop_factor = 1.5 if cfg.mask_type == "condinst" else 1.1
    masks = instance_masks(cfg.mask_type, proto, coeff[sel], box_cir[sel], crop_factor, 0.1)
    fg = masks > 0.5
    area = fg.sum(dim=(-1, -2)).float()  # [n, T]
    cover = area / (h * w) / (c[..., 2] * c[..., 3])
    keep3 = ((area > 5).sum(-1) > 0) & ((cover > 0.1).sum(-1) > 0)
    sel, masks, fg = sel[keep3], masks[keep3], fg[keep3]
    biou, biou_cir = biou[:, keep3][:, :, keep3], biou_cir[keep3][:, keep3]
    if keep_debug:
        debug["f3_anchor"] = idx_out[sel].clone()
        debug["f3_key"] = (cent * best)[sel]
    n = int(sel.numel())
    if n == 0:
        out = _empty(t_frames, h, w, d, dev)
        out.debug = debug
        return out

    # Fast NMS per class. Quirk kept from the official code: the circumscribed-box IoU is
    # permuted by the class's ranking along its rows only (columns stay in candidate order).
    fg_t = fg.transpose(0, 1)  # [T, n, H, W]
    flag = fg_t.flatten(2).sum(-1) > 5  # [T, n]
    flag2 = flag[:, :, None] & flag[:, None, :]
    denom = flag2.sum(0).clamp(min=1)
    biou_f = (biou * flag2).sum(0) / denom
    miou: torch.Tensor | None = None
    if cfg.nms_with_miou:
        miou_t = mask_iou(fg_t, fg_t)
        miou = (miou_t * flag2).sum(0) / denom
        miou[((miou_t > 0.9) & flag2).sum(0) > 0] = 1
    conf_s = conf[sel].t()  # [C, n]
    rescores = cent[sel].reshape(1, -1) * conf_s
    rescores_sorted, idx = rescores.sort(1, descending=True)
    num_classes = conf_s.shape[0]
    keep_nms = torch.zeros(num_classes, n, dtype=torch.bool, device=dev)
    active = torch.nonzero(rescores_sorted[:, 0] > cfg.conf_thresh).flatten().tolist()
    for ci in active:
        m = int((rescores_sorted[ci] > cfg.conf_thresh).sum())
        ids = idx[ci, :m]
        sub = 0.5 * biou_f[ids][:, ids] + 0.5 * biou_cir[ids][:, :m]
        if miou is not None:
            sub = sub * 0.5 + miou[ids][:, ids] * 0.5
        keep_nms[ci, :m] = sub.triu(diagonal=1).max(dim=0).values <= cfg.nms_thresh
    # flatten class-major in rank order, then sort by score exactly as the official does
    cls_idx, rank = torch.nonzero(keep_nms, as_tuple=True)
    cand = idx[cls_idx, rank]
    out_scores = conf_s[cls_idx, cand]
    sorted_scores, sorted_idx = out_scores.sort(0, descending=True)
    cand, cls_idx = cand[sorted_idx], cls_idx[sorted_idx]
    used, mask_idx = torch.unique(cand, return_inverse=True)
    return Detections(
        score=sorted_scores,
        cls=cls_idx + 1,
        box=box[sel][cand],
        box_cir=box_cir[sel][cand],
        masks=masks[used],
        mask_idx=mask_idx,
        mask_coeff=coeff[sel][cand],
        track=track[sel][cand],
        prior_levels=levels[sel][cand],
        anchor=idx_out[sel][cand],
        debug=debug,
    )
