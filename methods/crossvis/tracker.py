"""The online tracker of the official ``tools/test_vis.py``, with its quirks kept on purpose.

Reproduced exactly because the published numbers come from it:

* a detection is scored against the **last** entry of every track: ``-1`` if the classes differ,
  else cosine(re-id) + box IoU (original-size boxes, eps 1e-5, no +1);
* below 0.4 (or with no tracks) it starts a new track, otherwise it claims the best track (first
  on ties); scores are computed against the memory as it was *before* the frame;
* when several detections claim one track, the highest score keeps it and **the others are
  discarded** (they do not start new tracks);
* tracks never end (no max age, no motion model), and every track is reported.

The cosine is taken as in the official code: float32 dot product and norms, divided in double
precision. Here the dots are one matrix product instead of one ``mm`` per pair (same values up
to float32 summation order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Entry", "OnlineTracker", "StepRecord", "pair_scores"]

MATCH_THRESH = 0.4


@dataclass
class Entry:
    frame: int
    det: int  # index in the frame's detections
    reid: torch.Tensor  # [256]
    box: torch.Tensor  # [4]
    score: float
    cls: int


@dataclass
class StepRecord:
    """What one frame did (the same fields as the fixtures' ``tracking.json``)."""

    frame: int
    memory_keys_before: list[int]
    score_matrix: list[list[float]]
    assigned: list[tuple[int, float]]
    decisions: list[list[int | str]]
    kept: dict[int, int] = field(default_factory=dict)  # track id -> detection index, this frame


def _box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Pairwise IoU ``[n, m]`` (float32), the official formula (clamped intersection, +eps)."""
    a, b = a[:, None, :4], b[None, :, :4]
    lt = torch.max(a[..., :2], b[..., :2])
    rb = torch.min(a[..., 2:], b[..., 2:])

    def area(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        hw = torch.clamp(q - p, min=0.0)
        return hw[..., 0] * hw[..., 1]

    inter = area(lt, rb)
    return inter / (area(a[..., :2], a[..., 2:]) + area(b[..., :2], b[..., 2:]) - inter + eps)


def pair_scores(
    reid: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor,
    t_reid: torch.Tensor, t_boxes: torch.Tensor, t_classes: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """``[n, m]`` float64: -1 where classes differ, else cos(reid) + IoU(box)."""
    reid, t_reid = reid.float(), t_reid.float()
    dots = (reid @ t_reid.T).double()
    nd = torch.linalg.vector_norm(reid, dim=1).double()
    nt = torch.linalg.vector_norm(t_reid, dim=1).double()
    cos = dots / nd[:, None] / nt[None, :]
    s = cos + _box_iou(boxes.float(), t_boxes.float()).double()
    return torch.where(classes[:, None] == t_classes[None, :], s, torch.full_like(s, -1.0))


class OnlineTracker:
    """``memory``: track id -> entries, ids 0, 1, 2... in creation order; never pruned."""

    def __init__(self, thresh: float = MATCH_THRESH) -> None:
        self.thresh = thresh
        self.memory: dict[int, list[Entry]] = {}

    def reset(self) -> None:
        self.memory = {}

    def step(
        self, frame: int, boxes: torch.Tensor, reid: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
    ) -> StepRecord:
        """Associate one frame's detections (in descending score order) with the tracks."""
        n = int(scores.shape[0])
        ids = list(self.memory)
        rec = StepRecord(frame, ids, [], [], [])
        if n == 0:  # frames without detections are skipped entirely
            return rec
        boxes, reid = boxes.detach().cpu().float(), reid.detach().cpu().float()
        score_list = [float(s) for s in scores.detach().cpu().float().tolist()]
        cls_list = [int(c) for c in classes.detach().cpu().tolist()]
        if ids:
            last = [self.memory[k][-1] for k in ids]
            mat = pair_scores(
                reid, boxes, classes.cpu(),
                torch.stack([e.reid for e in last]), torch.stack([e.box for e in last]),
                torch.tensor([e.cls for e in last]),
            )  # fmt: skip
            rec.score_matrix = mat.tolist()
            best_val, best_pos = mat.max(dim=1)  # first maximum on ties, as list.index(max)
            for v, p in zip(best_val.tolist(), best_pos.tolist(), strict=True):
                rec.assigned.append((-1, 0.0) if v < self.thresh else (ids[p], float(v)))
        else:
            rec.score_matrix = [[] for _ in range(n)]
            rec.assigned = [(-1, 0.0)] * n
        best = [-1.0] * len(self.memory)
        claimant: dict[int, int] = {}
        for d, (k, s) in enumerate(rec.assigned):
            entry = Entry(frame, d, reid[d], boxes[d], score_list[d], cls_list[d])
            if k == -1:
                new = len(self.memory)
                self.memory[new] = [entry]
                rec.kept[new] = d
                rec.decisions.append(["new", new])
            elif s > best[k]:
                if best[k] < 0:
                    self.memory[k].append(entry)
                    rec.decisions.append(["append", k])
                else:  # the earlier claimant is discarded
                    self.memory[k][-1] = entry
                    rec.decisions.append(["replace", k, claimant[k]])
                best[k] = s
                claimant[k] = d
                rec.kept[k] = d
            else:
                rec.decisions.append(["drop", k])
        return rec
