"""CrossVIS training: FCOS target assignment on a hand-made image, pair sampling, a short real
training of a narrow CrossVIS on a tiny ToyVIS batch, and DDP (2 gloo processes) == one process
with 2 micro-batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.toyvis import generate_toyvis
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.registry import get_variant_cfg
from methods.crossvis.targets import assign_targets, mass_centres
from methods.crossvis.train import LOSS_NAMES, build_trainer, sample_ref_frame
from tests._ddp import assert_ddp_equals_micro_batches

TINY = "crossvis_tiny.toyvis"
REPO = Path(__file__).resolve().parent.parent
SHAPES = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]  # a 128 x 128 padded input


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    generate_toyvis(root, num_train_videos=2, num_valid_videos=1, frames=(5, 6), progress=False)
    return root


def _box_mask(x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    m = torch.zeros(128, 128, dtype=torch.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _positives(t: object, level: int) -> dict[tuple[int, int], int]:
    lab, lv, loc = t.labels, t.levels, t.locations  # type: ignore[attr-defined]
    sel = (lv == level) & (lab != 6)
    return {(int(x), int(y)): int(c) for (x, y), c in zip(loc[sel].tolist(), lab[sel].tolist(), strict=True)}


def test_target_assignment_levels_and_centre_sampling() -> None:
    # a 48-px box (class 1) -> P3 only (max ltrb <= 64), centre region 31.5 +- 12 -> x, y in {20, 28, 36};
    # the whole image (class 4) -> centre 63.5 +- 12 at P3 has max ltrb 76 > 64; at P4 63.5 +- 24
    # -> {40, 56, 72} with max ltrb in [64, 128]; nothing at P5 (max ltrb < 128) or above
    boxes = torch.tensor([[8.0, 8, 56, 56], [0, 0, 128, 128]])
    masks = torch.stack((_box_mask(8, 8, 56, 56), _box_mask(0, 0, 128, 128)))
    t = assign_targets(SHAPES, boxes, torch.tensor([1, 4]), masks, num_classes=6)
    assert _positives(t, 0) == {(x, y): 1 for x in (20, 28, 36) for y in (20, 28, 36)}
    assert _positives(t, 1) == {(x, y): 4 for x in (40, 56, 72) for y in (40, 56, 72)}
    assert all(not _positives(t, lvl) for lvl in (2, 3, 4))
    i = int(((t.locations[:, 0] == 20) & (t.locations[:, 1] == 20) & (t.levels == 0)).nonzero())
    assert t.reg[i].tolist() == [1.5, 1.5, 4.5, 4.5]  # ltrb (12, 12, 36, 36) / stride 8
    assert int(t.gt_inds[i]) == 0
    j = int(((t.locations[:, 0] == 40) & (t.locations[:, 1] == 56) & (t.levels == 1)).nonzero())
    assert t.reg[j].tolist() == [40 / 16, 56 / 16, 88 / 16, 72 / 16]


def test_target_assignment_mass_centre_and_min_area() -> None:
    # the centre is the mask's mass centre, not the box centre: an L-shaped mass in the top-left
    m = _box_mask(8, 8, 16, 56) | _box_mask(8, 8, 56, 16)
    cx, cy = mass_centres(m[None])
    assert float(cx) == pytest.approx(15776 / 704) and float(cy) == pytest.approx(float(cx))
    t = assign_targets(SHAPES, torch.tensor([[8.0, 8, 56, 56]]), torch.tensor([2]), m[None], num_classes=6)
    # 22.4 +- 12: x, y in {12, 20, 28} (the box centre 32 would give {20, 28, 36})
    assert _positives(t, 0) == {(x, y): 2 for x in (12, 20, 28) for y in (12, 20, 28)}
    # two nested boxes eligible at the same location and level: the smaller area wins
    boxes = torch.tensor([[12.0, 12, 52, 52], [20, 20, 44, 44]])
    masks = torch.stack((_box_mask(12, 12, 52, 52), _box_mask(20, 20, 44, 44)))
    t = assign_targets(SHAPES, boxes, torch.tensor([0, 3]), masks, num_classes=6)
    pos = _positives(t, 0)
    assert pos[(28, 28)] == 3 and pos[(36, 36)] == 3
    empty = assign_targets(SHAPES, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64),
                           torch.zeros(0, 128, 128), num_classes=6)  # fmt: skip
    assert bool((empty.labels == 6).all()) and empty.labels.numel() == 256 + 64 + 16 + 4 + 1


def test_pair_sampling_window() -> None:
    rng = np.random.default_rng(0)
    annotated = list(range(0, 60, 2))
    refs = [sample_ref_frame(30, annotated, rng) for _ in range(400)]
    assert all(abs(r - 30) <= 20 and r != 30 and r % 2 == 0 for r in refs)
    assert min(refs) == 10 and max(refs) == 50
    assert sample_ref_frame(4, [4], rng) == 4
    assert sample_ref_frame(4, [4, 40], rng) == 4  # 36 frames apart: outside the window


def test_losses_finite_and_decreasing_on_a_tiny_batch(toy: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: more threads only contend on a busy machine
    try:
        _train_a_few_steps(toy)
    finally:
        torch.set_num_threads(threads)


def _train_a_few_steps(toy: Path) -> None:
    torch.manual_seed(0)
    trainer = build_trainer(get_variant_cfg(TINY), width=32, augment=False)
    data = trainer.dataset(YTVISDataset.load(toy / "annotations/train.json", toy / "train/JPEGImages"))
    model = trainer.build_model()
    trainer.set_train_mode(model, 2)
    batch = trainer.collate([data.get(0, np.random.default_rng(0))])
    assert batch.frames.shape[0] == 2 and batch.frames.shape[2] % 32 == 0
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    totals = []
    for _ in range(12):
        losses = trainer.losses(model, batch, torch.device("cpu"))
        assert set(losses) == set(LOSS_NAMES)
        assert all(bool(torch.isfinite(v)) for v in losses.values())
        assert all(float(v.detach()) > 0 for v in losses.values())  # every term is active on this batch
        total = sum(losses.values(), torch.zeros(()))
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(float(total.detach()))
    assert min(totals[-3:]) < 0.9 * totals[0], totals
    # the state dict keeps the official layout, the re-id classifier last
    keys = list(trainer.export_state_dict(model))
    assert keys[-2:] == ["cls.weight", "cls.bias"] and "controller.weight" in keys


@pytest.mark.numeric  # DDP vs one process with micro-batches at rtol 1e-4
def test_ddp_two_gloo_processes_equal_one_process_with_two_micro_batches(toy: Path, tmp_path: Path) -> None:
    assert_ddp_equals_micro_batches(TINY, toy / "annotations/train.json", tmp_path, width=32)


def test_small_variant_input_size_options() -> None:
    from methods.crossvis.small import build

    cfg = get_variant_cfg(TINY)
    assert cfg.input_size is not None
    ad = build(cfg)
    assert (ad.min_size, ad.max_size) == (cfg.input_size.min_size, cfg.input_size.max_size)
    sized = build(cfg, min_size="64", max_size="128")
    assert (sized.min_size, sized.max_size) == (64, 128)
    with pytest.raises(InputError, match="unknown CrossVIS option"):
        build(cfg, size=3)


def test_official_schedule_has_no_weight_decay_on_norms() -> None:
    """detectron2's WEIGHT_DECAY_NORM = 0: the heads' GroupNorm parameters get no decay."""
    from methods.crossvis.small import TinyCrossVISConfig, TinyCrossVISNet

    s = build_trainer(get_variant_cfg("crossvis_r50.ytvis2019")).schedule(1000, 16)
    assert (s.optimizer, s.weight_decay, s.norm_weight_decay) == ("sgd", 1e-4, 0.0)
    net = TinyCrossVISNet(TinyCrossVISConfig(num_classes=6))
    plain, norm = s.build_optimizer(net).param_groups
    gn = net.proposal_generator.fcos_head.cls_tower[1]
    assert isinstance(gn, torch.nn.GroupNorm)
    assert {id(gn.weight), id(gn.bias)} <= {id(p) for p in norm["params"]} and norm["weight_decay"] == 0.0
    assert plain["weight_decay"] == 1e-4 and len(plain["params"]) + len(norm["params"]) == len(
        [p for p in net.parameters() if p.requires_grad]
    )
