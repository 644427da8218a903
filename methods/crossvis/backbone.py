"""CrossVIS backbone: MSRA/C2-style ResNet (FrozenBN, stride on the 1x1) + FPN P3-P7.

Attribute names follow the official state dict (``backbone.bottom_up.res2.0.conv1.norm.weight``,
``backbone.fpn_lateral3.weight``, ``backbone.top_block.p6.weight``), so no renames are needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RESNET_DEPTHS", "FPNBackbone", "FrozenBatchNorm2d", "ResNet"]

#: Bottleneck blocks per stage (res2..res5).
RESNET_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (no num_batches_tracked).

    At inference detectron2's FrozenBN calls the fused ``F.batch_norm`` (eval mode); so do we, for
    the same float32 rounding (``x * scale + shift`` differs in the last bits).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class ConvNorm(nn.Conv2d):
    """A bias-free conv followed by a FrozenBN kept as its ``norm`` child (detectron2's layout)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.norm = FrozenBatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class Bottleneck(nn.Module):
    """1x1 (carries the stride: STRIDE_IN_1X1) -> 3x3 -> 1x1, residual, ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int) -> None:
        super().__init__()
        self.shortcut = ConvNorm(cin, cout, 1, stride) if cin != cout else None
        self.conv1 = ConvNorm(cin, mid, 1, stride)
        self.conv2 = ConvNorm(mid, mid, 3, 1, 1)
        self.conv3 = ConvNorm(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out)


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, 64, 7, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet(nn.Module):
    """Returns res3, res4, res5 (strides 8, 16, 32; 512, 1024, 2048 channels)."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth {depth}: expected one of {sorted(RESNET_DEPTHS)}")
        self.stem = Stem()
        cin, mid = 64, 64
        for i, n in enumerate(RESNET_DEPTHS[depth]):
            cout = mid * 4
            blocks = [Bottleneck(cin if b == 0 else cout, mid, cout, (2 if i > 0 and b == 0 else 1))
                      for b in range(n)]  # fmt: skip
            self.add_module(f"res{i + 2}", nn.Sequential(*blocks))
            cin, mid = cout, mid * 2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            if name != "res2":
                outs.append(x)
        return outs


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2(P5) (P5, not C5: in == out channels), P7 = conv3x3/2(ReLU(P6))."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, 2, 1)
        self.p7 = nn.Conv2d(channels, channels, 3, 2, 1)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPNBackbone(nn.Module):
    """ResNet + FPN (sum fusion, nearest x2 top-down, no norm) -> [P3, P4, P5, P6, P7]."""

    size_divisibility = 32
    fpn_lateral3: nn.Conv2d
    fpn_lateral4: nn.Conv2d
    fpn_lateral5: nn.Conv2d
    fpn_output3: nn.Conv2d
    fpn_output4: nn.Conv2d
    fpn_output5: nn.Conv2d

    def __init__(self, depth: int = 50, channels: int = 256) -> None:
        super().__init__()
        # registration order = the official state-dict order (FPN convs, top block, bottom-up)
        for lvl, cin in zip((3, 4, 5), (512, 1024, 2048), strict=True):
            self.add_module(f"fpn_lateral{lvl}", nn.Conv2d(cin, channels, 1))
            self.add_module(f"fpn_output{lvl}", nn.Conv2d(channels, channels, 3, 1, 1))
        self.top_block = LastLevelP6P7(channels)
        self.bottom_up = ResNet(depth)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.bottom_up(x)
        prev = self.fpn_lateral5(c5)
        p5 = self.fpn_output5(prev)
        prev = self.fpn_lateral4(c4) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
        p4 = self.fpn_output4(prev)
        prev = self.fpn_lateral3(c3) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
        p3 = self.fpn_output3(prev)
        return [p3, p4, p5, *self.top_block(p5)]
