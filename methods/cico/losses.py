"""CiCo's training losses, as the official ``MultiBoxLoss`` (``layers/modules/multibox_loss.py``,
``match_samples.py:match_clip``, ``losses/lincomb_mask_loss.py``) computes them at HEAD ``d835b52``.

Per clip (``T`` frames, one box per clip frame regressed by each frame-anchor):

* GT boxes missing in some clip frames are filled with the nearest frame's box (ties: the earlier).
* Matching, per clip frame ``t``: the anchors of frame ``t`` against the GT boxes present in frame
  ``t`` (IoU >= 0.5 positive, < 0.4 negative, else neutral; anchors above 0.5 with several GTs
  neutral; each GT's best anchor forced positive). A positive regresses the GT's boxes in **all**
  ``T`` frames against the same prior. A frame without any GT object leaves all its anchors
  neutral (official behaviour: no negatives from empty frames).
* ``B``: smooth-L1 on the ``4T`` deltas (per frame-box summed over the 4 coordinates, mean) x1;
  ``BIoU``: DIoU loss per frame averaged over ``T``, mean x1; ``center``: BCE of the centerness
  against ``1 - BIoU`` (detached) x1; ``C_focal``: sigmoid focal loss (alpha .25, gamma 2) summed
  over non-neutral frame-anchors / #positives x5 (softmax ``C`` with 3:1 OHEM for OVIS);
  ``T``: track embedding loss over all positives of a clip x5; ``M_bce``: clip mask BCE, frame
  weighted by ``0.9^|t - t_anchor|``, x 6.125 x min(T, 5).

Everything is batched over clips: head outputs are ``[B*T, N, ...]`` and ``proto`` is
``[H, W, B*T, D]`` (what :class:`~methods.cico.model.CiCoNet` returns for ``B`` stacked clips).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from methods.cico.head import decode
from methods.cico.masks import (
    center_size,
    condinst_masks,
    crop_bounds,
    crop_mask,
    expand_boxes,
    point_form,
)

__all__ = [
    "ClipTargets",
    "LossConfig",
    "MatchResult",
    "cico_losses",
    "circum_boxes",
    "diou_loss",
    "encode",
    "fill_missing_boxes",
    "jaccard",
    "match_clip_frame",
    "ohem_negatives",
    "sigmoid_focal_loss",
    "track_loss",
]


@dataclass
class ClipTargets:
    """Ground truth of one clip, in the padded input's normalised coordinates.

    ``boxes [n, T, 4]`` x1y1x2y2 (all zeros where the object is absent), ``labels [n]`` (1-based
    contiguous class labels), ``ids [n]`` (object ids), ``masks [n, T, H, W]`` (0/1, input size).
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor
    masks: torch.Tensor

    def to(self, device: torch.device | str) -> ClipTargets:
        return ClipTargets(*(x.to(device) for x in (self.boxes, self.labels, self.ids, self.masks)))


@dataclass(frozen=True)
class LossConfig:
    clip_frames: int = 3
    mask_type: str = "yolact"  # yolact | condinst
    focal: bool = True  # sigmoid focal (YTVIS) or softmax + OHEM (OVIS)
    pos_threshold: float = 0.5
    neg_threshold: float = 0.4
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_alpha: float = 1.0
    biou_alpha: float = 1.0
    center_alpha: float = 1.0
    class_alpha: float = 5.0
    track_alpha: float = 5.0
    mask_alpha: float = 6.125
    ohem_ratio: int = 3
    mask_crop_factor: float = 1.5  # the mask loss crops by the GT circumscribed box x1.5 (w, h >= 0.1)


# ---- boxes ---------------------------------------------------------------------------------------
def encode(matched: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD encoding (variances 0.1, 0.2) of x1y1x2y2 boxes ``[n, 4]`` against cxcywh priors."""
    g_cxcy = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (0.1 * priors[:, 2:])
    g_wh = torch.log((matched[:, 2:] - matched[:, :2]) / priors[:, 2:]) / 0.2
    return torch.cat([g_cxcy, g_wh], 1)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``[A, B]`` of x1y1x2y2 boxes (no epsilon, as the official code)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    return inter / (area_a + area_b - inter)


def circum_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Circumscribed box ``[..., 4]`` of ``[..., 4T]`` (x1y1x2y2 per frame)."""
    return torch.stack(
        [boxes[..., 0::4].min(-1)[0], boxes[..., 1::4].min(-1)[0], boxes[..., 2::4].max(-1)[0],
         boxes[..., 3::4].max(-1)[0]], -1,
    )  # fmt: skip


def diou_loss(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``1 - DIoU`` per row of two ``[n, 4]`` x1y1x2y2 box sets (coordinates re-ordered first)."""
    x1, x2 = torch.min(a[:, 0], a[:, 2]), torch.max(a[:, 0], a[:, 2])
    y1, y2 = torch.min(a[:, 1], a[:, 3]), torch.max(a[:, 1], a[:, 3])
    x1g, x2g = torch.min(b[:, 0], b[:, 2]), torch.max(b[:, 0], b[:, 2])
    y1g, y2g = torch.min(b[:, 1], b[:, 3]), torch.max(b[:, 1], b[:, 3])
    iw = torch.min(x2, x2g) - torch.max(x1, x1g)
    ih = torch.min(y2, y2g) - torch.max(y1, y1g)
    inter = torch.where((iw > 0) & (ih > 0), iw * ih, torch.zeros_like(iw))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    c2 = (torch.max(x2, x2g) - torch.min(x1, x1g)) ** 2 + (torch.max(y2, y2g) - torch.min(y1, y1g)) ** 2 + eps
    d2 = (0.5 * (x1 + x2) - 0.5 * (x1g + x2g)) ** 2 + (0.5 * (y1 + y2) - 0.5 * (y1g + y2g)) ** 2
    return 1 - (iou - d2 / c2)


def fill_missing_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``[n, T, 4]``: a frame whose box is degenerate (w or h <= 0) takes the box of the nearest
    frame where the object has one (the earlier frame on ties); objects absent everywhere stay."""
    out = boxes.clone()
    t = boxes.shape[1]
    missed = ((boxes[..., 2:] - boxes[..., :2]) > 0).sum(-1) != 2  # [n, T]
    frames = torch.arange(t, device=boxes.device)
    for k in range(boxes.shape[0]):
        if missed[k].any() and (~missed[k]).any():
            miss, occur = frames[missed[k]], frames[~missed[k]]
            nearest = (miss[:, None] - occur[None, :]).abs().min(-1)[1]
            out[k, miss] = boxes[k, occur[nearest]]
    return out


# ---- matching ------------------------------------------------------------------------------------
@dataclass
class MatchResult:
    """Per frame-anchor of one clip frame: ``conf`` (-1 neutral, 0 background, > 0 label), ``idx``
    (matched GT index; meaningful for positives), ``loc [N, 4T]`` targets (zeros for non-positives)."""

    conf: torch.Tensor
    idx: torch.Tensor
    loc: torch.Tensor


def match_clip_frame(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    priors: torch.Tensor,
    t: int,
    pos_threshold: float = 0.5,
    neg_threshold: float = 0.4,
) -> MatchResult:
    """The official ``match_clip`` for clip frame ``t`` (``gt_boxes [n, T, 4]`` already filled,
    ``priors [N, 4]`` cxcywh), with its quirks kept:

    * only objects with a box in frame ``t`` take part; with none, every anchor stays neutral;
    * the forced best-anchor assignment is skipped for a GT whose best anchor currently scores
      below ``0.5 * (pos + neg) / 2`` unless no anchor reaches ``pos`` at all;
    * the "small object" IoU bonus x1.05 applies to **every** object: the official test is
      ``(area < 0.01).sum(frames) >= min(len(ind_range) // 2, 1)`` with ``ind_range = [t]`` for
      T <= 5, i.e. ``>= 0``, always true.
    """
    n_priors, nt = priors.shape[0], gt_boxes.shape[1]
    dev = priors.device
    conf = torch.full((n_priors,), -1, dtype=torch.long, device=dev)
    idx = torch.zeros(n_priors, dtype=torch.long, device=dev)
    loc = torch.zeros(n_priors, 4 * nt, device=dev)
    wh = gt_boxes[:, t, 2:] - gt_boxes[:, t, :2]
    valid = (wh > 0).sum(-1) == 2
    n_objs = int(valid.sum())
    if n_objs == 0:
        return MatchResult(conf, idx, loc)
    valid_idx = torch.nonzero(valid).reshape(-1)
    vboxes = gt_boxes[valid]
    overlaps = jaccard(vboxes[:, t], point_form(priors))  # [n, N]
    best_overlap, best_idx = overlaps.max(0)
    thresh = 0.5 * (pos_threshold + neg_threshold)
    best_overlap[(overlaps > pos_threshold).sum(0) > 1] = thresh
    for _ in range(n_objs):
        bpo, bpi = overlaps.max(1)
        j = bpo.max(0)[1]
        i = bpi[j]
        if best_overlap[i] >= thresh * 0.5 or best_overlap.max() < pos_threshold:
            overlaps[:, i] = -1
            overlaps[j, :] = -1
            best_overlap[i] = 2
            best_idx[i] = j
    c = center_size(vboxes[:, [t]].reshape(-1, 4)).reshape(n_objs, -1, 4)[..., 2:]
    small = (c.prod(-1) < 0.01).sum(1) >= min(1 // 2, 1)  # always true (see the docstring)
    for k in torch.nonzero(small).reshape(-1).tolist():
        best_overlap[best_idx == k] *= 1.05
    pos = best_overlap > pos_threshold
    conf[pos] = gt_labels[valid][best_idx[pos]].long()
    conf[best_overlap < neg_threshold] = 0
    npos = int(pos.sum())
    if npos:
        matched = vboxes[best_idx[pos]].reshape(-1, 4)
        pri = priors[pos].repeat_interleave(nt, 0)
        enc = encode(matched, pri).reshape(npos, -1)
        bad = ~torch.isfinite(enc).all(-1)
        pos_ind = torch.nonzero(pos).reshape(-1)
        conf[pos_ind[bad]] = -1
        loc[pos] = torch.where(bad[:, None], torch.zeros_like(enc), enc)
    idx = valid_idx[best_idx]
    return MatchResult(conf, idx, loc)


# ---- classification ------------------------------------------------------------------------------
def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """fvcore's ``sigmoid_focal_loss`` with ``reduction="sum"``."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


def ohem_negatives(conf_logits: torch.Tensor, conf_t: torch.Tensor, ratio: int = 3) -> torch.Tensor:
    """Hard negatives of the softmax classifier (official ``select_neg_bboxes``): rank the
    background anchors by their most confident foreground softmax score and keep the top
    ``min(ratio * #pos, n - 1)``. ``conf_logits [n, C+1]``, ``conf_t [n]`` -> bool ``[n]``."""
    with torch.no_grad():
        score = F.softmax(conf_logits, dim=1)[:, 1:].max(dim=1)[0]
        score[conf_t != 0] = 0  # positives and neutrals are never negatives
        num_pos = int((conf_t > 0).sum())
        num_neg = min(ratio * num_pos, conf_t.shape[0] - 1)
        order = score.sort(descending=True)[1]
        neg = torch.zeros_like(conf_t, dtype=torch.bool)
        neg[order[:num_neg]] = True
        neg[conf_t != 0] = False
    return neg


# ---- tracking ------------------------------------------------------------------------------------
def track_loss(track: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean over all pairs (diagonal included) of the clip's positives: ``-log((cos+1)/2)`` for
    the same object, ``-log(1 - (cos+1)/2)`` otherwise (both clamped at 1e-10)."""
    sim = (track @ track.t() + 1) / 2
    eq = (ids[:, None] == ids[None, :]).float()
    loss = -(sim.clamp(min=1e-10).log() * eq + (1 - sim).clamp(min=1e-10).log() * (1 - eq))
    return loss.mean()


# ---- masks ---------------------------------------------------------------------------------------
def _crop_area(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel area of normalised boxes as the official ``sanitize_coordinates`` (padding 0, cast)."""

    def side(a: torch.Tensor, b: torch.Tensor, size: int) -> torch.Tensor:
        a, b = (a.clamp(0, 1) * size).long(), (b.clamp(0, 1) * size).long()
        return (torch.max(a, b).clamp(max=size) - torch.min(a, b).clamp(min=0)).clamp(min=1)

    return (side(boxes[:, 0], boxes[:, 2], w) * side(boxes[:, 1], boxes[:, 3], h)).float()


class _BCEAnyTarget(torch.autograd.Function):
    """PyTorch's ``binary_cross_entropy`` (``reduction="none"``) without its ``0 <= t <= 1`` check:
    its forward formula (logs clamped at -100) and its backward ``(p - t) / max((1 - p) p, 1e-12)``.
    Autograd through the written-out logs would give NaN where ``p`` is exactly 0 or 1 (a sigmoid
    saturated, soon in bf16: the clamp's zero gradient times ``1 / 0``); the official code's
    ``F.binary_cross_entropy`` gives a finite gradient there, and so does this."""

    @staticmethod
    def forward(ctx: Any, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(p, t)
        return -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log1p(-p).clamp(min=-100))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        p, t = ctx.saved_tensors
        return grad * (p - t) / ((1 - p) * p).clamp(min=1e-12), None


def _bce_any_target(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``F.binary_cross_entropy(p, t, reduction="none")`` without the ``0 <= t <= 1`` check (``t``
    is not differentiated); in float32, as autocast runs ``binary_cross_entropy``."""
    return _BCEAnyTarget.apply(p.float(), t.detach().float())


# ---- all losses ----------------------------------------------------------------------------------
def cico_losses(
    out: dict[str, torch.Tensor], targets: list[ClipTargets], cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """The official loss dict of a batch of clips (see the module docstring).

    ``out``: the network's outputs for ``B = len(targets)`` stacked clips (``conf`` as logits).
    Terms that have no positives are absent, as in the official code.
    """
    nt = cfg.clip_frames
    bs = len(targets)
    loc_data, priors = out["loc"], out["priors"]
    bt, n_priors, _ = loc_data.shape
    if bt != bs * nt:
        raise ValueError(f"outputs for {bt} frames, targets for {bs} clips of {nt} frames")
    dev = loc_data.device
    conf_t = torch.full((bt, n_priors), -1, dtype=torch.long, device=dev)
    idx_t = torch.zeros((bt, n_priors), dtype=torch.long, device=dev)
    loc_t = torch.zeros_like(loc_data)
    filled = []
    with torch.no_grad():
        for b, tg in enumerate(targets):
            boxes = fill_missing_boxes(tg.boxes) if nt > 1 else tg.boxes
            filled.append(boxes)
            for t in range(nt):
                m = match_clip_frame(boxes, tg.labels, priors, t, cfg.pos_threshold, cfg.neg_threshold)
                k = b * nt + t
                conf_t[k], idx_t[k], loc_t[k] = m.conf, m.idx, m.loc
    pos = conf_t > 0
    losses: dict[str, torch.Tensor] = {}
    npos = int(pos.sum())
    if npos == 0:
        return losses

    # -- boxes: smooth-L1, DIoU, centerness
    loc_p = loc_data[pos].reshape(-1, 4)
    loc_tp = loc_t[pos].reshape(-1, 4)
    pri = priors[None].expand(bt, -1, -1)[pos].repeat_interleave(nt, 0)
    losses["B"] = F.smooth_l1_loss(loc_p, loc_tp, reduction="none").sum(-1).mean() * cfg.box_alpha
    dec_p, dec_t = decode(loc_p, pri), decode(loc_tp, pri)
    iou_loss = diou_loss(dec_p, dec_t).reshape(npos, nt).mean(-1)
    losses["BIoU"] = iou_loss.mean() * cfg.biou_alpha
    # the target 1 - (1 - DIoU) is the DIoU itself, negative for far-off boxes (official); the
    # PyTorch of the official code took such targets in F.binary_cross_entropy, today's refuses
    # them, so the same formula (logs clamped at -100) is written out
    center = out["centerness"][pos].reshape(-1)
    losses["center"] = _bce_any_target(center, (1 - iou_loss).detach()).mean() * cfg.center_alpha

    # -- masks
    losses["M_bce"] = _mask_loss(out, targets, pos, idx_t, dec_t.reshape(npos, -1), cfg)

    # -- classification
    conf = out["conf"].reshape(bt * n_priors, -1)
    ct = conf_t.reshape(-1)
    if cfg.focal:
        keep = ct != -1
        onehot = torch.zeros_like(conf)
        pos_rows = torch.nonzero(ct > 0).reshape(-1)
        onehot[pos_rows, ct[pos_rows] - 1] = 1
        fl = sigmoid_focal_loss(conf[keep], onehot[keep], cfg.focal_alpha, cfg.focal_gamma)
        losses["C_focal"] = cfg.class_alpha * fl / len(pos_rows)
    else:
        neg = ohem_negatives(conf, ct, cfg.ohem_ratio)
        keep = (ct > 0) | neg
        losses["C"] = cfg.class_alpha * F.cross_entropy(conf[keep], ct[keep])

    # -- tracking: all positives of a clip (over its T frames) against each other
    track = out["track"]
    ids_t = torch.zeros_like(idx_t)
    for b, tg in enumerate(targets):
        ids_t[b * nt : (b + 1) * nt] = tg.ids.to(dev)[idx_t[b * nt : (b + 1) * nt]]
    tl = track.new_zeros(())
    for b in range(bs):
        p = pos[b * nt : (b + 1) * nt]
        if p.any():  # (official: a clip without positives would make the mean NaN)
            tl = tl + track_loss(track[b * nt : (b + 1) * nt][p], ids_t[b * nt : (b + 1) * nt][p])
    losses["T"] = tl / bs * cfg.track_alpha
    return losses


def _yolact_bce_windowed(
    proto: torch.Tensor, coeff: torch.Tensor, crop: torch.Tensor, mask_t: torch.Tensor, group: torch.Tensor
) -> torch.Tensor:
    """``F.binary_cross_entropy(yolact_masks(proto, coeff, crop), mask_t).sum((-1, -2))`` -> ``[n, T]``,
    computed on windows: the official loss runs over the whole prototype map, but outside an
    instance's crop its mask is exactly 0, where the BCE is ``100 * t`` (the log clamped at -100)
    with no gradient. So per group of positives (those of one GT object share nearly the same crop)
    only the union of their crop windows is assembled and scored, and the GT pixels outside it add
    100 each: the same sums up to float summation order, ~10x fewer pixels on small objects."""
    h, w = proto.shape[:2]
    bounds = crop_bounds(crop, h, w)
    out = mask_t.new_zeros(mask_t.shape[:2])
    for g in torch.unique(group).tolist():
        rows = torch.nonzero(group == g).reshape(-1)
        bd = bounds[rows]
        x0, y0 = int(bd[:, 0].min()), int(bd[:, 1].min())
        x1, y1 = int(bd[:, 2].max()), int(bd[:, 3].max())
        pw = proto[y0:y1, x0:x1]  # [hh, ww, T, D]
        hh, ww, t, d = pw.shape
        m = torch.sigmoid(pw.reshape(-1, d) @ coeff[rows].t()).view(hh, ww, t, -1).permute(3, 2, 0, 1)
        shift = torch.tensor([x0, y0, x0, y0], device=bd.device)
        pred = m * crop_mask(bd - shift, hh, ww)
        tg = mask_t[rows]
        inside = tg[..., y0:y1, x0:x1]
        bce = F.binary_cross_entropy(pred, inside, reduction="none").sum((-1, -2))
        out[rows] = bce + 100.0 * (tg.sum((-1, -2)) - inside.sum((-1, -2)))
    return out


def _mask_loss(
    out: dict[str, torch.Tensor],
    targets: list[ClipTargets],
    pos: torch.Tensor,
    idx_t: torch.Tensor,
    boxes_t_pos: torch.Tensor,
    cfg: LossConfig,
) -> torch.Tensor:
    nt = cfg.clip_frames
    proto = out["proto"]  # [H, W, B*T, D]
    h, w = proto.shape[:2]
    coeff = out["mask_coeff"]
    frames = torch.arange(nt, device=proto.device)
    decay = 0.9 ** (frames[None, :] - frames[:, None]).abs().float()  # [T(anchor frame), T]
    loss = proto.new_zeros(())
    start = 0
    for b, tg in enumerate(targets):
        pc = pos[b * nt : (b + 1) * nt]
        n = int(pc.sum())
        if n == 0:
            continue
        anchor_frame = torch.nonzero(pc, as_tuple=True)[0]
        weights = decay[anchor_frame]
        gidx = idx_t[b * nt : (b + 1) * nt][pc]
        cf = coeff[b * nt : (b + 1) * nt][pc]
        with torch.no_grad():
            gt = F.interpolate(tg.masks.float(), (h, w), mode="bilinear", align_corners=False).gt(0.5).float()
        mask_t = gt[gidx]  # [n, T, h, w]
        # crop by the positives' GT boxes (decoded targets), circumscribed over the clip
        boxes = circum_boxes(boxes_t_pos[start : start + n])
        start += n
        crop = expand_boxes(boxes, cfg.mask_crop_factor, 0.1)
        pb = proto[:, :, b * nt : (b + 1) * nt]
        if cfg.mask_type == "condinst":
            pred = condinst_masks(pb, cf, boxes, crop)
            bce = F.binary_cross_entropy(pred, mask_t, reduction="none").sum((-1, -2))
        else:
            bce = _yolact_bce_windowed(pb, cf, crop, mask_t, gidx)
        bce = bce / _crop_area(boxes, h, w)[:, None]
        loss = loss + ((weights * bce).sum(-1) / weights.sum(-1)).mean()
    return loss / max(len(targets), 1) * cfg.mask_alpha * min(nt, 5.0)
