"""CiCo training: losses on hand-made inputs, matching, clip sampling, data pipeline, init
inflation, and a short real training on a tiny ToyVIS batch."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.data.toyvis import generate_toyvis
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.registry import get_variant_cfg
from methods.cico.head import decode, make_priors
from methods.cico.losses import (
    ClipTargets,
    LossConfig,
    cico_losses,
    diou_loss,
    encode,
    fill_missing_boxes,
    match_clip_frame,
    ohem_negatives,
    sigmoid_focal_loss,
    track_loss,
)
from methods.cico.train import build_trainer, inflate_coco_weights, init_weights, sample_ref_frames

TINY = "cico_yolact_tiny.toyvis"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    generate_toyvis(root, num_train_videos=3, num_valid_videos=1, frames=(6, 8), progress=False)
    return root


def _train_ds(toy: Path) -> YTVISDataset:
    return YTVISDataset.load(toy / "annotations/train.json", toy / "train/JPEGImages")


# ---- boxes ---------------------------------------------------------------------------------------
def test_encode_decode_roundtrip_and_diou_zero_on_identical_boxes() -> None:
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.9, 0.7]])
    priors = torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.3]])
    assert torch.allclose(decode(encode(boxes, priors), priors), boxes, atol=1e-6)
    assert torch.allclose(diou_loss(boxes, boxes), torch.zeros(2), atol=1e-5)  # eps 1e-7 in the union
    # disjoint boxes: IoU 0 and a centre-distance penalty -> loss > 1
    far = torch.tensor([[0.0, 0.0, 0.1, 0.1]]), torch.tensor([[0.8, 0.8, 0.9, 0.9]])
    d2, c2 = 0.8**2 * 2, 0.9**2 * 2
    assert diou_loss(*far).item() == pytest.approx(1 + d2 / c2, rel=1e-5)


def test_fill_missing_boxes_takes_the_nearest_frame_earlier_on_ties() -> None:
    b = torch.zeros(1, 5, 4)
    b[0, 1] = torch.tensor([0.1, 0.1, 0.2, 0.2])
    b[0, 3] = torch.tensor([0.5, 0.5, 0.6, 0.6])
    f = fill_missing_boxes(b)
    assert torch.equal(f[0, 0], b[0, 1]) and torch.equal(f[0, 2], b[0, 1])  # tie 1 vs 3 -> frame 1
    assert torch.equal(f[0, 4], b[0, 3])
    assert torch.equal(fill_missing_boxes(torch.zeros(1, 3, 4)), torch.zeros(1, 3, 4))


# ---- matching ------------------------------------------------------------------------------------
def _priors() -> torch.Tensor:
    return make_priors([(4, 4), (2, 2)])[0]


def test_match_positive_negative_neutral_and_all_frame_targets() -> None:
    pri = _priors()
    pb = pri[5]  # an anchor of the 4x4 level
    box = torch.cat([pb[:2] - pb[2:] / 2, pb[:2] + pb[2:] / 2]).clamp(0, 1)
    gt = torch.stack([box, box + 0.02, box - 0.02]).unsqueeze(0)  # [1, T=3, 4]
    m = match_clip_frame(gt, torch.tensor([2]), pri, t=0)
    assert m.conf[5] == 2
    assert set(m.conf.unique().tolist()) <= {-1, 0, 2}
    assert (m.conf == 0).sum() > 0
    # a positive regresses the object's boxes in all three frames against its prior
    for t in range(3):
        assert torch.allclose(decode(m.loc[5, 4 * t : 4 * t + 4][None], pb[None])[0], gt[0, t], atol=1e-5)


def test_match_forces_the_best_anchor_and_empty_frames_stay_neutral() -> None:
    pri = _priors()
    tiny = torch.tensor([[[0.50, 0.50, 0.52, 0.52]] * 3])  # no anchor reaches IoU 0.5
    m = match_clip_frame(tiny, torch.tensor([1]), pri, t=1)
    assert (m.conf == 1).sum() == 1
    absent = torch.zeros(1, 3, 4)
    m = match_clip_frame(absent, torch.tensor([1]), pri, t=0)
    assert (m.conf == -1).all()  # official: a frame without objects gives no negatives


# ---- classification ------------------------------------------------------------------------------
def test_focal_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5])
    target = torch.tensor([1.0, 0.0, 0.0])
    expect = 0.0
    for x, y in zip(logits.tolist(), target.tolist(), strict=True):
        p = 1 / (1 + math.exp(-x))
        pt = p if y else 1 - p
        alpha = 0.25 if y else 0.75
        expect += -alpha * (1 - pt) ** 2 * math.log(pt)
    assert sigmoid_focal_loss(logits, target).item() == pytest.approx(expect, rel=1e-5)


def test_center_bce_takes_any_target_and_keeps_pytorch_s_finite_gradient() -> None:
    """The centerness BCE (targets may be negative: official) has PyTorch's forward and backward,
    finite where the probability is exactly 0 or 1 (autograd through the logs gave NaN there: a
    bf16 sigmoid saturates to 1 soon), in float32 under bf16 autocast."""
    from methods.cico.losses import _bce_any_target

    p = torch.tensor([0.0, 1e-30, 0.3, 0.9, 1.0, 1.0], requires_grad=True)
    t = torch.tensor([0.4, 0.2, 0.7, -0.5, 0.4, 1.0])
    loss = _bce_any_target(p, t)
    loss.sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and torch.isfinite(loss).all()
    pd = p.detach()
    torch.testing.assert_close(p.grad, (pd - t) / ((1 - pd) * pd).clamp(min=1e-12))
    ref = -(t * torch.log(pd).clamp(min=-100) + (1 - t) * torch.log1p(-pd).clamp(min=-100))
    torch.testing.assert_close(loss.detach(), ref)
    z = (torch.randn(200, generator=torch.Generator().manual_seed(0)) * 10).requires_grad_()
    tt = torch.rand(200, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (lambda q: F.binary_cross_entropy(q, tt, reduction="none"), lambda q: _bce_any_target(q, tt)):
        zz = z.detach().clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            q = torch.sigmoid(zz @ torch.eye(200))
            out = fn(q)
        assert out.dtype == torch.float32
        out.sum().backward()
        grads.append(zz.grad)
    assert (q == 1).any()  # saturated in bf16
    assert torch.equal(grads[0], grads[1])


@pytest.mark.numeric  # two code paths compared at a tight bound
def test_windowed_yolact_mask_bce_equals_the_full_map_bce() -> None:
    """The mask loss scores only the union of each GT object's crop windows; outside them the
    official full-map BCE is 100 per GT pixel (the mask is exactly 0 there) with no gradient.
    Same sums and gradients (float64), GT pixels outside the crops included."""
    from methods.cico.losses import _yolact_bce_windowed
    from methods.cico.masks import expand_boxes, yolact_masks

    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        h, w, t, d, n = 48, 80, 3, 32, 12
        proto = torch.randn(h, w, t, d, dtype=torch.float64, generator=gen).requires_grad_()
        coeff = (0.5 * torch.randn(n, d, dtype=torch.float64, generator=gen)).requires_grad_()
        group = torch.randint(0, 4, (n,), generator=gen)
        c = torch.rand(4, 2, generator=gen) * 0.8 + 0.1
        wh = torch.rand(4, 2, generator=gen) * 0.3 + 0.02
        boxes = torch.cat([c - wh / 2, c + wh / 2], 1)[group] + 0.005 * torch.randn(n, 4, generator=gen)
        crop = expand_boxes(boxes.double(), 1.5, 0.1)
        mask_t = (torch.rand(n, t, h, w, generator=gen) < 0.05).double()  # also outside the crops
        full = F.binary_cross_entropy(yolact_masks(proto, coeff, crop), mask_t, reduction="none").sum(
            (-1, -2)
        )
        win = _yolact_bce_windowed(proto, coeff, crop, mask_t, group)
        assert torch.allclose(full, win, rtol=1e-12, atol=1e-9)
        g_full = torch.autograd.grad(full.sum(), (proto, coeff))
        g_win = torch.autograd.grad(win.sum(), (proto, coeff))
        for a, b in zip(g_full, g_win, strict=True):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_ohem_picks_the_hardest_negatives_at_three_to_one() -> None:
    # one positive, one neutral, eight negatives with known foreground confidences
    fg = [0.9, 0.1, 0.8, 0.05, 0.3, 0.7, 0.2, 0.6, 0.95, 0.4]
    conf_t = torch.tensor([1, -1, 0, 0, 0, 0, 0, 0, 0, 0])
    logits = torch.stack([torch.tensor([0.0, math.log(p / (1 - p)), -30.0]) for p in fg])
    neg = ohem_negatives(logits, conf_t, ratio=3)
    assert neg.sum() == 3
    assert set(torch.nonzero(neg).reshape(-1).tolist()) == {2, 5, 8}  # 0.8, 0.7, 0.95; not the pos/neutral


def test_track_loss_is_small_for_consistent_embeddings() -> None:
    e = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]), dim=-1)
    good = track_loss(e, torch.tensor([1, 1, 2]))
    bad = track_loss(e, torch.tensor([1, 2, 1]))
    assert good.item() < 1e-6 < bad.item()


# ---- all losses ----------------------------------------------------------------------------------
def _fake_outputs(targets: list[ClipTargets], cfg: LossConfig, perfect: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pri, lv = make_priors([(4, 4), (2, 2)])
    n, t, bs = pri.shape[0], cfg.clip_frames, len(targets)
    loc = torch.randn(bs * t, n, 4 * t, generator=g)
    if perfect:
        for b, tg in enumerate(targets):
            for j in range(t):
                m = match_clip_frame(fill_missing_boxes(tg.boxes), tg.labels, pri, j)
                pos = m.conf > 0
                loc[b * t + j, pos] = m.loc[pos]
    return {
        "loc": loc.requires_grad_(),
        "centerness": torch.rand(bs * t, n, 1, generator=g).clamp(0.05, 0.95).requires_grad_(),
        "conf": torch.randn(bs * t, n, 6, generator=g).requires_grad_(),
        "mask_coeff": torch.randn(bs * t, n, 8, generator=g).tanh().requires_grad_(),
        "track": F.normalize(torch.randn(bs * t, n, 16, generator=g), dim=-1).requires_grad_(),
        "proto": torch.rand(8, 8, bs * t, 8, generator=g).requires_grad_(),
        "priors": pri,
        "prior_levels": lv,
    }


def _targets() -> list[ClipTargets]:
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [0.12, 0.1, 0.52, 0.6], [0.0, 0.0, 0.0, 0.0]]])
    masks = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    masks[0, :2, 4:18, 4:16] = 1
    return [ClipTargets(boxes, torch.tensor([3]), torch.tensor([7]), masks)]


def test_perfect_boxes_give_zero_box_losses_and_all_terms_are_finite() -> None:
    cfg = LossConfig(clip_frames=3, mask_type="yolact")
    tg = _targets()
    perfect = cico_losses(_fake_outputs(tg, cfg, True), tg, cfg)
    noisy = cico_losses(_fake_outputs(tg, cfg, False), tg, cfg)
    assert set(perfect) == {"B", "BIoU", "center", "M_bce", "C_focal", "T"}
    assert perfect["B"].item() < 1e-6 and perfect["BIoU"].item() < 1e-5
    assert noisy["B"].item() > 0.1 and noisy["BIoU"].item() > 0.01
    total = torch.stack(list(noisy.values())).sum()
    assert torch.isfinite(total)
    total.backward()


def test_softmax_ohem_and_condinst_variant_of_the_losses() -> None:
    cfg = LossConfig(clip_frames=3, mask_type="condinst", focal=False)
    tg = _targets()
    out = _fake_outputs(tg, cfg, False)
    out["conf"] = torch.randn(out["conf"].shape[0], out["conf"].shape[1], 7).requires_grad_()
    out["mask_coeff"] = torch.randn(out["loc"].shape[0], out["loc"].shape[1], 161).tanh().requires_grad_()
    losses = cico_losses(out, tg, cfg)
    assert "C" in losses and "C_focal" not in losses
    assert all(torch.isfinite(v) for v in losses.values())
    # the class and track weights (trainer options class_alpha / track_alpha) scale only their terms
    heavy = cico_losses(out, tg, replace(cfg, class_alpha=10.0, track_alpha=2.5))
    assert losses["C"].item() > 0 and losses["T"].item() > 0
    assert torch.allclose(heavy["C"], 2 * losses["C"]) and torch.allclose(heavy["T"], 0.5 * losses["T"])
    assert all(torch.equal(heavy[k], losses[k]) for k in losses if k not in ("C", "T"))


# ---- data ----------------------------------------------------------------------------------------
def test_reference_frames_are_the_official_offsets() -> None:
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(50):
        refs = sample_ref_frames(5, set(range(10)), 3, rng)
        assert len(refs) == 2 and len(set(refs)) == 2
        seen.update(r - 5 for r in refs)
    assert seen == {-2, -1, 1}
    assert sample_ref_frames(0, {0, 1}, 3, rng) == [1, 1]  # one candidate, repeated
    assert sample_ref_frames(4, {4}, 3, rng) == [4, 4]


def test_clip_samples_keep_boxes_and_masks_consistent_through_augmentation(toy: Path) -> None:
    # the toy frames' size; the official augmentation (the small variant's default has no zoom)
    tr = build_trainer(get_variant_cfg(TINY), min_size="96", max_size="160", flip="vertical", expand="1")
    data = tr.dataset(_train_ds(toy))
    flips = 0
    for i in range(12):
        s = data.get(i % len(data), np.random.default_rng(i))
        t, _, h, w = s.frames.shape
        assert t == 3 and s.masks.shape[1:] == (3, h, w)
        for k in range(s.boxes.shape[0]):
            for j in range(3):
                ys, xs = np.nonzero(s.masks[k, j])
                if len(xs) < 4 or not (s.boxes[k, j, 2:] > s.boxes[k, j, :2]).all():
                    continue
                # the mask lies inside its box (up to the official 1-pixel box shrink and resize)
                bx = s.boxes[k, j] * [w, h, w, h]
                assert xs.min() >= bx[0] - 2 and xs.max() <= bx[2] + 2
                assert ys.min() >= bx[1] - 2 and ys.max() <= bx[3] + 2
        flips += 1
    assert flips == 12
    batch = tr.collate([data.get(0, np.random.default_rng(0)), data.get(1, np.random.default_rng(1))])
    assert batch.frames.shape[0] == 6 and batch.frames.shape[-1] % 32 == 0


def test_flip_and_expand_options_choose_the_augmentation(toy: Path) -> None:
    """flip=horizontal mirrors frames, masks and boxes left-right (official: up-down); expand=0
    drops the zoom but keeps the random draws, so the same clips and flips are seen."""
    base = dict(min_size="96", max_size="160", expand="0")
    plain = build_trainer(get_variant_cfg(TINY), **base, augment="0").dataset(_train_ds(toy))
    flips = {
        f: build_trainer(get_variant_cfg(TINY), **base, flip=f).dataset(_train_ds(toy))
        for f in ("vertical", "horizontal")
    }
    seen = {"vertical": 0, "horizontal": 0}
    for i in range(16):
        ref = plain.get(i, np.random.default_rng(i))
        for f, data in flips.items():
            s = data.get(i, np.random.default_rng(i))
            if np.array_equal(s.frames, ref.frames):
                continue  # not flipped this time
            seen[f] += 1
            axis = 3 if f == "horizontal" else 2
            np.testing.assert_array_equal(s.frames, np.flip(ref.frames, axis))
            np.testing.assert_array_equal(s.masks, np.flip(ref.masks, axis))
            lo, hi, same = (0, 2, [1, 3]) if f == "horizontal" else (1, 3, [0, 2])
            on = (ref.boxes != 0).any(-1)  # boxes of absent objects stay all-zero
            np.testing.assert_allclose(s.boxes[on][:, lo], 1 - ref.boxes[on][:, hi], atol=1e-6)
            np.testing.assert_allclose(s.boxes[on][:, hi], 1 - ref.boxes[on][:, lo], atol=1e-6)
            np.testing.assert_array_equal(s.boxes[on][:, same], ref.boxes[on][:, same])
            assert not s.boxes[~on].any()
    # the same draw flips the same clips either way
    assert seen["vertical"] == seen["horizontal"] and 0 < seen["vertical"] < 16
    with pytest.raises(InputError, match=r"flip='diagonal'"):
        build_trainer(get_variant_cfg(TINY), flip="diagonal")


def test_clip_normalisation_and_collate_are_the_official_float_pipeline(toy: Path) -> None:
    """Frames stay uint8 until a resize needs floats; the one-pass normalisation gives the floats
    of the official per-frame ``(BGR float - mean) / std``, then RGB, CHW; a batch that needs no
    padding is the samples' frames as they are."""
    from methods.cico.adapter import MEAN_BGR, STD_BGR
    from methods.cico.train import collate_clips, normalise_clip

    rng = np.random.default_rng(0)
    for imgs in (
        [rng.integers(0, 256, (40, 64, 3)).astype(np.uint8)[:, ::-1] for _ in range(3)],  # BGR views
        [(rng.random((37, 50, 3)) * 255).astype(np.float32) for _ in range(3)],  # after a resize
    ):
        ref = np.stack(
            [((im.astype(np.float32) - MEAN_BGR) / STD_BGR)[:, :, ::-1].transpose(2, 0, 1) for im in imgs]
        )
        out = normalise_clip(imgs)
        assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, ref)
    data = build_trainer(get_variant_cfg(TINY), min_size="96", max_size="160").dataset(_train_ds(toy))
    samples = [data.get(i, np.random.default_rng(i)) for i in range(2)]
    assert samples[0].frames.shape[2:] == (96, 160)  # a multiple of 32: no padding
    batch = collate_clips(samples)
    np.testing.assert_array_equal(batch.frames.numpy(), np.concatenate([s.frames for s in samples]))
    np.testing.assert_array_equal(batch.targets[1].masks.numpy(), samples[1].masks)
    padded = collate_clips(samples, divisor=100)  # 96x160 -> 100x200, zero-padded bottom/right
    assert padded.frames.shape[2:] == (100, 200)
    np.testing.assert_array_equal(padded.frames[:, :, :96, :160].numpy(), batch.frames.numpy())
    assert not padded.frames[:, :, 96:].any() and not padded.frames[..., 160:].any()
    assert padded.targets[0].masks.shape[2:] == (100, 200) and not padded.targets[0].masks[..., 160:].any()


# ---- init ----------------------------------------------------------------------------------------
def test_coco_2d_weights_are_inflated_as_the_official_init() -> None:
    tr = build_trainer(get_variant_cfg(TINY), width="16")
    model = tr.build_model()
    own = model.state_dict()
    coco: dict[str, torch.Tensor] = {}
    for k, v in own.items():
        if v.dim() == 5:
            coco[k] = torch.randn(v.shape[0], v.shape[1], *v.shape[3:])
        elif "bbox_layer" in k:
            coco[k] = torch.randn(v.shape[0] // 3, *v.shape[1:])  # a 2-D model regresses one box
        elif "conf_layer" in k:
            coco[k] = torch.randn(3 * 81, *v.shape[1:]) if v.dim() == 4 else torch.randn(3 * 81)
        else:
            coco[k] = torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v.clone()
    coco["semantic_seg_conv.weight"] = torch.randn(80, 16, 1, 1)  # Yolact COCO: dropped (known)
    keep_conf = own["prediction_layers.conf_layer.weight"].clone()
    rep = inflate_coco_weights(model, {"module." + k: v for k, v in coco.items()})
    new = model.state_dict()
    w = coco["ProtoNet.proto_net.0.weight"]
    assert torch.allclose(
        new["ProtoNet.proto_net.0.weight"],
        w.unsqueeze(2) * torch.tensor([0.125, 0.75, 0.125]).view(1, 1, 3, 1, 1),
    )
    w = coco["prediction_layers.bbox_extra.0.weight"]
    assert torch.allclose(
        new["prediction_layers.bbox_extra.0.weight"], w.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3
    )
    assert torch.equal(new["prediction_layers.conf_layer.weight"], keep_conf)  # not loaded
    b = coco["prediction_layers.bbox_layer.bias"]
    assert torch.equal(new["prediction_layers.bbox_layer.bias"], b.repeat(3))
    assert any("bbox_layer.weight" in s for s in rep["skipped"])  # 4-D of another shape: left
    assert rep["dropped"] == ["module.semantic_seg_conv.weight"]
    assert torch.equal(new["fpn.lat_layers.0.weight"], coco["fpn.lat_layers.0.weight"])
    with pytest.raises(InputError, match="no such parameter"):
        inflate_coco_weights(model, {"head.extra.weight": torch.zeros(3)})
    with pytest.raises(InputError, match="cannot be inflated"):
        inflate_coco_weights(model, {"ProtoNet.proto_net.0.weight": torch.zeros(16, 16, 5, 5)})


def test_init_weights_sets_the_focal_prior() -> None:
    model = build_trainer(get_variant_cfg(TINY), width="16").build_model()
    init_weights(model, focal=True)
    bias = model.state_dict()["prediction_layers.conf_layer.bias"]
    assert torch.allclose(bias, torch.full_like(bias, -math.log(99)))


# ---- a short real training -----------------------------------------------------------------------
def test_losses_decrease_on_a_fixed_toyvis_batch(toy: Path) -> None:
    torch.manual_seed(0)
    tr = build_trainer(get_variant_cfg(TINY), width="16", augment="false")
    data = tr.dataset(_train_ds(toy))
    batch = tr.collate([data.get(i, np.random.default_rng(i)) for i in (0, 9)])
    model = tr.build_model()
    tr.set_train_mode(model, 2)
    opt = torch.optim.SGD(model.parameters(), lr=3e-3, momentum=0.9, weight_decay=1e-4)
    totals = []
    for _ in range(20):
        losses = tr.losses(model, batch, torch.device("cpu"))
        total = torch.stack(list(losses.values())).sum()
        assert all(torch.isfinite(v) for v in losses.values()), losses
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert set(losses) == {"B", "BIoU", "center", "M_bce", "C", "T"}  # softmax + OHEM (TINY_FOCAL)
    assert np.mean(totals[-5:]) < 0.7 * np.mean(totals[:3]), totals


@pytest.mark.numeric  # two code paths compared at a tight bound
def test_channels_last_option_gives_the_same_losses_and_a_contiguous_export(toy: Path) -> None:
    """``channels_last`` (the small variant's default) stores the 2-D conv weights and the frames
    in NHWC order: the same losses up to float summation order, the same gradients, and the
    exported state dict is plain contiguous (the official layout)."""
    cfg = get_variant_cfg(TINY)
    nchw, nhwc = build_trainer(cfg, width="16", channels_last="0"), build_trainer(cfg, width="16")
    assert (nchw.channels_last, nhwc.channels_last) == (False, True)
    assert build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019")).channels_last is False
    data = nchw.dataset(_train_ds(toy))
    batch = nchw.collate([data.get(i, np.random.default_rng(i)) for i in (0, 9)])
    torch.manual_seed(0)
    a = nchw.build_model()
    torch.manual_seed(0)
    b = nhwc.build_model()
    conv = b.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for tr, m in ((nchw, a), (nhwc, b)):
        tr.set_train_mode(m, 2)
    la, lb = nchw.losses(a, batch, torch.device("cpu")), nhwc.losses(b, batch, torch.device("cpu"))
    assert la.keys() == lb.keys()
    for k in la:
        assert torch.allclose(la[k], lb[k], rtol=1e-4, atol=1e-5), k
    sum(la.values()).backward()  # type: ignore[union-attr]
    sum(lb.values()).backward()  # type: ignore[union-attr]
    ga, gb = a.backbone.conv1.weight.grad, b.backbone.conv1.weight.grad
    assert ga is not None and gb is not None
    assert float((ga - gb).norm() / ga.norm()) < 1e-2  # float sums in another order, through the net
    exported = nhwc.export_state_dict(b)
    assert all(v.is_contiguous() for v in exported.values())
    assert all(torch.equal(exported[k], v) for k, v in b.state_dict().items())
    with pytest.raises(InputError, match="decay='poly'"):
        build_trainer(cfg, decay="poly")
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), decay="cosine")
    assert build_trainer(cfg, decay="cosine").schedule(846, 4).decay == "cosine"


def test_small_variant_defaults_and_official_schedule_unchanged() -> None:
    from methods.cico.adapter import build as cico_official_build
    from methods.cico.losses import LossConfig
    from methods.cico.small import TINY_CLASS_ALPHA, TINY_CONF_THRESH, TINY_MATCH_COEFF, TINY_SCHEDULE, build
    from methods.cico.track import TrackConfig

    tiny = build_trainer(get_variant_cfg(TINY)).schedule(846, 4)
    assert tiny == TINY_SCHEDULE and tiny.grad_clip is not None and tiny.warmup_steps < 100
    over = build_trainer(get_variant_cfg(TINY), grad_clip="0", warmup="7").schedule(846, 4)
    assert over.grad_clip is None and over.warmup_steps == 7
    ad = build(get_variant_cfg(TINY))
    assert ad.detect_cfg.conf_thresh == ad.tracker.cfg.conf_thresh == TINY_CONF_THRESH
    assert build(get_variant_cfg(TINY), conf_thresh="0.2").detect_cfg.conf_thresh == 0.2
    # Track_TF's match coefficients: the small variant's own default, or any four given
    assert ad.tracker.cfg.match_coeff == TINY_MATCH_COEFF == (0.1, 0.5, 0.5, 1.0)
    official_mc = build(get_variant_cfg(TINY), match_coeff="0.1,0.5,0.5,0.3").tracker.cfg.match_coeff
    assert official_mc == TrackConfig().match_coeff == (0.1, 0.5, 0.5, 0.3)
    assert (
        cico_official_build(get_variant_cfg("cico_yolact_r50.ytvis2019")).tracker.cfg.match_coeff
        == official_mc
    )
    # loss weights of the small variant's training (official 5 / 5)
    tr = build_trainer(get_variant_cfg(TINY), track_alpha="10", class_alpha="2.5")
    assert (tr.loss_cfg.track_alpha, tr.loss_cfg.class_alpha) == (10.0, 2.5)
    dflt = build_trainer(get_variant_cfg(TINY)).loss_cfg
    assert (dflt.track_alpha, dflt.class_alpha) == (LossConfig().track_alpha, TINY_CLASS_ALPHA) == (5.0, 10.0)
    r50 = build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"))
    assert r50.loss_cfg == LossConfig(clip_frames=3, mask_type="yolact", focal=True)
    # a model trained at another input size (--opt min_size/max_size) predicts at that size
    sized = build(get_variant_cfg(TINY), min_size="64", max_size="128")
    assert sized.cfg.input_size is not None and sized.cfg.input_size.pad_min == (64, 128)
    assert (sized.cfg.input_size.min_size, sized.cfg.input_size.max_size) == (64, 128)
    assert get_variant_cfg(TINY).input_size == ad.cfg.input_size  # the registered variant unchanged
    official = get_variant_cfg("cico_yolact_r50.ytvis2019")
    s = build_trainer(official).schedule(600, 6)
    assert (s.lr, s.warmup_steps, s.warmup_init_lr, s.grad_clip) == (1e-3, 500, 1e-4, None)
    # augmentation: official (vertical flip, zoom) but for the small variant (horizontal, no zoom)
    assert (build_trainer(official).flip, build_trainer(official).expand) == ("vertical", True)
    assert (build_trainer(get_variant_cfg(TINY)).flip, build_trainer(get_variant_cfg(TINY)).expand) == (
        "horizontal",
        False,
    )
    with pytest.raises(InputError, match="small"):
        build_trainer(official, grad_clip="5")


def test_small_variant_network_options_reach_trainer_and_builder() -> None:
    """``--opt tower_layers=4 width=32`` trains a network the builder rebuilds with the same options."""
    from methods.cico.small import TinyCiCoConfig, build

    cfg = get_variant_cfg(TINY)
    trained = build_trainer(cfg, tower_layers="4", width="32").build_model().state_dict()
    same = build(cfg, tower_layers="4", width="32").net.state_dict()
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in same.items()}
    default = build(cfg).net.state_dict()
    assert set(same) - set(default), "the default towers have 2 layers"
    assert any(k.startswith("prediction_layers.bbox_extra.9.") for k in same)  # conv, GroupNorm, ReLU
    assert not any(k.startswith("prediction_layers.bbox_extra.6.") for k in default)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), tower_layers="2")
    # mask_dim: prototypes and coefficients
    trained = build_trainer(cfg, mask_dim="8").build_model().state_dict()
    same = build(cfg, mask_dim="8").net.state_dict()
    assert {k: v.shape for k, v in trained.items()} == {k: v.shape for k, v in same.items()}
    assert same["prediction_layers.mask_layer.weight"].shape[0] == 3 * 8  # 3 anchors x 8 coefficients
    assert same["ProtoNet.fine_conv.3.weight"].shape[0] == 8
    assert default["ProtoNet.fine_conv.3.weight"].shape[0] == TinyCiCoConfig.mask_dim_
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), mask_dim="8")
    for bad in ("x", "0", "-1", "2.5"):
        with pytest.raises(InputError, match=r"tower_layers=.*expected an integer"):
            build_trainer(cfg, tower_layers=bad)
        with pytest.raises(InputError, match=r"tower_layers=.*expected an integer"):
            build(cfg, tower_layers=bad)
    # focal: the classifier (default: softmax with background + OHEM, as official OVIS; 1: sigmoid
    # focal, as official YouTube-VIS), the same in the trainer, its losses and the builder
    from methods.cico.small import TINY_FOCAL

    assert TINY_FOCAL is False and build_trainer(cfg).loss_cfg.focal is False
    classes = cfg.num_classes
    for flag, focal, ch in (("1", True, classes), ("0", False, classes + 1)):
        tr, ad = build_trainer(cfg, focal=flag), build(cfg, focal=flag)
        assert tr.net_cfg.focal is tr.loss_cfg.focal is ad.net.cfg.focal is ad.detect_cfg.focal is focal
        conf = tr.build_model().state_dict()["prediction_layers.conf_layer.weight"]
        assert conf.shape[0] == 3 * ch == ad.net.state_dict()["prediction_layers.conf_layer.weight"].shape[0]
    assert build(cfg).net.cfg.focal is False
    for bad in ("2", "-1", "yes"):
        with pytest.raises(InputError, match="focal="):
            build(cfg, focal=bad)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), focal="0")


def test_small_variant_checkpoint_of_the_other_classifier_names_the_option(tmp_path: Path) -> None:
    """A small CiCo checkpoint trained with the other classifier (one conf channel more or less per
    anchor) fails to load with a hint naming ``--adapter-arg focal=``; with it, it loads."""
    from methods.cico.small import build

    cfg = get_variant_cfg(TINY)
    for trained, other in (("1", "0"), ("0", "1")):
        path = tmp_path / f"focal{trained}.pth"
        torch.save(build(cfg, focal=trained).net.state_dict(), path)
        with pytest.raises(
            InputError, match=f"trained with --opt focal={trained}; pass --adapter-arg focal={trained}"
        ):
            build(cfg, focal=other).load_official_checkpoint(path)
        build(cfg, focal=trained).load_official_checkpoint(path)


@pytest.mark.numeric  # two code paths compared at a tight bound
def test_small_variant_head_min_level() -> None:
    """``head_min_level=4`` runs the prediction head on P4..P7 (anchors of those levels only) while
    the ProtoNet keeps P3..P5, so the prototypes stay at stride 4; the builder takes the option too."""
    from methods.cico.small import build

    cfg = get_variant_cfg(TINY)
    x = torch.randn(3, 3, 192, 320)  # one 3-frame clip
    torch.manual_seed(0)
    # NCHW weights, as the adapter's (channels_last changes float sums: compared exactly below)
    p3 = build_trainer(
        cfg, width="16", head_min_level="3", proto_min_level="3", channels_last="0"
    ).build_model()
    p3.eval()
    torch.manual_seed(0)
    p4 = build_trainer(
        cfg, width="16", head_min_level="4", proto_min_level="3", channels_last="0"
    ).build_model()
    p4.eval()
    p4.load_state_dict(p3.state_dict())  # strict: the same parameters
    with torch.no_grad():
        o3, o4 = p3(x), p4(x)
    sizes = [(24, 40), (12, 20), (6, 10), (3, 5), (2, 3)]  # P3..P7 of 192x320
    assert o3["priors"].shape[0] == sum(3 * h * w for h, w in sizes)
    assert torch.equal(o4["priors"], make_priors(sizes[1:])[0])
    assert o4["proto"].shape[:2] == (48, 80) and torch.equal(o3["proto"], o4["proto"])
    n3 = 3 * 24 * 40  # the P4..P7 rows of the P3 model are the P4 model's rows: same weights
    for k in ("loc", "conf", "mask_coeff", "track"):
        assert torch.allclose(o3[k][:, n3:], o4[k], atol=1e-6), k
    # the adapter's inference path (not only the training forward) honours the option
    from methods.cico.adapter import ClipInput

    ad = build(cfg, width="16", head_min_level="4", proto_min_level="3")
    ad.net.load_state_dict(p3.state_dict())
    ad.cache_frames = False
    with torch.no_grad():
        raw = ad.forward(ClipInput(x, (0, 1, 2), (192, 320), None)).raw  # type: ignore[arg-type]
    assert torch.equal(raw["priors"], o4["priors"]) and torch.equal(raw["loc"], o4["loc"])
    for bad in ("2", "5"):
        with pytest.raises(InputError, match=r"head_min_level=.*expected 3 .*or 4"):
            build_trainer(cfg, head_min_level=bad)
        with pytest.raises(InputError, match=r"head_min_level=.*expected 3 .*or 4"):
            build(cfg, head_min_level=bad)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), head_min_level="4")


def _load_all_but_the_protonet(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    """Copy ``src``'s weights into ``dst`` except ``ProtoNet.proto_conv`` (its shapes differ); only
    ProtoNet parameters may be left at their initialisation."""
    shared = {k: v for k, v in src.state_dict().items() if not k.startswith("ProtoNet.proto_conv")}
    missing, unexpected = dst.load_state_dict(shared, strict=False)
    assert not unexpected and all(k.startswith("ProtoNet.") for k in missing)


def test_small_variant_proto_stride_2(toy: Path) -> None:
    """``proto_stride=2`` changes only the ProtoNet: prototypes at stride 2 of the padded input from
    the same backbone/FPN/head (their outputs equal those of the default network on shared weights);
    the adapter feeds it the extra backbone maps with and without its per-frame feature cache."""
    from benchmark.data.frames import VideoSample
    from methods.cico.small import TinyProtoNet, build

    cfg = get_variant_cfg(TINY)
    x = torch.randn(3, 3, 96, 160)
    torch.manual_seed(0)
    p3 = {"head_min_level": "3", "proto_min_level": "3"}  # the official levels
    s4 = build_trainer(cfg, width="32", **p3).build_model().eval()
    torch.manual_seed(0)
    s2 = build_trainer(cfg, width="32", proto_stride="2", **p3).build_model().eval()
    assert isinstance(s2.ProtoNet, TinyProtoNet)
    _load_all_but_the_protonet(dst=s2, src=s4)
    with torch.no_grad():
        o4, o2 = s4(x), s2(x)
    assert o4["proto"].shape[:2] == (24, 40) and o2["proto"].shape[:2] == (48, 80)
    assert o2["proto"].shape[2:] == o4["proto"].shape[2:]
    for k in ("loc", "conf", "mask_coeff", "track", "priors"):
        assert torch.equal(o4[k], o2[k]), k
    # a training step runs with the finer prototypes (GT masks resized to 48x80)
    tr = build_trainer(cfg, width="32", proto_stride="2", min_size="96", max_size="160", **p3)
    data = tr.dataset(_train_ds(toy))
    batch = tr.collate([data.get(i, np.random.default_rng(i)) for i in range(2)])
    model = tr.build_model()
    tr.set_train_mode(model, 2)
    losses = tr.losses(model, batch, torch.device("cpu"))
    assert all(torch.isfinite(v) for v in losses.values()) and losses["M_bce"] > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.ProtoNet.parameters() if p.requires_grad)
    # inference: cached and uncached frame features give the same results
    video = VideoSample.from_path(next(iter(sorted((toy / "valid/JPEGImages").iterdir()))), video_id=1)
    runs = []
    for cache in (True, False):
        torch.manual_seed(1)
        ad = build(cfg, width="32", proto_stride="2", cache_frames=cache, **p3)
        runs.append([p.to_json() for p in ad.predict_video(video)])
    assert runs[0] and len(runs[0]) == len(runs[1])  # the same up to float summation order
    for a, b in zip(*runs, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-5)
        assert {**a, "score": 0} == {**b, "score": 0}
    # the ProtoNet on P4..P6 of a 192x320 input, refined to stride 4 (skips of strides 8 and 4)
    x2 = torch.randn(3, 3, 192, 320)
    opts = {"width": "32", "head_min_level": "4", "proto_min_level": "4"}
    torch.manual_seed(0)
    coarse = build_trainer(cfg, **opts, proto_stride="8").build_model().eval()
    torch.manual_seed(0)
    fine = build_trainer(cfg, **opts, proto_stride="4").build_model().eval()
    _load_all_but_the_protonet(dst=fine, src=coarse)
    with torch.no_grad():
        oc, of = coarse(x2), fine(x2)
    assert oc["proto"].shape[:2] == (24, 40) and of["proto"].shape[:2] == (48, 80)
    assert torch.equal(oc["conf"], of["conf"]) and oc["conf"].shape[1] == 3 * (
        12 * 20 + 6 * 10 + 3 * 5 + 2 * 3
    )
    for bad, level in (("1", "3"), ("3", "3"), ("8", "3"), ("2", "4"), ("16", "4")):
        with pytest.raises(InputError, match=r"proto_stride=.*expected (4|8) .*or (2|4)"):
            build_trainer(cfg, proto_stride=bad, proto_min_level=level)
        with pytest.raises(InputError, match=r"proto_stride=.*expected (4|8) .*or (2|4)"):
            build(cfg, proto_stride=bad, proto_min_level=level)
    with pytest.raises(InputError, match=r"proto_min_level=5: expected 3"):
        build(cfg, proto_min_level="5")
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), proto_stride="2")


def test_small_variant_tower_norm() -> None:
    """``tower_norm=1`` puts GroupNorm(32) after each conv of the three towers (not official; the
    small variant only); the builder takes the option too, and a bad value is an input error."""
    from methods.cico.small import build

    cfg = get_variant_cfg(TINY)
    net = build_trainer(cfg, tower_norm="1").build_model()
    for tower in (
        net.prediction_layers.bbox_extra,
        net.prediction_layers.conf_extra,
        net.prediction_layers.track_extra,
    ):
        kinds = [type(m).__name__ for m in tower]
        assert (
            kinds
            == ["Conv3d" if tower is not net.prediction_layers.conf_extra else "Conv2d", "GroupNorm", "ReLU"]
            * 2
        )
    out = net(torch.randn(3, 3, 192, 320))
    assert torch.isfinite(out["conf"]).all()
    assert {k for k in build(cfg, tower_norm="1").net.state_dict()} == set(net.state_dict())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in build(cfg, tower_norm="0").net.modules())
    for bad in ("2", "-1", "x"):
        with pytest.raises(InputError, match="tower_norm"):
            build_trainer(cfg, tower_norm=bad)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), tower_norm="1")


def test_small_variant_anchor_scales() -> None:
    """``anchor_scales=3``: 9 anchors per location (each aspect ratio at 2, 2.52 and 3.17 cells,
    scale-major as the head's output channels); ``1`` (default) keeps the official priors exactly.
    The builder takes the option; a model trained with it predicts end to end."""
    from methods.cico.small import build

    sizes = [(4, 6), (2, 3)]
    official, lv = make_priors(sizes)
    assert official.shape == (3 * 30, 4)  # official: a 3-cell box at aspect ratios 1, 1/2, 2
    r = math.sqrt(0.5)
    expect = torch.tensor([[0.5 / 6, 0.5 / 4, 3 / 6, 3 / 4], [0.5 / 6, 0.5 / 4, 3 * r / 6, 3 / r / 4]])
    assert torch.allclose(official[:2], expect, atol=1e-7)
    scales = tuple(2 / 3 * 2 ** (k / 3) for k in range(3))
    nine, lv9 = make_priors(sizes, scales=scales)
    assert nine.shape == (9 * 30, 4) and torch.equal(lv9.unique(), lv.unique())
    loc0 = nine[:9]  # the first location: same centre, 3 scales x 3 aspect ratios
    assert torch.allclose(loc0[:, :2], official[0, :2].expand(9, 2))
    for k, s in enumerate(scales):
        assert torch.allclose(loc0[3 * k : 3 * k + 3, 2:], official[:3, 2:] * s, atol=1e-6)
    cfg = get_variant_cfg(TINY)
    net = build_trainer(cfg, anchor_scales="3").build_model().eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, 192, 320))
    n_loc = 12 * 20 + 6 * 10 + 3 * 5 + 2 * 3  # P4..P7 of the 192x320 input
    assert out["conf"].shape[1] == out["priors"].shape[0] == 9 * n_loc
    assert out["track"].shape[1] == out["mask_coeff"].shape[1] == 9 * n_loc
    ad = build(cfg, anchor_scales="3")
    assert {k: v.shape for k, v in ad.net.state_dict().items()} == {
        k: v.shape for k, v in net.state_dict().items()
    }
    for bad in ("2", "0", "x"):
        with pytest.raises(InputError, match="anchor_scales"):
            build_trainer(cfg, anchor_scales=bad)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), anchor_scales="3")


def test_small_variant_pos_iou_moves_both_matching_thresholds() -> None:
    """``pos_iou`` (small variant only): positives at IoU >= pos_iou, negatives under pos_iou - 0.1
    (official 0.5 / 0.4); a lower threshold gives a GT more positive anchors."""
    cfg = get_variant_cfg(TINY)
    assert (build_trainer(cfg).loss_cfg.pos_threshold, build_trainer(cfg).loss_cfg.neg_threshold) == (
        0.5,
        0.4,
    )
    low = build_trainer(cfg, pos_iou="0.4").loss_cfg
    assert (low.pos_threshold, low.neg_threshold) == (0.4, 0.3)
    pri = make_priors([(12, 20), (6, 10)])[0]
    gt = torch.tensor([[[0.30, 0.30, 0.45, 0.52]] * 3])
    n_pos = [
        int(
            (match_clip_frame(gt, torch.tensor([1]), pri, 0, c.pos_threshold, c.neg_threshold).conf > 0).sum()
        )
        for c in (build_trainer(cfg).loss_cfg, low)
    ]
    assert n_pos[1] > n_pos[0] >= 1
    for bad in ("0.1", "1.5", "x"):
        with pytest.raises(InputError, match="pos_iou"):
            build_trainer(cfg, pos_iou=bad)
    with pytest.raises(InputError, match="small"):
        build_trainer(get_variant_cfg("cico_yolact_r50.ytvis2019"), pos_iou="0.4")
