"""CiCo's clip-level prediction head (CPH), anchors and box decoding.

One head shared by the five FPN levels. The box/centerness/mask-coefficient tower
(``bbox_extra``) and the track tower (``track_extra``) are 3x3x3 ``Conv3d`` stacks over
``(T, h, w)`` of the clip (zero padding in time); the class tower (``conf_extra``) is 2-D per frame;
the final layers are 2-D per frame. Each frame-anchor regresses ``T`` boxes, one per clip frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClipPredictionModule", "HeadOutput", "conv3d_time", "decode", "make_priors"]

HeadOutput = dict[str, torch.Tensor]
ASPECT_RATIOS = (1.0, 0.5, 2.0)


def conv3d_time(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 3x3x3 ``Conv3d`` (padding 1) on ``[B, C, T, H, W]`` computed as one 2-D convolution.

    Output frame ``t`` is ``sum_k W[:, :, k] * x[t + k - 1]`` (zero frames outside the clip). The
    ``T`` output frames are computed as a batch of 2-D convolutions over the channel-stacked
    neighbour frames, which is much faster on CPU than PyTorch's native ``conv3d`` and gives the
    same result up to float summation order.
    """
    b, c, t, h, w = x.shape
    kt = conv.kernel_size[0]
    weight = conv.weight  # [O, C, kt, 3, 3]
    if kt == 1:
        y = F.conv2d(x.transpose(1, 2).reshape(b * t, c, h, w), weight[:, :, 0], conv.bias, padding=1)
        return y.view(b, t, -1, h, w).transpose(1, 2)
    pad = kt // 2
    frames = x.transpose(1, 2)  # [B, T, C, H, W]
    zeros = frames.new_zeros(b, pad, c, h, w)
    padded = torch.cat([zeros, frames, zeros], 1)
    stacked = torch.cat([padded[:, k : k + t] for k in range(kt)], 2)  # [B, T, kt*C, H, W]
    w2 = weight.permute(0, 2, 1, 3, 4).reshape(weight.shape[0], kt * c, *weight.shape[-2:])
    y = F.conv2d(stacked.reshape(b * t, kt * c, h, w), w2, conv.bias, padding=conv.padding[1:])
    return y.view(b, t, -1, h, w).transpose(1, 2)


def _tower(n: int, ch: int, three_d: bool, group_norm: bool = False) -> nn.Sequential:
    """``n`` x (3x3(x3) conv, ReLU) as official; ``group_norm`` (the small variant's option, not
    official) puts GroupNorm between each conv and its ReLU (32 groups, or gcd(32, channels))."""
    layers: list[nn.Module] = []
    for _ in range(n):
        layers.append(nn.Conv3d(ch, ch, 3, padding=1) if three_d else nn.Conv2d(ch, ch, 3, padding=1))
        if group_norm:
            layers.append(nn.GroupNorm(math.gcd(32, ch), ch))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _run_tower(tower: nn.Sequential, x: torch.Tensor, fast3d: bool) -> torch.Tensor:
    for m in tower:
        if isinstance(m, nn.Conv3d) and fast3d:
            x = conv3d_time(m, x)
        elif isinstance(m, nn.ReLU):
            x = F.relu(x)
        elif isinstance(m, nn.GroupNorm):
            x = m(x.contiguous())  # CPU GroupNorm on channels_last input is ~10x slower
        else:
            x = m(x)
    return x


def make_priors(
    level_sizes: list[tuple[int, int]], device: torch.device | None = None, scales: tuple[float, ...] = (1.0,)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchors ``[N, 4]`` (cx, cy, w, h, normalised) and their level ``[N]``: per level, row-major
    over ``(j, i)``, 3 aspect ratios per location, a 3-cell box (computed in float64 as Python
    does, then stored as float32). ``scales`` (the small variant's ``anchor_scales`` option, not
    official) gives each location ``3 * len(scales)`` anchors, the 3-cell box times each scale
    (scale-major, then aspect ratio: the order of the head's output channels)."""
    priors, levels = [], []
    a = 3 * len(scales)
    for idx, (h, w) in enumerate(level_sizes):
        j, i = torch.meshgrid(
            torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
        )
        cx = ((i + 0.5) / w).reshape(-1, 1).expand(-1, a)
        cy = ((j + 0.5) / h).reshape(-1, 1).expand(-1, a)
        ars = torch.tensor([math.sqrt(r) for r in ASPECT_RATIOS], dtype=torch.float64)
        cells = torch.cat([3 * s * ars for s in scales])  # scale 1.0: exactly the official 3 * ars
        inv = torch.cat([3 * s / ars for s in scales])
        pw = (cells / w).expand(h * w, a)
        ph = (inv / h).expand(h * w, a)
        priors.append(torch.stack([cx, cy, pw, ph], -1).reshape(-1, 4))
        levels.append(torch.full((h * w * a,), float(idx), dtype=torch.float64))
    return torch.cat(priors).float().to(device), torch.cat(levels).float().to(device)


def decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD decoding (variances 0.1, 0.2) of ``[n, 4]`` deltas against ``[n, 4]`` priors -> x1y1x2y2."""
    boxes = torch.cat(
        (priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:], priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)), 1
    )
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


class ClipPredictionModule(nn.Module):
    """Towers and final layers; see the module docstring. ``forward`` takes the FPN levels of one
    clip (``[T, F, h, w]`` each) and returns ``loc [T, N, 4T]``, ``centerness [T, N, 1]``,
    ``conf [T, N, C]`` (logits), ``mask_coeff [T, N, D]`` (tanh), ``track [T, N, 64]`` (unit),
    ``priors [N, 4]`` and ``prior_levels [N]``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mask_dim: int,
        clip_frames: int = 3,
        track_dim: int = 64,
        tower_layers: int = 4,
        tower_norm: bool = False,
        anchor_scales: tuple[float, ...] = (1.0,),
    ) -> None:
        super().__init__()
        self.anchor_scales = tuple(anchor_scales)
        self.clip_frames, self.num_priors = clip_frames, 3 * len(self.anchor_scales)
        a = self.num_priors
        self.bbox_layer = nn.Conv2d(in_channels, a * 4 * clip_frames, 3, padding=1)
        self.centerness_layer = nn.Conv2d(in_channels, a, 3, padding=1)
        self.conf_layer = nn.Conv2d(in_channels, a * num_classes, 3, padding=1)
        self.track_layer = nn.Conv2d(in_channels, a * track_dim, 3, padding=1)
        self.mask_layer = nn.Conv2d(in_channels, a * mask_dim, 3, padding=1)
        self.bbox_extra = _tower(tower_layers, in_channels, True, tower_norm)
        self.conf_extra = _tower(tower_layers, in_channels, False, tower_norm)
        self.track_extra = _tower(tower_layers, in_channels, True, tower_norm)
        self.fast3d = True
        self._prior_cache: dict[tuple[tuple[int, int], ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def priors(self, sizes: list[tuple[int, int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(sizes)
        if key not in self._prior_cache or self._prior_cache[key][0].device != device:
            self._prior_cache[key] = make_priors(sizes, device, self.anchor_scales)
        return self._prior_cache[key]

    def forward(self, fpn_outs: list[torch.Tensor]) -> HeadOutput:
        t = self.clip_frames
        keys = ("loc", "centerness", "conf", "mask_coeff", "track")
        preds: dict[str, list[torch.Tensor]] = {k: [] for k in keys}

        def flat(y: torch.Tensor) -> torch.Tensor:
            return y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, y.shape[1] // self.num_priors)

        for x in fpn_outs:
            n, c, h, w = x.shape
            x_fold = x.reshape(-1, t, c, h, w).transpose(1, 2)
            bbox_x = _run_tower(self.bbox_extra, x_fold, self.fast3d).transpose(1, 2).reshape(n, c, h, w)
            preds["loc"].append(flat(self.bbox_layer(bbox_x)))
            preds["centerness"].append(flat(self.centerness_layer(bbox_x).sigmoid()))
            conf_x = _run_tower(self.conf_extra, x, self.fast3d)
            preds["conf"].append(flat(self.conf_layer(conf_x)))
            preds["mask_coeff"].append(flat(self.mask_layer(bbox_x).tanh()))
            track_x = _run_tower(self.track_extra, x_fold, self.fast3d).transpose(1, 2).reshape(n, c, h, w)
            preds["track"].append(F.normalize(flat(self.track_layer(track_x)), dim=-1))
        out = {k: torch.cat(v, 1) for k, v in preds.items()}
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in fpn_outs]
        out["priors"], out["prior_levels"] = self.priors(sizes, fpn_outs[0].device)
        return out
