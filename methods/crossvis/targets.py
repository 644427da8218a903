"""FCOS target assignment as in AdelaiDet's ``FCOSOutputs`` (used by CondInst / CrossVIS training).

For every location of P3..P7 (``compute_locations``) and every GT of an image:

* ltrb distances to the GT box;
* centre sampling (``CENTER_SAMPLE``, ``POS_RADIUS = 1.5``): the location must lie inside the box
  ``centre +- radius * stride`` clipped to the GT box, where the centre is the **mass centre of
  the GT bitmask** (CondInst passes ``gt_bitmasks_full``);
* size of interest: ``max(l, t, r, b)`` within the level's range ``[-1, 64], [64, 128],
  [128, 256], [256, 512], [512, inf]`` (both ends inclusive);
* among the remaining GTs the one of **minimum box area** wins (first index on ties); a location
  with none is background (label ``num_classes``).

Regression targets are divided by the level's stride (``NORM_REG_TARGETS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods.crossvis.head import STRIDES, compute_locations

__all__ = ["INF", "SIZE_RANGES", "FCOSTargets", "assign_targets", "level_locations", "mass_centres"]

INF = 100000000.0
SIZE_RANGES: tuple[tuple[float, float], ...] = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))


@dataclass
class FCOSTargets:
    """Per location (levels concatenated, row-major inside a level)."""

    labels: torch.Tensor  # [L] int64, num_classes = background
    reg: torch.Tensor  # [L, 4] ltrb / stride
    gt_inds: torch.Tensor  # [L] int64 index of the assigned GT (meaningless for background)
    levels: torch.Tensor  # [L] int64
    locations: torch.Tensor  # [L, 2] (x, y)


def level_locations(
    shapes: list[tuple[int, int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenated locations ``[L, 2]``, their level ``[L]`` and their stride ``[L]``."""
    locs, lv, st = [], [], []
    for i, (h, w) in enumerate(shapes):
        loc = compute_locations(h, w, STRIDES[i], device)
        locs.append(loc)
        lv.append(torch.full((loc.shape[0],), i, dtype=torch.int64, device=device))
        st.append(torch.full((loc.shape[0],), float(STRIDES[i]), device=device))
    return torch.cat(locs), torch.cat(lv), torch.cat(st)


def mass_centres(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cx, cy)`` of bitmasks ``[n, H, W]`` (pixel indices, mass clamped at 1e-6)."""
    m = masks.float()
    _, h, w = m.shape
    ys = torch.arange(h, dtype=torch.float32, device=m.device)
    xs = torch.arange(w, dtype=torch.float32, device=m.device)
    m00 = m.sum(dim=(1, 2)).clamp(min=1e-6)
    return (m * xs).sum(dim=(1, 2)) / m00, (m * ys[:, None]).sum(dim=(1, 2)) / m00


def assign_targets(
    shapes: list[tuple[int, int]],
    boxes: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    num_classes: int,
    radius: float = 1.5,
    device: torch.device | None = None,
) -> FCOSTargets:
    """Targets of one image: ``boxes [n, 4]`` xyxy, ``labels [n]`` 0-based, ``masks [n, Hp, Wp]``
    (the full-resolution bitmasks of the padded input); ``shapes`` the (h, w) of P3..P7."""
    device = device or boxes.device
    locs, levels, strides = level_locations(shapes, device)
    n_loc = locs.shape[0]
    if boxes.shape[0] == 0:
        return FCOSTargets(
            torch.full((n_loc,), num_classes, dtype=torch.int64, device=device),
            torch.zeros(n_loc, 4, device=device),
            torch.zeros(n_loc, dtype=torch.int64, device=device),
            levels,
            locs,
        )
    boxes = boxes.float().to(device)
    xs, ys = locs[:, 0:1], locs[:, 1:2]
    ltrb = torch.stack(
        (xs - boxes[:, 0], ys - boxes[:, 1], boxes[:, 2] - xs, boxes[:, 3] - ys), dim=2
    )  # [L, n, 4]
    cx, cy = mass_centres(masks.to(device))
    r = (strides * radius)[:, None]
    x0 = torch.maximum(cx[None] - r, boxes[None, :, 0].expand(n_loc, -1))
    y0 = torch.maximum(cy[None] - r, boxes[None, :, 1].expand(n_loc, -1))
    x1 = torch.minimum(cx[None] + r, boxes[None, :, 2].expand(n_loc, -1))
    y1 = torch.minimum(cy[None] + r, boxes[None, :, 3].expand(n_loc, -1))
    centre = torch.stack((xs - x0, ys - y0, x1 - xs, y1 - ys), dim=2)
    inside = centre.min(dim=2).values > 0
    max_reg = ltrb.max(dim=2).values
    ranges = torch.tensor(SIZE_RANGES, device=device)[levels]  # [L, 2]
    cared = (max_reg >= ranges[:, 0:1]) & (max_reg <= ranges[:, 1:2])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].repeat(n_loc, 1)
    area[~inside] = INF
    area[~cared] = INF
    min_area, inds = area.min(dim=1)
    reg = ltrb[torch.arange(n_loc, device=device), inds] / strides[:, None]
    lab = labels.to(device)[inds].clone()
    lab[min_area == INF] = num_classes
    return FCOSTargets(lab, reg, inds, levels, locs)
