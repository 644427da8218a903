"""CiCo's clip linking (official ``Track_TF``): MaskTrack-R-CNN-style matching of a clip's
detections with a memory of every object of the video.

Per clip: composite score = appearance ``(cos + 1) / 2`` + ``c0 * score`` + ``c1 * MIoU`` +
``c2 * BIoU`` + ``c3 * same class``, with a dummy "new object" column; greedy assignment in
descending score order (losers of a contest are dropped); unmatched memory objects are carried
forward: re-segmented on the current clip's prototypes with their stored coefficients (crop x1.2),
score decayed by ``0.9 ** T``, box frozen to its last frame; output for up to ``max(3, 15 // T)``
clips while their score stays above the threshold.

Memory is bounded per object: masks are kept as booleans (only ``> 0.5`` is ever used again), and
objects that can no longer be output are re-segmented only on the frames the next clip can share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from methods.cico.detect import Detections, box_iou, mask_iou
from methods.cico.masks import center_size, instance_masks

__all__ = ["TrackConfig", "TrackOutput", "TrackTF"]


@dataclass(frozen=True)
class TrackConfig:
    match_coeff: tuple[float, float, float, float] = (0.1, 0.5, 0.5, 0.3)
    conf_thresh: float = 0.1
    bbox_dummy_iou: float = 0.3
    mask_type: str = "condinst"
    clip_frames: int = 3
    clip_overlap: int = 1


@dataclass
class TrackOutput:
    """Objects output for one clip, in memory (= id) order."""

    ids: torch.Tensor  # [k] object ids
    score: torch.Tensor  # [k]
    cls: torch.Tensor  # [k] 1-based class
    mask: torch.Tensor  # [k, T, H, W] probabilities
    debug: dict[str, object] = field(default_factory=dict)


@dataclass
class _Memory:
    cls: torch.Tensor
    score: torch.Tensor
    box: torch.Tensor  # [M, T, 4]
    box_cir: torch.Tensor  # [M, 4]
    fg: torch.Tensor  # [M, T, H, W] bool (mask > 0.5)
    mask_coeff: torch.Tensor
    track: torch.Tensor
    prior_levels: torch.Tensor
    tracked: torch.Tensor  # [M] float, clips since last matched
    img_ids: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.score.shape[0])


class TrackTF:
    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self.memory: _Memory | None = None
        self.max_tracked = max(3, 15 // cfg.clip_frames)
        self._live_probs = torch.zeros(0)

    def reset(self) -> None:
        self.memory = None

    def __call__(
        self,
        dets: Detections,
        proto: torch.Tensor,
        img_ids: tuple[int, ...],
        is_first: bool,
        keep_debug: bool = False,
    ) -> TrackOutput:
        cfg = self.cfg
        if is_first:
            self.memory = None
        n = len(dets)
        dev = dets.score.device
        empty = TrackOutput(
            torch.zeros(0, dtype=torch.long, device=dev), dets.score[:0], dets.cls[:0], dets.mask[:0]
        )
        mem = self.memory
        if mem is None:
            if n == 0:
                return empty
            self.memory = _Memory(
                dets.cls.clone(), dets.score.clone(), dets.box.clone(), dets.box_cir.clone(), dets.mask > 0.5,
                dets.mask_coeff.clone(), dets.track.clone(), dets.prior_levels.clone(),
                torch.zeros(n, device=dev), tuple(img_ids),
            )  # fmt: skip
            ids = torch.arange(n, device=dev)
            return TrackOutput(
                ids, dets.score, dets.cls, dets.mask, {"new": list(range(n))} if keep_debug else {}
            )
        mem.tracked += 1
        if n == 0:
            return empty
        m = len(mem)
        t = dets.box.shape[1]
        label_eq = (mem.cls[None, :] == dets.cls[:, None]).float()
        cos = dets.track @ mem.track.t()
        sim = torch.cat([torch.full((n, 1), 0.5, device=dev), (cos + 1) / 2], 1)
        shared = [(pi, ci) for pi, a in enumerate(mem.img_ids) for ci, b in enumerate(img_ids) if a == b]
        coeff = list(cfg.match_coeff)
        det_fg = dets.mask > 0.5
        if shared:
            coeff[1:3] = [coeff[1] * 2, coeff[2] * 2]
            p_idx = [p for p, _ in shared]
            c_idx = [c for _, c in shared]
            bious = box_iou(dets.box[:, c_idx].transpose(0, 1), mem.box[:, p_idx].transpose(0, 1))
            d_m = det_fg[:, c_idx].transpose(0, 1)
            p_m = mem.fg[:, p_idx].transpose(0, 1)
            flag = (d_m.flatten(2).sum(-1) > 2)[:, :, None] & (p_m.flatten(2).sum(-1) > 2)[:, None, :]
            denom = flag.sum(0).clamp(min=1)
            mious = (mask_iou(d_m, p_m) * flag).sum(0) / denom
            bious = (bious * flag).sum(0) / denom
            carried, live = self._carry(mem, proto, t, full=cfg.clip_overlap < 1)
        else:
            carried, live = self._carry(mem, proto, t, full=True)
            bious = box_iou(dets.box[:, 0], mem.box[:, -1])
            p_m = carried.transpose(0, 1)
            d_m = det_fg.transpose(0, 1)
            flag = (d_m.flatten(2).sum(-1) > 2)[:, :, None] & (p_m.flatten(2).sum(-1) > 2)[:, None, :]
            mious = (mask_iou(d_m, p_m) * flag).sum(0) / flag.sum(0).clamp(min=1)
        wh = center_size(dets.box.transpose(0, 1).reshape(-1, 4)).reshape(t, n, 4).mean(0)[:, 2:]
        small = torch.prod(wh, dim=-1) < 0.1
        dummy = torch.full((n, 1), cfg.bbox_dummy_iou, device=dev)
        dummy[small] *= 0.5
        bious = torch.cat([dummy, bious], 1)
        mious = torch.cat([dummy, mious], 1)
        label_eq = torch.cat([torch.ones(n, 1, device=dev), label_eq], 1)
        comp = sim + (
            coeff[0] * dets.score.view(-1, 1) + coeff[1] * mious + coeff[2] * bious + coeff[3] * label_eq
        )
        best_val, best = torch.max(comp, dim=1)
        new_idx = torch.nonzero(best == 0).flatten()
        order = best_val.sort(descending=True).indices
        taken: set[int] = set()
        match_obj: list[int] = []
        match_det: list[int] = []
        for i in order.tolist():
            b = int(best[i])
            if b != 0 and b - 1 not in taken:
                taken.add(b - 1)
                match_obj.append(b - 1)
                match_det.append(i)

        # memory update: Naive_Tacker's carried state, new objects appended, matched rows replaced
        mo = torch.tensor(match_obj, dtype=torch.long, device=dev)
        md = torch.tensor(match_det, dtype=torch.long, device=dev)

        def upd(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            out = torch.cat([old, new[new_idx]], 0)
            out[mo] = new[md]
            return out

        zeros = torch.zeros(n, device=dev)
        last = mem.box[:, -1]
        full_fg = torch.cat([carried, det_fg[new_idx]], 0)
        full_fg[mo] = det_fg[md]
        new_mem = _Memory(
            upd(mem.cls, dets.cls), upd(mem.score * 0.9**t, dets.score),
            upd(last[:, None].repeat(1, t, 1), dets.box), upd(last.clone(), dets.box_cir), full_fg,
            upd(mem.mask_coeff, dets.mask_coeff), upd(mem.track, dets.track),
            upd(mem.prior_levels, dets.prior_levels), upd(mem.tracked, zeros), tuple(img_ids),
        )  # fmt: skip
        keep = (new_mem.tracked <= self.max_tracked) & (new_mem.score > cfg.conf_thresh)
        keep &= (new_mem.fg.flatten(2).sum(-1) > 3).sum(1) > 0
        self.memory = new_mem
        ids = torch.nonzero(keep).flatten()
        # probabilities of the output objects: detections' masks, or carried objects re-segmented
        is_det = torch.full((len(new_mem),), -1, dtype=torch.long, device=dev)
        is_det[m + torch.arange(new_idx.numel(), device=dev)] = new_idx
        is_det[mo] = md
        probs = torch.zeros(ids.numel(), *dets.mask.shape[1:], device=dev)
        src = is_det[ids]
        from_det = src >= 0
        probs[from_det] = dets.mask[src[from_det]]
        carried_ids = ids[~from_det]
        if carried_ids.numel():
            # live rows are in memory order; carried output rows are a subset of them
            pos = torch.cumsum(live.long(), 0) - 1
            probs[~from_det] = self._live_probs[pos[carried_ids]]
        debug: dict[str, object] = {}
        if keep_debug:
            debug = {
                "sim": sim, "comp": comp, "best": best, "new": new_idx.tolist(),
                "matched": sorted(zip(match_det, match_obj, strict=True)),
                "dropped": [i for i in range(n) if int(best[i]) != 0 and i not in set(match_det)],
            }  # fmt: skip
        return TrackOutput(ids, new_mem.score[ids], new_mem.cls[ids], probs, debug)

    def _segment(self, mem: _Memory, proto: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Naive_Tacker's masks of memory ``rows`` on the current prototypes ``[H, W, T, D]``."""
        return instance_masks(self.cfg.mask_type, proto, mem.mask_coeff[rows], mem.box_cir[rows], 1.2, None)

    def _carry(
        self, mem: _Memory, proto: torch.Tensor, t: int, full: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Naive_Tacker on every memory object: boolean masks ``[M, T, H, W]`` re-segmented on this
        clip, and the probabilities of the rows that can still be output (``live``, ``[M]``).
        Unless ``full``, rows that can no longer be output get only the frames the next clip may
        share (the others stay empty: they are never used)."""
        h, w = proto.shape[:2]
        out = torch.zeros(len(mem), t, h, w, dtype=torch.bool, device=proto.device)
        live = (mem.tracked <= self.max_tracked) & (mem.score * 0.9**t > self.cfg.conf_thresh)
        rows = torch.arange(len(mem), device=proto.device) if full else torch.nonzero(live).flatten()
        probs = self._segment(mem, proto, rows)
        out[rows] = probs > 0.5
        if not full:
            probs_live = probs
            dead = torch.nonzero(~live).flatten()
            k = max(self.cfg.clip_overlap, 1)
            if dead.numel():
                out[dead, t - k :] = self._segment(mem, proto[:, :, t - k :], dead) > 0.5
        else:
            probs_live = probs[live]
        self._live_probs = probs_live
        return out, live
