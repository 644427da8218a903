"""CrossVIS loss functions: finite, correct at known points, and decreasing on a tiny batch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from methods.crossvis import losses as L

SOI = torch.tensor([64, 128, 256, 512, 1024])


def _descend(
    params: list[torch.Tensor], loss_fn: Callable[[], torch.Tensor], steps: int = 30, lr: float = 0.1
) -> tuple[float, float]:
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    first = last = float("nan")
    for i in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        assert torch.isfinite(loss), f"step {i}: {loss}"
        loss.backward()
        opt.step()
        first = float(loss.detach()) if i == 0 else first
        last = float(loss.detach())
    return first, last


def test_known_values() -> None:
    assert abs(L.emb_scale(3774) - 11.64) < 0.01
    t = torch.tensor([[2.0, 3.0, 2.0, 3.0]])
    assert float(L.giou_loss(t, t)) < 1e-6
    assert float(L.centerness_targets(t)) == 1.0
    m = torch.ones(1, 4, 4)
    assert float(L.dice_loss(m, m)) < 1e-5
    assert abs(float(L.dice_loss(m, torch.zeros(1, 4, 4))) - 1.0) < 1e-6


def test_detection_losses_decrease() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 40, generator=g).requires_grad_()
    targets = torch.zeros(50, 40)
    targets[torch.arange(10), torch.randint(0, 40, (10,), generator=g)] = 1
    a, b = _descend([logits], lambda: L.focal_loss(logits, targets, 10), lr=1.0)
    assert b < a * 0.5
    tgt = torch.rand(10, 4, generator=g) * 50 + 1
    pred = (torch.rand(10, 4, generator=g) * 50 + 1).requires_grad_()
    ctr = L.centerness_targets(tgt)
    a, b = _descend([pred], lambda: L.giou_loss(pred.relu() + 1e-3, tgt, ctr), lr=50.0)
    assert b < a * 0.75
    c_logits = torch.zeros(10).requires_grad_()
    a, b = _descend([c_logits], lambda: L.centerness_loss(c_logits, ctr, 10), lr=5.0)
    assert b < a


def test_mask_and_crossover_losses_decrease() -> None:
    g = torch.Generator().manual_seed(1)
    feats_a, feats_b = torch.randn(1, 8, 12, 16, generator=g), torch.randn(1, 8, 12, 16, generator=g)
    gt_a = torch.zeros(3, 1, 24, 32)
    gt_a[0, :, 2:10, 2:12] = 1
    gt_a[1, :, 12:22, 4:20] = 1
    gt_a[2, :, 5:15, 18:30] = 1
    gt_b = torch.roll(gt_a, shifts=(1, 2), dims=(2, 3))
    locs_a = torch.tensor([[28.0, 20.0], [48.0, 68.0], [92.0, 40.0]])
    locs_b, levels = locs_a + torch.tensor([8.0, 4.0]), torch.zeros(3, dtype=torch.long)
    pa = (torch.randn(3, 169, generator=g) * 0.3).requires_grad_()
    pb = (torch.randn(3, 169, generator=g) * 0.3).requires_grad_()

    def loss() -> torch.Tensor:
        return L.crossover_loss(pa, locs_b, levels, feats_b, gt_b, pb, locs_a, levels, feats_a, gt_a, SOI)

    a, b = _descend([pa, pb], loss, steps=60, lr=0.5)
    assert b < a - 0.1


def test_reid_loss_decreases() -> None:
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    emb = torch.randn(16, 256, generator=g).requires_grad_()
    cls = nn.Linear(256, 30)
    nn.init.normal_(cls.weight, std=0.01)
    nn.init.constant_(cls.bias, -4.595)
    ids = torch.randint(0, 30, (16,), generator=g)
    a, b = _descend([emb, *cls.parameters()], lambda: L.reid_loss(emb, ids, cls), lr=0.5)
    assert b < a * 0.5
