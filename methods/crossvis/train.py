"""Training CrossVIS (``visrepro train --variant crossvis_*``) behind :class:`benchmark.train.MethodTrainer`.

Data (official ``VideoDataset`` + ``VideoDatasetMapperWithBasis``): one item per annotated
(video, frame) with at least one valid non-crowd instance; the reference frame is drawn among the
video's annotated frames with ``|delta| <= 20`` (``CROSSOVER.SAMPLE_REGION``; another frame when
there is one). Both frames get the same augmentation: random horizontal flip (p 0.5) and
ResizeShortestEdge (PIL bilinear for the image, nearest for the masks, boxes scaled); input is BGR
minus the pixel mean (std 1), zero-padded to /32. Instance identities link the pair.

Losses (``crossvis.py::forward_train``; all weights 1): FCOS focal / GIoU / centerness on each
frame group (key frames, reference frames) with the official target assignment
(:mod:`methods.crossvis.targets`), averaged over the two groups; the CondInst dice mask loss on at
most ``MAX_PROPOSALS = 500`` random positives per group (GT bitmasks sampled at stride 4, offset
2); crossover (the sampled positives' dynamic filters on the other frame's mask features, relative
coordinates w.r.t. a random positive of the same identity there, both directions averaged); the
re-id focal loss over all positives' embeddings (``Linear(256, nID)``, identities = the dataset's
track ids in sorted order, i.e. ``id - 1`` on YouTube-VIS-2019 train). Backbone + FPN gradients
are scaled by 0.1 in :meth:`CrossVISNet.forward` (training mode).

Deviation: the official normalisers (number of positives, centerness sum) are averaged over GPUs;
here they are per process (micro-batch), so DDP equals gradient accumulation exactly.

Schedule (``Base-CrossVIS.yaml``): SGD momentum 0.9, weight decay 1e-4, lr 0.005 at 16 pairs,
23000 iterations, x0.1 at 15000 and 21000, linear warm-up over 1000 iterations from 0.001 x lr.
0 on the norm layers' parameters (detectron2's ``WEIGHT_DECAY_NORM``).

``--init``: a CondInst COCO checkpoint (detectron2 layout): every key must exist here with its
shape, except the 80-class ``cls_logits`` (left at its init, as detectron2 skips shape
mismatches); the re-id tower/pred/BN and the identity classifier ``cls`` start fresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from benchmark.checkpoint import read_checkpoint
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.masks import decode_rle, to_compressed_rle
from benchmark.options import opt_bool, opt_int
from benchmark.train import Schedule
from benchmark.variant_cfg import VariantCfg
from methods.crossvis.adapter import PIXEL_MEAN_BGR, resized_size
from methods.crossvis.head import HeadOutputs
from methods.crossvis.losses import (
    centerness_loss,
    centerness_targets,
    dice_loss,
    focal_loss,
    giou_loss,
    reid_loss,
)
from methods.crossvis.mask import MaskBranch, aligned_bilinear, dynamic_mask_logits
from methods.crossvis.model import CrossVISNet
from methods.crossvis.targets import FCOSTargets, assign_targets

__all__ = [
    "LOSS_NAMES",
    "CrossVISPairDataset",
    "CrossVISTrainer",
    "PairBatch",
    "PairSample",
    "build_trainer",
    "collate_pairs",
    "crossvis_losses",
    "sample_ref_frame",
]

SAMPLE_REGION = 20
MAX_PROPOSALS = 500
MASK_OUT_STRIDE = 4
NUM_IDS_YTVIS19 = 3774
LOSS_NAMES = ("loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr", "loss_mask", "loss_cross_over", "loss_reid")


# ---- data ----------------------------------------------------------------------------------------
@dataclass
class PairSample:
    frames: np.ndarray  # [2, 3, h, w] float32 (BGR - mean)
    boxes: list[np.ndarray]  # per frame [n, 4] xyxy
    masks: list[np.ndarray]  # per frame [n, h, w] uint8
    labels: list[np.ndarray]  # per frame [n] 0-based
    ids: list[np.ndarray]  # per frame [n] identity index (0-based)
    seed: int = 0  # the loss's random draws (MAX_PROPOSALS, crossover partner)


@dataclass
class FrameTargets:
    boxes: torch.Tensor
    masks: torch.Tensor  # [n, Hp, Wp] uint8 (padded)
    labels: torch.Tensor
    ids: torch.Tensor


@dataclass
class PairBatch:
    frames: torch.Tensor  # [2B, 3, Hp, Wp]: B key frames, then their B reference frames
    targets: list[FrameTargets]  # 2B, same order
    seed: int = 0


def sample_ref_frame(
    frame: int, annotated: list[int], rng: np.random.Generator, region: int = SAMPLE_REGION
) -> int:
    """A reference frame among ``annotated`` with ``|delta| <= region``, another one if possible."""
    cand = [f for f in annotated if abs(f - frame) <= region and f != frame]
    if not cand:
        return frame
    return cand[int(rng.integers(len(cand)))]


class CrossVISPairDataset:
    """Key + reference frame pairs of a YouTube-VIS-style dataset (see the module docstring)."""

    def __init__(
        self, ds: YTVISDataset, min_size: int = 360, max_size: int = 640, *, augment: bool = True
    ) -> None:
        if not ds.has_annotations:
            raise InputError("training needs an annotation file with GT tracks", file=ds.ann_file)
        self.ds, self.min_size, self.max_size, self.augment = ds, min_size, max_size, augment
        self.cat2label = {cid: i for i, cid in enumerate(sorted(ds.categories))}
        self.tracks = [t for t in (ds.tracks or []) if not t.iscrowd]
        self.id_index = {tid: i for i, tid in enumerate(sorted(t.id for t in (ds.tracks or [])))}
        self.frame_anns: dict[tuple[int, int], list[int]] = {}
        for ti, tr in enumerate(self.tracks):
            for t in range(ds.videos[tr.video_id].length):
                seg = tr.segmentations[t] if t < len(tr.segmentations) else None
                area = tr.areas[t] if t < len(tr.areas) else None
                if seg is not None and area is not None and area > 0:
                    self.frame_anns.setdefault((tr.video_id, t), []).append(ti)
        self.items = sorted(self.frame_anns)
        if not self.items:
            raise InputError("no annotated frame to train on", file=ds.ann_file)
        self.annotated: dict[int, list[int]] = {}
        for v, f in self.items:
            self.annotated.setdefault(v, []).append(f)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    @property
    def num_ids(self) -> int:
        return len(self.id_index)

    def __len__(self) -> int:
        return len(self.items)

    def _frame(self, vid: int, t: int) -> np.ndarray:
        f = self._cache.get((vid, t))
        if f is None:
            f = np.ascontiguousarray(self.ds.video_sample(vid).frames.read(t))
            self._cache[(vid, t)] = f
        return f

    def get(self, index: int, rng: np.random.Generator) -> PairSample:
        vid, frame = self.items[index]
        ref = sample_ref_frame(frame, self.annotated[vid], rng)
        v = self.ds.videos[vid]
        flip = bool(self.augment and rng.integers(2))
        h, w = resized_size(v.height, v.width, self.min_size, self.max_size)
        imgs, boxes, masks, labels, ids = [], [], [], [], []
        for t in (frame, ref):
            rgb = self._frame(vid, t)
            if (h, w) != rgb.shape[:2]:
                rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
            bgr = rgb[:, :, ::-1].astype(np.float32) - np.asarray(PIXEL_MEAN_BGR, np.float32)
            ms, bs, ls, js = [], [], [], []
            for ti in self.frame_anns.get((vid, t), []):
                tr = self.tracks[ti]
                m = decode_rle(to_compressed_rle(tr.segmentations[t], v.height, v.width)).astype(np.uint8)
                ys, xs = np.nonzero(m)
                if len(xs) == 0:
                    continue
                if tr.bboxes is not None and t < len(tr.bboxes) and tr.bboxes[t] is not None:
                    bx, by, bw, bh = (float(c) for c in tr.bboxes[t])  # type: ignore[union-attr]
                else:
                    bx, by = float(xs.min()), float(ys.min())
                    bw, bh = float(xs.max() + 1) - bx, float(ys.max() + 1) - by
                sx, sy = w / v.width, h / v.height
                box = np.array([bx * sx, by * sy, (bx + bw) * sx, (by + bh) * sy], np.float32)
                if (h, w) != m.shape:
                    m = np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST))
                ms.append(m)
                bs.append(box)
                ls.append(self.cat2label[tr.category_id])
                js.append(self.id_index[tr.id])
            if flip:
                bgr = bgr[:, ::-1]
                ms = [m[:, ::-1] for m in ms]
                bs = [np.array([w - b[2], b[1], w - b[0], b[3]], np.float32) for b in bs]
            imgs.append(np.ascontiguousarray(bgr.transpose(2, 0, 1)))
            masks.append(np.ascontiguousarray(np.stack(ms)) if ms else np.zeros((0, h, w), np.uint8))
            boxes.append(np.stack(bs) if bs else np.zeros((0, 4), np.float32))
            labels.append(np.array(ls, np.int64))
            ids.append(np.array(js, np.int64))
        return PairSample(np.stack(imgs), boxes, masks, labels, ids, int(rng.integers(2**31)))


def collate_pairs(samples: list[PairSample], divisor: int = 32) -> PairBatch:
    hp = -(-max(s.frames.shape[2] for s in samples) // divisor) * divisor
    wp = -(-max(s.frames.shape[3] for s in samples) // divisor) * divisor
    b = len(samples)
    frames = torch.zeros(2 * b, 3, hp, wp)
    targets: list[FrameTargets | None] = [None] * (2 * b)
    for i, s in enumerate(samples):
        h, w = s.frames.shape[2:]
        for j in range(2):
            frames[j * b + i, :, :h, :w] = torch.from_numpy(s.frames[j])
            m = torch.zeros(s.masks[j].shape[0], hp, wp, dtype=torch.uint8)
            m[:, :h, :w] = torch.from_numpy(s.masks[j])
            targets[j * b + i] = FrameTargets(
                torch.from_numpy(s.boxes[j]), m, torch.from_numpy(s.labels[j]), torch.from_numpy(s.ids[j])
            )
    seed = sum(s.seed for s in samples) % 2**31
    return PairBatch(frames, [t for t in targets if t is not None], seed)


# ---- losses --------------------------------------------------------------------------------------
def _flat(per_level: list[torch.Tensor]) -> torch.Tensor:
    """Per-level ``[N, C, H, W]`` maps -> ``[N * L, C]`` rows (image-major, then level, then
    location). One flattening for the whole batch: per-image selects would each cost a full-size
    zero fill in the backward pass (the slowest part of a small model's step)."""
    n = per_level[0].shape[0]
    flat = torch.cat([x.permute(0, 2, 3, 1).reshape(n, -1, x.shape[1]) for x in per_level], 1)
    return flat.reshape(-1, flat.shape[2])


def _mask_probs(feats: torch.Tensor, params: torch.Tensor, locs: torch.Tensor, levels: torch.Tensor,
                soi: torch.Tensor) -> torch.Tensor:  # fmt: skip
    logits = dynamic_mask_logits(feats, params, locs, levels, soi, MaskBranch.out_stride)
    return aligned_bilinear(logits, MaskBranch.out_stride // MASK_OUT_STRIDE).sigmoid()


def crossvis_losses(
    head: HeadOutputs,
    mask_feats: torch.Tensor,
    targets: list[FrameTargets],
    classifier: nn.Linear,
    soi: torch.Tensor,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The official loss terms of a batch of ``B`` pairs (frames ``[keys..., refs...]``).

    The random draws (positives kept for the mask loss, crossover partners) come from
    ``generator`` (CPU), seeded per batch from its samples: independent of the process count.
    """
    n_img = len(targets)
    b = n_img // 2
    shapes = [(int(x.shape[2]), int(x.shape[3])) for x in head.logits]
    tg: list[FCOSTargets] = [
        assign_targets(shapes, t.boxes, t.labels, t.masks, num_classes, device=mask_feats.device)
        for t in targets
    ]
    zero = sum((x.sum() for part in (head.logits, head.reg, head.ctrness, head.top_feats, head.reid) for x in part),
               mask_feats.sum()) * 0.0  # fmt: skip
    gt_small = [t.masks[:, MASK_OUT_STRIDE // 2 :: MASK_OUT_STRIDE, MASK_OUT_STRIDE // 2 :: MASK_OUT_STRIDE]
                for t in targets]  # fmt: skip
    out: dict[str, torch.Tensor] = {k: zero.clone() for k in LOSS_NAMES}
    n_loc = sum(h * w for h, w in shapes)  # locations per image
    logits_all, reg_all = _flat(head.logits), _flat(head.reg)
    ctr_all = _flat(head.ctrness).reshape(-1)
    # controller outputs of every image, [N * L, P]; rows are gathered with one index op
    top_feats = _flat(head.top_feats)
    # sampled positives per image: (image, location index) for the mask / crossover losses
    sampled: list[torch.Tensor] = []
    for group in (range(0, b), range(b, n_img)):
        rows = slice(group.start * n_loc, group.stop * n_loc)  # the group's images are contiguous
        logits, reg, ctr = logits_all[rows], reg_all[rows], ctr_all[rows]
        labels = torch.cat([tg[i].labels for i in group])
        reg_t = torch.cat([tg[i].reg for i in group])
        pos = torch.nonzero(labels != num_classes).squeeze(1)
        num_pos = int(pos.numel())
        cls_t = torch.zeros_like(logits)
        cls_t[pos, labels[pos]] = 1.0
        out["loss_fcos_cls"] = out["loss_fcos_cls"] + focal_loss(logits, cls_t, num_pos) / 2
        if num_pos:
            ctr_t = centerness_targets(reg_t[pos])
            out["loss_fcos_loc"] = out["loss_fcos_loc"] + giou_loss(reg[pos], reg_t[pos], ctr_t) / 2
            out["loss_fcos_ctr"] = out["loss_fcos_ctr"] + centerness_loss(ctr[pos], ctr_t, num_pos) / 2
        # mask loss on at most MAX_PROPOSALS random positives of the group
        img_of = torch.cat([torch.full_like(tg[i].labels, i) for i in group])
        loc_of = torch.cat([torch.arange(tg[i].labels.numel(), device=labels.device) for i in group])
        if num_pos > MAX_PROPOSALS:
            pos = pos[torch.randperm(num_pos, generator=generator)[:MAX_PROPOSALS].to(pos.device)]
        sampled.append(torch.stack((img_of[pos], loc_of[pos]), 1))
    # the crossover partners (drawn after both groups' samples, as before)
    cross_rows: list[dict[int, list[tuple[int, int, int]]]] = []
    for direction in (0, 1):
        rows_of: dict[int, list[tuple[int, int, int]]] = {}
        for a, loc in sampled[direction].tolist():
            c = a + b if direction == 0 else a - b
            if targets[c].ids.numel() == 0:
                continue
            ident = targets[a].ids[tg[a].gt_inds[loc]]
            same = (tg[c].labels != num_classes) & (targets[c].ids[tg[c].gt_inds] == ident)
            cand = torch.nonzero(same).squeeze(1)
            if cand.numel() == 0:
                continue
            j = int(cand[int(torch.randint(cand.numel(), (), generator=generator))])
            rows_of.setdefault(c, []).append((a, loc, j))
        cross_rows.append(rows_of)
    # every controller row the mask and crossover losses use, gathered at once
    want = [s[:, 0] * n_loc + s[:, 1] for s in sampled]
    want += [torch.tensor([a * n_loc + loc for a, loc, _ in rs], dtype=torch.long, device=mask_feats.device)
             for rows_of in cross_rows for rs in rows_of.values()]  # fmt: skip
    params_all = top_feats[torch.cat(want)]
    chunks = iter(torch.split(params_all, [int(w.numel()) for w in want]))
    # per-image mask features ([1, C, H, W] views; unbind's backward is one stack, not a zero fill
    # per slice)
    feats_of = [f.unsqueeze(0) for f in mask_feats.unbind(0)]
    for g, group in enumerate((range(0, b), range(b, n_img))):
        params_g = next(chunks)
        losses = []
        for i in group:
            keep = sampled[g][:, 0] == i
            sel = sampled[g][keep, 1]
            if sel.numel() == 0:
                continue
            params = params_g[keep]
            probs = _mask_probs(feats_of[i], params, tg[i].locations[sel], tg[i].levels[sel], soi)
            gt = gt_small[i][tg[i].gt_inds[sel]]
            losses.append((probs, gt))
        if losses:
            probs_all = torch.cat([p for p, _ in losses])
            gt_all = torch.cat([g for _, g in losses])
            out["loss_mask"] = out["loss_mask"] + dice_loss(probs_all, gt_all) / 2
    # crossover: sampled positives of frame a, filters applied on the paired frame c (same pair)
    cross = []
    for rows_of in cross_rows:
        probs_l, gt_l = [], []
        for c, rs in rows_of.items():
            params = next(chunks)
            js = torch.tensor([j for _, _, j in rs], device=mask_feats.device)
            probs_l.append(_mask_probs(feats_of[c], params, tg[c].locations[js], tg[c].levels[js], soi))
            gt_l.append(gt_small[c][tg[c].gt_inds[js]])
        if probs_l:
            cross.append(dice_loss(torch.cat(probs_l), torch.cat(gt_l)))
    if cross:
        out["loss_cross_over"] = out["loss_cross_over"] + sum(cross, zero) / 2
    # re-id: all positives of both frames
    where, ids = [], []
    for i in range(n_img):
        p = torch.nonzero(tg[i].labels != num_classes).squeeze(1)
        if p.numel():
            where.append(i * n_loc + p)
            ids.append(targets[i].ids[tg[i].gt_inds[p]])
    if where:
        embs = _flat(head.reid)[torch.cat(where)]
        out["loss_reid"] = out["loss_reid"] + reid_loss(embs, torch.cat(ids), classifier)
    else:
        out["loss_reid"] = out["loss_reid"] + 0.0 * sum((p.sum() for p in classifier.parameters()), zero)
    return out


# ---- initialisation ------------------------------------------------------------------------------
FRESH_PREFIXES = (
    "proposal_generator.fcos_head.reid_tower.",
    "proposal_generator.fcos_head.reid_pred.",
    "proposal_generator.fcos_head.reid_pred_bn.",
    "cls.",
)


def load_condinst_coco(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Strict CondInst -> CrossVIS mapping (see the module docstring); returns a report."""
    own = model.state_dict()
    rep: dict[str, list[str]] = {"loaded": [], "skipped": [], "fresh": []}
    bad = []
    new = {}
    for k, v in state.items():
        if k not in own:
            bad.append(f"{k}: no such key in CrossVIS")
        elif tuple(v.shape) != tuple(own[k].shape):
            if k.startswith("proposal_generator.fcos_head.cls_logits."):
                rep["skipped"].append(f"{k} {list(v.shape)} (classifier of another class count)")
            else:
                bad.append(f"{k}: shape {list(v.shape)} != {list(own[k].shape)}")
        else:
            new[k] = v.to(own[k].dtype)
            rep["loaded"].append(k)
    missing = [k for k in own if k not in state]
    for k in missing:
        if k.startswith(FRESH_PREFIXES):
            rep["fresh"].append(k)
        else:
            bad.append(f"{k}: missing from the checkpoint")
    if bad:
        raise InputError("CondInst checkpoint does not map onto CrossVIS: " + "; ".join(bad[:8])
                         + (f" (+{len(bad) - 8} more)" if len(bad) > 8 else ""), entry="init")  # fmt: skip
    model.load_state_dict(new, strict=False)
    return rep


# ---- trainer -------------------------------------------------------------------------------------
class CrossVISTrainer:
    """:class:`benchmark.train.MethodTrainer` for the ``crossvis_*`` variants."""

    OPTIONS = ("augment", "min_size", "max_size", "width")

    def __init__(self, cfg: VariantCfg, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise InputError(
                f"unknown CrossVIS training option(s) {unknown}; known: {list(self.OPTIONS)}", entry="options"
            )
        self.cfg = cfg
        self.tiny = cfg.backbone == "tiny"
        if "width" in options and not self.tiny:
            raise InputError("option width is for the small (tiny) CrossVIS variants only", entry="options")
        from methods.crossvis.small import tiny_width

        self.width = tiny_width(options.get("width", 64))
        size = cfg.input_size
        self.min_size = opt_int(
            options.get("min_size", size.min_size if size else 360), "min_size", minimum=1
        )
        self.max_size = opt_int(
            options.get("max_size", size.max_size if size else 640), "max_size", minimum=1
        )
        self.augment = opt_bool(options.get("augment", True), "augment")
        self.num_ids = NUM_IDS_YTVIS19

    def build_model(self) -> nn.Module:
        model: CrossVISNet
        if self.tiny:
            from methods.crossvis.small import TinyCrossVISConfig, TinyCrossVISNet

            model = TinyCrossVISNet(TinyCrossVISConfig(num_classes=self.cfg.num_classes, width=self.width))
        else:
            model = CrossVISNet(int(self.cfg.backbone.lstrip("r")), self.cfg.num_classes)
        cls = nn.Linear(256, self.num_ids)
        nn.init.normal_(cls.weight, std=0.01)
        nn.init.constant_(cls.bias, -math.log((1 - 0.01) / 0.01))
        model.add_module("cls", cls)  # registered last: the official state-dict order
        return model

    def init_from(self, model: nn.Module, path: Path) -> dict[str, Any]:
        state, digest = read_checkpoint(path)
        rep = load_condinst_coco(model, state)
        return {"file": str(path), "sha256": digest, **{k: len(v) for k, v in rep.items()}, "detail": rep}

    def set_train_mode(self, model: nn.Module, clips_per_process: int) -> None:
        """``model.train()``; the ResNet's FrozenBN are buffers; stem + res2 frozen (FREEZE_AT=2)."""
        model.train()
        for name, p in model.named_parameters():
            if name.startswith(("backbone.bottom_up.stem.", "backbone.bottom_up.res2.")):
                p.requires_grad_(False)

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The official layout (with the training-only ``cls.*``; predict drops it)."""
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def dataset(self, ds: YTVISDataset) -> CrossVISPairDataset:
        if len(ds.categories) != self.cfg.num_classes:
            raise InputError(
                f"variant {self.cfg.name} has {self.cfg.num_classes} classes, the dataset "
                f"{len(ds.categories)} categories",
                file=ds.ann_file,
            )
        data = CrossVISPairDataset(ds, self.min_size, self.max_size, augment=self.augment)
        if self.tiny:
            self.num_ids = data.num_ids
        elif data.num_ids > NUM_IDS_YTVIS19:
            raise InputError(f"{data.num_ids} identities > the official {NUM_IDS_YTVIS19}", file=ds.ann_file)
        return data

    def collate(self, samples: list[PairSample]) -> PairBatch:
        return collate_pairs(samples)

    def losses(self, model: nn.Module, batch: PairBatch, device: torch.device) -> dict[str, torch.Tensor]:
        head, mask_feats = model(batch.frames.to(device))
        net: Any = model.module if hasattr(model, "module") else model
        targets = [FrameTargets(t.boxes.to(device), t.masks.to(device), t.labels.to(device), t.ids.to(device))
                   for t in batch.targets]  # fmt: skip
        g = torch.Generator().manual_seed(batch.seed)
        return crossvis_losses(
            head, mask_feats, targets, net.cls, net.mask_head.sizes_of_interest, net.num_classes, g
        )

    def default_batch_size(self) -> int:
        return 4 if self.tiny else 16

    def schedule(self, num_samples: int, global_batch: int) -> Schedule:
        if self.tiny:  # not official: the small ToyVIS model, see TINY_SCHEDULE in methods/crossvis/small.py
            from methods.crossvis.small import TINY_SCHEDULE

            return TINY_SCHEDULE
        # detectron2's SOLVER.WEIGHT_DECAY_NORM = 0: no decay on the GroupNorm / BatchNorm parameters
        return Schedule(lr=0.005, max_steps=23000, warmup_steps=1000, warmup_init_lr=0.005 * 0.001,
                        decay_steps=(15000, 21000), norm_weight_decay=0.0)  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {"min_size": self.min_size, "max_size": self.max_size, "augment": self.augment,
                "num_ids": self.num_ids, "width": self.width if self.tiny else None}  # fmt: skip


def build_trainer(cfg: VariantCfg, **options: Any) -> CrossVISTrainer:
    return CrossVISTrainer(cfg, **options)
