"""CiCo's clip linking (official ``Track_TF``): MaskTrack-R-CNN-style matching of a clip's
detections with a memory of every object of the video.

Per clip: composite score = appearance ``(cos + 1) / 2`` + ``c0 * score`` + ``c1 * MIoU`` +
``c2 * BIoU`` + ``c3 * same class``, with a dummy "new object" column; greedy assignment in
descending score order (losers of a contest are dropped); unmatched memory objects are carried
forward: re-segmented on the current clip's prototypes with their stored coefficients (crop x1.2),
score decayed by ``0.9 ** T``, box frozen to its last frame; output for up to ``max(3, 15 // T)``
clips while their score stays above the threshold.

Memory is bounded: masks are kept per *mask source* (a detection candidate; every object made
from one candidate has the same coefficients and boxes, hence the same masks while it is carried
forward) rather than per object, as booleans (only ``> 0.5`` is ever used again), and only on
the frames the next clip shares; objects that can no longer be output are re-segmented only on
those frames; re-segmentation, mask IoU and the matching scores are computed in chunks.
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


_CHUNK = 256  # mask sources re-segmented / compared at once
_ROW_CHUNK = 1024  # detections scored against the memory at once


@dataclass
class TrackOutput:
    """Objects output for one clip, in memory (= id) order."""

    ids: torch.Tensor  # [k] object ids
    score: torch.Tensor  # [k]
    cls: torch.Tensor  # [k] 1-based class
    masks: torch.Tensor  # [u, T, H, W] probabilities of the mask sources the objects use
    mask_idx: torch.Tensor  # [k] each object's row in ``masks``
    debug: dict[str, object] = field(default_factory=dict)

    def pair_masks(self) -> torch.Tensor:
        """``[k, T, H, W]``: each object's mask (a copy per object; for tests)."""
        return self.masks[self.mask_idx]


@dataclass
class _Memory:
    cls: torch.Tensor
    score: torch.Tensor
    box: torch.Tensor  # [M, T, 4]
    box_cir: torch.Tensor  # [M, 4]
    mask_coeff: torch.Tensor
    track: torch.Tensor
    prior_levels: torch.Tensor
    tracked: torch.Tensor  # [M] float, clips since last matched
    img_ids: tuple[int, ...]
    src: torch.Tensor  # [M] each object's mask source (row of ``fg``)
    fg: torch.Tensor  # [S, K, H, W] bool: the sources' masks > 0.5 on the clip's last K frames

    def __len__(self) -> int:
        return int(self.score.shape[0])


def _chunked_mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`mask_iou` ``[T, A, H, W] x [T, B, H, W] -> [T, A, B]``, ``b`` in chunks (its float
    copy is the large one: ``B`` grows with the video)."""
    if b.shape[1] <= _CHUNK:
        return mask_iou(a, b)
    return torch.cat([mask_iou(a, b[:, s : s + _CHUNK]) for s in range(0, b.shape[1], _CHUNK)], 2)


class TrackTF:
    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self.memory: _Memory | None = None
        self.max_tracked = max(3, 15 // cfg.clip_frames)
        # frames of a clip kept in memory: the ones the next clip shares (clip_schedule)
        self.kept_frames = max(cfg.clip_overlap, 1)

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
        kf = self.kept_frames
        empty = TrackOutput(
            torch.zeros(0, dtype=torch.long, device=dev), dets.score[:0], dets.cls[:0], dets.masks[:0],
            dets.mask_idx[:0],
        )  # fmt: skip
        mem = self.memory
        det_fg = dets.masks > 0.5  # [U, T, H, W], per mask source
        if mem is None:
            if n == 0:
                return empty
            self.memory = _Memory(
                dets.cls.clone(), dets.score.clone(), dets.box.clone(), dets.box_cir.clone(),
                dets.mask_coeff.clone(), dets.track.clone(), dets.prior_levels.clone(),
                torch.zeros(n, device=dev), tuple(img_ids), dets.mask_idx.clone(), det_fg[:, -kf:].clone(),
            )  # fmt: skip
            ids = torch.arange(n, device=dev)
            return TrackOutput(
                ids, dets.score, dets.cls, dets.masks, dets.mask_idx,
                {"new": list(range(n))} if keep_debug else {},
            )  # fmt: skip
        mem.tracked += 1
        if n == 0:
            return empty
        t = dets.box.shape[1]
        shared = [(pi, ci) for pi, a in enumerate(mem.img_ids) for ci, b in enumerate(img_ids) if a == b]
        coeff = list(cfg.match_coeff)
        didx, msrc = dets.mask_idx, mem.src
        if shared:
            coeff[1:3] = [coeff[1] * 2, coeff[2] * 2]
            first_kept = len(mem.img_ids) - kf
            if min(p for p, _ in shared) < first_kept:
                raise RuntimeError(
                    f"clip {img_ids} shares frames of {mem.img_ids} beyond the last {kf} the tracker keeps"
                )
            p_idx = [p - first_kept for p, _ in shared]
            c_idx = [c for _, c in shared]
            d_m = det_fg[:, c_idx].transpose(0, 1)  # [F, U, H, W]
            p_m = mem.fg[:, p_idx].transpose(0, 1)  # [F, S, H, W]
            carried = self._carry(mem, proto, t, full=cfg.clip_overlap < 1)
            p_pos = [p for p, _ in shared]
            box_pairs = (dets.box[:, c_idx].transpose(0, 1), mem.box[:, p_pos].transpose(0, 1))
        else:
            carried = self._carry(mem, proto, t, full=True)
            d_m = det_fg.transpose(0, 1)
            assert carried.fg_all is not None
            p_m = carried.fg_all.transpose(0, 1)
            box_pairs = None
        d_ok = d_m.flatten(2).sum(-1) > 2  # [F, U]
        p_ok = p_m.flatten(2).sum(-1) > 2  # [F, S]
        miou_src = _chunked_mask_iou(d_m, p_m)  # [F, U, S]
        wh = center_size(dets.box.transpose(0, 1).reshape(-1, 4)).reshape(t, n, 4).mean(0)[:, 2:]
        small = torch.prod(wh, dim=-1) < 0.1
        dummy = torch.full((n, 1), cfg.bbox_dummy_iou, device=dev)
        dummy[small] *= 0.5
        # composite scores, in chunks of detections (the [n, M] matrices are the large part)
        best_val = torch.empty(n, device=dev)
        best = torch.empty(n, dtype=torch.long, device=dev)
        sims, comps = [], []
        for r0 in range(0, n, _ROW_CHUNK):
            r = slice(r0, min(r0 + _ROW_CHUNK, n))
            cos = dets.track[r] @ mem.track.t()
            sim = torch.cat([torch.full((cos.shape[0], 1), 0.5, device=dev), (cos + 1) / 2], 1)
            flag = d_ok[:, didx[r]][:, :, None] & p_ok[:, msrc][:, None, :]
            denom = flag.sum(0).clamp(min=1)
            mious = (miou_src[:, didx[r]][:, :, msrc] * flag).sum(0) / denom
            if box_pairs is not None:
                bious = box_iou(box_pairs[0][:, r], box_pairs[1])
                bious = (bious * flag).sum(0) / denom
            else:
                bious = box_iou(dets.box[r, 0], mem.box[:, -1])
            label_eq = (mem.cls[None, :] == dets.cls[r, None]).float()
            bious = torch.cat([dummy[r], bious], 1)
            mious = torch.cat([dummy[r], mious], 1)
            label_eq = torch.cat([torch.ones(label_eq.shape[0], 1, device=dev), label_eq], 1)
            comp = sim + (
                coeff[0] * dets.score[r].view(-1, 1)
                + coeff[1] * mious
                + coeff[2] * bious
                + coeff[3] * label_eq
            )
            best_val[r], best[r] = torch.max(comp, dim=1)
            if keep_debug:
                sims.append(sim)
                comps.append(comp)
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
        s_old = carried.fg_kept.shape[0]
        src = upd(msrc, didx + s_old)  # carried objects keep their source; the others the detection's
        used, src = torch.unique(src, return_inverse=True)
        all_fg = torch.cat([carried.fg_kept, det_fg[:, -kf:]], 0)
        new_mem = _Memory(
            upd(mem.cls, dets.cls), upd(mem.score * 0.9**t, dets.score),
            upd(last[:, None].repeat(1, t, 1), dets.box), upd(last.clone(), dets.box_cir),
            upd(mem.mask_coeff, dets.mask_coeff), upd(mem.track, dets.track),
            upd(mem.prior_levels, dets.prior_levels), upd(mem.tracked, zeros), tuple(img_ids),
            src, all_fg[used],
        )  # fmt: skip
        # an object's mask must cover > 3 pixels in some frame of this clip (carried objects that
        # can no longer be output fail the first two tests and were not re-segmented on every frame)
        area_ok = torch.cat([carried.area_ok, (det_fg.flatten(2).sum(-1) > 3).sum(1) > 0])[used[src]]
        keep = (new_mem.tracked <= self.max_tracked) & (new_mem.score > cfg.conf_thresh) & area_ok
        self.memory = new_mem
        ids = torch.nonzero(keep).flatten()
        # masks of the output objects: the detections' sources, or the carried sources re-segmented
        # (rows of carried.probs, which holds the live sources)
        probs_all = torch.cat([carried.probs, dets.masks], 0)
        row_of = torch.full((s_old + dets.masks.shape[0],), -1, dtype=torch.long, device=dev)
        row_of[carried.live_src] = torch.arange(carried.live_src.numel(), device=dev)
        row_of[s_old:] = carried.probs.shape[0] + torch.arange(dets.masks.shape[0], device=dev)
        out_rows = row_of[used[src[ids]]]
        if bool((out_rows < 0).any()):
            raise RuntimeError("an output object's mask source was not re-segmented")
        out_used, out_idx = torch.unique(out_rows, return_inverse=True)
        debug: dict[str, object] = {}
        if keep_debug:
            debug = {
                "sim": torch.cat(sims), "comp": torch.cat(comps), "best": best, "new": new_idx.tolist(),
                "matched": sorted(zip(match_det, match_obj, strict=True)),
                "dropped": [i for i in range(n) if int(best[i]) != 0 and i not in set(match_det)],
            }  # fmt: skip
        return TrackOutput(ids, new_mem.score[ids], new_mem.cls[ids], probs_all[out_used], out_idx, debug)

    def _segment(self, mem: _Memory, proto: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Naive_Tacker's masks of memory objects ``rows`` on the current prototypes ``[H, W, T, D]``."""
        return instance_masks(self.cfg.mask_type, proto, mem.mask_coeff[rows], mem.box_cir[rows], 1.2, None)

    def _carry(self, mem: _Memory, proto: torch.Tensor, t: int, full: bool) -> _Carried:
        """Naive_Tacker on every memory object, per mask source (one object of each source stands for
        all: they share coefficients and boxes). Sources with an object that can still be output
        (``live``) are re-segmented on the whole clip; unless ``full``, the others only on the
        frames the next clip shares (their other frames are never used)."""
        h, w = proto.shape[:2]
        kf = self.kept_frames
        live = (mem.tracked <= self.max_tracked) & (mem.score * 0.9**t > self.cfg.conf_thresh)
        n_src = mem.fg.shape[0]
        dev = proto.device
        rep = torch.zeros(n_src, dtype=torch.long, device=dev)  # an object of each source
        rep[mem.src] = torch.arange(len(mem), device=dev)
        live_src = torch.zeros(n_src, dtype=torch.bool, device=dev)
        live_src[mem.src[live]] = True
        whole = torch.arange(n_src, device=dev) if full else torch.nonzero(live_src).flatten()
        fg_kept = torch.zeros(n_src, kf, h, w, dtype=torch.bool, device=dev)
        area_ok = torch.zeros(n_src, dtype=torch.bool, device=dev)
        fg_all = torch.zeros(n_src, t, h, w, dtype=torch.bool, device=dev) if full else None
        live_probs = []  # float probabilities are kept for the live sources only (ascending order)
        for s in range(0, whole.numel(), _CHUNK):
            rows = whole[s : s + _CHUNK]
            probs = self._segment(mem, proto, rep[rows])
            fg = probs > 0.5
            fg_kept[rows] = fg[:, t - kf :]
            area_ok[rows] = (fg.flatten(2).sum(-1) > 3).sum(1) > 0
            if fg_all is not None:
                fg_all[rows] = fg
            live_probs.append(probs[live_src[rows]])
        rest = whole[:0] if full else torch.nonzero(~live_src).flatten()
        for s in range(0, rest.numel(), _CHUNK):
            rows = rest[s : s + _CHUNK]
            fg_kept[rows] = self._segment(mem, proto[:, :, t - kf :], rep[rows]) > 0.5
        live_rows = torch.nonzero(live_src).flatten()
        probs_live = torch.cat(live_probs) if live_probs else torch.zeros(0, t, h, w, device=dev)
        return _Carried(fg_kept, area_ok, live_rows, probs_live, fg_all)


@dataclass
class _Carried:
    """:meth:`TrackTF._carry`'s result, per memory mask source."""

    fg_kept: torch.Tensor  # [S, K, H, W] bool, the frames the next clip shares
    area_ok: torch.Tensor  # [S] > 3 pixels in some frame (meaningful for live sources)
    live_src: torch.Tensor  # [L] the sources with an object that can still be output
    probs: torch.Tensor  # [L, T, H, W] their probabilities on this clip
    fg_all: torch.Tensor | None  # [S, T, H, W] bool on the whole clip (``full`` only)
