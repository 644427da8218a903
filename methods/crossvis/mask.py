"""CondInst mask branch and dynamic mask head (as used by CrossVIS at test time).

The official dynamic head runs every instance's three 1x1 layers as one grouped conv
(``groups = n_inst``) on ``[1, n*10, H, W]``; on CPU that is slow. :func:`dynamic_mask_logits`
computes the same thing as batched matrix products (``[n, out, in] @ [n, in, HW]``): only the
float summation order differs (~1e-6 on the logits). :func:`dynamic_mask_logits_grouped` is the
official formulation, kept for the equivalence test and for speed comparisons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DynamicMaskHead",
    "MaskBranch",
    "aligned_bilinear",
    "dynamic_mask_logits",
    "dynamic_mask_logits_grouped",
    "parse_dynamic_params",
]

#: 10 -> 8 -> 8 -> 1 (2 relative coordinates + 8 mask features in).
WEIGHT_NUMS = (80, 64, 8)
BIAS_NUMS = (8, 8, 1)
NUM_PARAMS = sum(WEIGHT_NUMS) + sum(BIAS_NUMS)  # 169


def aligned_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """AdelaiDet's corner-aligned upsampling (not ``F.interpolate``): replicate-pad right/bottom
    by 1, bilinear with align_corners to ``(f*h+1, f*w+1)``, replicate-pad left/top by ``f//2``,
    crop to ``(f*h, f*w)``. Kept exactly because the masks' half-pixel placement depends on it."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[:, :, : factor * h, : factor * w]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class MaskBranch(nn.Module):
    """P3/P4/P5 -> refine (conv-BN-ReLU) -> aligned upsample + sum -> 4 conv-BN-ReLU -> 1x1 to 8."""

    out_stride = 8

    def __init__(self, in_channels: int = 256, channels: int = 128, out_channels: int = 8) -> None:
        super().__init__()
        self.refine = nn.ModuleList([_conv_bn_relu(in_channels, channels) for _ in range(3)])
        tower: list[nn.Module] = [_conv_bn_relu(channels, channels) for _ in range(4)]
        tower.append(nn.Conv2d(channels, out_channels, 1))
        self.tower = nn.Sequential(*tower)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.refine[0](feats[0])
        for i in (1, 2):
            xp = self.refine[i](feats[i])
            x = x + aligned_bilinear(xp, x.shape[-2] // xp.shape[-2])
        return self.tower(x)


class DynamicMaskHead(nn.Module):
    """Buffers only (the parameters are predicted): ``sizes_of_interest`` and BoxInst's ``_iter``."""

    sizes_of_interest: torch.Tensor
    _iter: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("sizes_of_interest", torch.tensor([64, 128, 256, 512, 1024]))
        self.register_buffer("_iter", torch.zeros(1))


def parse_dynamic_params(params: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``[n, 169]`` -> weights ``[n, out, in]`` and biases ``[n, out]`` of the three layers
    (order in the vector: w1 w2 w3 b1 b2 b3; weights out x in)."""
    n = params.shape[0]
    parts = torch.split(params, [*WEIGHT_NUMS, *BIAS_NUMS], dim=1)
    shapes = ((8, 10), (8, 8), (1, 8))
    weights = [parts[i].reshape(n, *shapes[i]) for i in range(3)]
    biases = [parts[3 + i].reshape(n, shapes[i][0]) for i in range(3)]
    return weights, biases


def _relative_coords(
    locations: torch.Tensor, levels: torch.Tensor, soi: torch.Tensor, h: int, w: int, stride: int
) -> torch.Tensor:
    """``[n, 2, h*w]``: (instance location - grid location) / soi[level], (dx, dy)."""
    from methods.crossvis.head import compute_locations

    grid = compute_locations(h, w, stride, locations.device)
    rel = (locations.reshape(-1, 1, 2) - grid.reshape(1, -1, 2)).permute(0, 2, 1).float()
    return rel / soi.float()[levels].reshape(-1, 1, 1)


def dynamic_mask_logits(
    mask_feats: torch.Tensor,
    params: torch.Tensor,
    locations: torch.Tensor,
    levels: torch.Tensor,
    soi: torch.Tensor,
    stride: int = 8,
) -> torch.Tensor:
    """Batched dynamic heads: ``mask_feats [1, 8, H, W]`` -> logits ``[n, 1, H, W]`` (stride 8)."""
    n = params.shape[0]
    _, c, h, w = mask_feats.shape
    rel = _relative_coords(locations, levels, soi, h, w, stride).to(mask_feats.dtype)
    x = torch.cat((rel, mask_feats.reshape(1, c, h * w).expand(n, c, h * w)), dim=1)
    weights, biases = parse_dynamic_params(params)
    for i, (wt, b) in enumerate(zip(weights, biases, strict=True)):
        x = torch.baddbmm(b.unsqueeze(2), wt, x)
        if i < len(weights) - 1:
            x = F.relu_(x)
    return x.reshape(n, 1, h, w)


def dynamic_mask_logits_grouped(
    mask_feats: torch.Tensor,
    params: torch.Tensor,
    locations: torch.Tensor,
    levels: torch.Tensor,
    soi: torch.Tensor,
    stride: int = 8,
) -> torch.Tensor:
    """The official formulation (one grouped 1x1 conv per layer); same result as
    :func:`dynamic_mask_logits` up to summation order."""
    n = params.shape[0]
    _, c, h, w = mask_feats.shape
    rel = _relative_coords(locations, levels, soi, h, w, stride).to(mask_feats.dtype)
    x = torch.cat((rel, mask_feats.reshape(1, c, h * w).expand(n, c, h * w)), dim=1)
    x = x.reshape(1, -1, h, w)
    weights, biases = parse_dynamic_params(params)
    for i, (wt, b) in enumerate(zip(weights, biases, strict=True)):
        x = F.conv2d(x, wt.reshape(-1, wt.shape[2], 1, 1), b.reshape(-1), groups=n)
        if i < len(weights) - 1:
            x = F.relu(x)
    return x.reshape(n, 1, h, w)
