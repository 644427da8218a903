"""Clip-level instance masks of CiCo: Yolact linear combination and CondInst dynamic filters.

Both give ``[n, T, H, W]`` probabilities at stride 4 of the padded input for all ``T`` frames of
a clip from one coefficient vector per instance, and both are cropped by the instance's
circumscribed clip box, enlarged (Yolact x1.1, CondInst x1.5; the tracker re-segments carried
objects with x1.2). The crop follows Yolact: coordinates ``floor(clamp(x, 0, 1) * W)`` widened by
one pixel on each side. Instances are processed in chunks so memory stays bounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "CONDINST_PARAMS",
    "center_size",
    "condinst_masks",
    "crop_bounds",
    "crop_mask",
    "expand_boxes",
    "instance_masks",
    "point_form",
    "rel_coord_gauss",
    "yolact_masks",
]

#: CondInst dynamic head: 3 1x1 layers, 8 channels, 8 prototypes + 1 Gaussian coordinate channel.
CONDINST_WEIGHTS = (9 * 8, 8 * 8, 8 * 1)
CONDINST_BIASES = (8, 8, 1)
CONDINST_PARAMS = sum(CONDINST_WEIGHTS) + sum(CONDINST_BIASES)  # 161
_CHUNK = 64


def center_size(b: torch.Tensor) -> torch.Tensor:
    return torch.cat(((b[:, 2:] + b[:, :2]) / 2, b[:, 2:] - b[:, :2]), 1)


def point_form(b: torch.Tensor) -> torch.Tensor:
    return torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), 1)


def expand_boxes(boxes: torch.Tensor, factor: float, min_wh: float | None) -> torch.Tensor:
    """Scale boxes' w, h about their centres (optionally clamped below by ``min_wh``)."""
    c = center_size(boxes)
    wh = c[:, 2:] * factor
    c = torch.cat((c[:, :2], wh.clamp(min=min_wh) if min_wh is not None else wh), 1)
    return point_form(c)


def _sanitize(a: torch.Tensor, b: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = (a.clamp(0, 1) * size).long()
    b = (b.clamp(0, 1) * size).long()
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    return (lo - 1).clamp(min=0), (hi + 1).clamp(max=size)


def crop_bounds(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[n, 4]`` integer crop windows ``x1, y1, x2, y2`` (half-open) of normalised boxes."""
    x1, x2 = _sanitize(boxes[:, 0], boxes[:, 2], w)
    y1, y2 = _sanitize(boxes[:, 1], boxes[:, 3], h)
    return torch.stack([x1, y1, x2, y2], 1)


def crop_mask(bounds: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[n, 1, H, W]`` boolean windows."""
    cols = torch.arange(w, device=bounds.device)
    rows = torch.arange(h, device=bounds.device)
    mx = (cols[None] >= bounds[:, 0:1]) & (cols[None] < bounds[:, 2:3])
    my = (rows[None] >= bounds[:, 1:2]) & (rows[None] < bounds[:, 3:4])
    return (my[:, :, None] & mx[:, None, :])[:, None]


def yolact_masks(proto: torch.Tensor, coeff: torch.Tensor, crop_boxes: torch.Tensor) -> torch.Tensor:
    """``sigmoid(proto @ coeff)`` cropped: proto ``[H, W, T, D]``, coeff ``[n, D]`` -> ``[n, T, H, W]``."""
    h, w, t, d = proto.shape
    flat = proto.reshape(-1, d)
    bounds = crop_bounds(crop_boxes, h, w)
    outs = []
    for s in range(0, coeff.shape[0], _CHUNK):
        m = torch.sigmoid(flat @ coeff[s : s + _CHUNK].t()).view(h, w, t, -1).permute(3, 2, 0, 1)
        outs.append(m * crop_mask(bounds[s : s + _CHUNK], h, w))
    return torch.cat(outs) if outs else proto.new_zeros(0, t, h, w)


def rel_coord_gauss(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """CiCo's Gaussian relative-coordinate map ``[n, H, W]`` of normalised x1y1x2y2 boxes."""
    px = torch.cat([boxes[:, 0::2] * w, boxes[:, 1::2] * h], -1)[:, [0, 2, 1, 3]]
    c = center_size(px)
    cx, cy = torch.round(c[:, 0]), torch.round(c[:, 1])
    scales = torch.ones(boxes.shape[0], device=boxes.device)
    small = c[:, 2] * c[:, 3] / h / w < 0.1
    scales[small] = 0.5 * 2.0  # the official small-object branch: a scale of 1, i.e. no change
    sigma = torch.clamp(1.5 * c[:, 2:] / scales.reshape(-1, 1), min=1)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32)
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32)
    xr = (xs[None, None, :] - cx.view(-1, 1, 1)) / sigma[:, 0].reshape(-1, 1, 1)
    yr = (ys[None, :, None] - cy.view(-1, 1, 1)) / sigma[:, 1].reshape(-1, 1, 1)
    return torch.exp(-0.5 * (xr**2 + yr**2))


def condinst_masks(
    proto: torch.Tensor, params: torch.Tensor, boxes: torch.Tensor, crop_boxes: torch.Tensor
) -> torch.Tensor:
    """CondInst dynamic 1x1 FCN per instance over all frames: proto ``[H, W, T, 8]``, params
    ``[n, 161]``, boxes ``[n, 4]`` (circumscribed, for the Gaussian channel), crop boxes ``[n, 4]``
    -> ``[n, T, H, W]``."""
    h, w, t, d = proto.shape
    feats = proto.permute(3, 2, 0, 1).reshape(d, t * h * w)  # [8, THW]
    bounds = crop_bounds(crop_boxes, h, w)
    outs = []
    for s in range(0, params.shape[0], _CHUNK):
        p = params[s : s + _CHUNK]
        n = p.shape[0]
        w0, w1, w2, b0, b1, b2 = torch.split_with_sizes(p, list(CONDINST_WEIGHTS + CONDINST_BIASES), dim=1)
        w0 = w0.reshape(n, 8, 9)
        gauss = rel_coord_gauss(boxes[s : s + n], h, w).reshape(n, 1, 1, h * w)
        # layer 0 on [gauss; protos]: the Gaussian is the same for all T frames
        x = (w0[:, :, 1:] @ feats).view(n, 8, t, h * w) + (w0[:, :, :1, None] * gauss) + b0.view(n, 8, 1, 1)
        x = F.relu(x).view(n, 8, -1)
        x = F.relu(torch.baddbmm(b1.view(n, 8, 1), w1.reshape(n, 8, 8), x))
        x = torch.baddbmm(b2.view(n, 1, 1), w2.reshape(n, 1, 8), x)
        m = torch.sigmoid(x.view(n, t, h, w))
        outs.append(m * crop_mask(bounds[s : s + n], h, w))
    return torch.cat(outs) if outs else proto.new_zeros(0, t, h, w)


def instance_masks(
    kind: str,
    proto: torch.Tensor,
    coeff: torch.Tensor,
    boxes_cir: torch.Tensor,
    crop_factor: float,
    min_wh: float | None,
) -> torch.Tensor:
    """Masks of ``kind`` (``yolact``/``condinst``) cropped by ``boxes_cir`` x ``crop_factor``."""
    crop = expand_boxes(boxes_cir, crop_factor, min_wh)
    if kind == "condinst":
        return condinst_masks(proto, coeff, boxes_cir, crop)
    return yolact_masks(proto, coeff, crop)
