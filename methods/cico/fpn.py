"""Yolact-style FPN of CiCo (per frame): P3..P5 top-down with ReLU after the 3x3 convs, P6/P7 by
stride-2 convs without ReLU. ``lat_layers``/``pred_layers`` are stored coarsest first, as in the
official state dict (``fpn.lat_layers.0`` takes C5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FPN"]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], features: int = 256, num_downsample: int = 2) -> None:
        super().__init__()
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, features, 1) for c in reversed(in_channels))
        self.pred_layers = nn.ModuleList(nn.Conv2d(features, features, 3, padding=1) for _ in in_channels)
        self.downsample_layers = nn.ModuleList(
            nn.Conv2d(features, features, 3, padding=1, stride=2) for _ in range(num_downsample)
        )

    def forward(self, convouts: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(convouts)
        out: list[torch.Tensor] = [convouts[0]] * n
        x: torch.Tensor | None = None
        for k, lat in enumerate(self.lat_layers):
            j = n - 1 - k
            y = lat(convouts[j])
            if x is not None:
                y = F.interpolate(x, size=convouts[j].shape[-2:], mode="bilinear", align_corners=False) + y
            x = y
            out[j] = x
        for k, pred in enumerate(self.pred_layers):
            j = n - 1 - k
            out[j] = F.relu(pred(out[j]))
        for ds in self.downsample_layers:
            out.append(ds(out[-1]))
        return out
