"""CiCo's clip-level mask branch ("ClipProtoNet"): P3..P5 refined per frame and summed at stride
8, a 3-D ProtoNet over the clip (3 x [Conv3d 3x3x3, BN3d, ReLU], x2 spatial upsampling), then
``proto_conv`` (Conv, BN, ReLU, 1x1 Conv) and a final ReLU -> prototypes ``[H/4, W/4, T, D]``.

``proto_conv`` is 2-D per frame at the official HEAD; code before 2022-03-08 built it with
``Conv3d``/``BatchNorm3d`` (``legacy_3d_proto_conv=True`` builds that layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.cico.head import conv3d_time

__all__ = ["ClipProtoNet", "aligned_bilinear"]


def aligned_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """CondInst's aligned upsampling by an integer factor."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[:, :, : factor * h, : factor * w]


class ClipProtoNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        proto_channels: int,
        mask_dim: int,
        clip_frames: int = 3,
        num_src: int = 3,
        legacy_3d_proto_conv: bool = False,
    ) -> None:
        super().__init__()
        self.clip_frames, self.mask_dim = clip_frames, mask_dim
        self.legacy = legacy_3d_proto_conv
        self.mask_refine = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.BatchNorm2d(in_channels), nn.ReLU()
            )
            for _ in range(num_src)
        )
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(3):
            layers += [nn.Conv3d(c, proto_channels, 3, padding=1), nn.BatchNorm3d(proto_channels), nn.ReLU()]
            c = proto_channels
        self.proto_net = nn.Sequential(*layers)
        if legacy_3d_proto_conv:
            self.proto_conv = nn.Sequential(
                nn.Conv3d(c, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU(), nn.Conv3d(c, mask_dim, 1)
            )
        else:
            self.proto_conv = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, mask_dim, 1)
            )
        self.fast3d = True

    def _seq3d(self, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for m in seq:
            if isinstance(m, nn.Conv3d) and self.fast3d and m.kernel_size[0] == 3:
                x = conv3d_time(m, x)
            elif isinstance(m, nn.ReLU):
                x = F.relu(x)
            else:
                x = m(x)
        return x

    def clip_features(self, fpn_outs: list[torch.Tensor]) -> torch.Tensor:
        """The 3-D ProtoNet's output, upsampled x2: ``[B, C, T, H/4, W/4]`` (before ``proto_conv``)."""
        x = self.mask_refine[0](fpn_outs[0])
        for k in range(1, len(self.mask_refine)):
            y = self.mask_refine[k](fpn_outs[k])
            x = x + aligned_bilinear(y, x.shape[-2] // y.shape[-2])
        _n, c, h, w = x.shape
        t = self.clip_frames
        fold = x.reshape(-1, t, c, h, w).transpose(1, 2)
        y = self._seq3d(self.proto_net, fold)
        return F.relu(F.interpolate(y, scale_factor=(1.0, 2.0, 2.0), mode="trilinear", align_corners=True))

    def forward(self, fpn_outs: list[torch.Tensor]) -> torch.Tensor:
        y = self.clip_features(fpn_outs)
        if self.legacy:
            p = F.relu(self._seq3d(self.proto_conv, y))  # [B, D, T, H, W]
            return p.permute(0, 3, 4, 2, 1)[0].contiguous()
        cp, hp, wp = y.shape[1], y.shape[-2], y.shape[-1]
        y = y.transpose(1, 2).reshape(-1, cp, hp, wp)
        p = F.relu(self.proto_conv(y))  # [T, D, H, W]
        return p.permute(2, 3, 0, 1).contiguous()  # [H, W, T, D]
