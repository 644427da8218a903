"""Per-video diagnostics: missed GT tracks, false positives, best IoU per GT track.

All at IoU 0.5, area range 'all', the 100 best predictions per video and category (the matching the
AP50 number uses).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.evaluation.loading import GTTable, PredTable
from benchmark.evaluation.ytvis_eval import Matches

__all__ = ["per_video_diagnostics"]


def per_video_diagnostics(gt: GTTable, dt: PredTable, mt: Matches) -> list[dict[str, Any]]:
    """One entry per GT video (ascending id): its GT tracks with best IoU and whether matched at
    IoU 0.5, the ids of missed (non-crowd) GT tracks and the false positives at IoU 0.5."""
    videos: dict[int, dict[str, Any]] = {
        int(v): {
            "video_id": int(vid),
            "n_gt": 0,
            "n_predictions": 0,
            "gt": [],
            "missed": [],
            "false_positives": [],
        }
        for v, vid in enumerate(gt.video_ids)
    }
    for u in range(len(mt.unit_cat)):
        v = int(mt.unit_video[u])
        cat_id = int(gt.cat_ids[mt.unit_cat[u]])
        rec = videos[v]
        ious = mt.ious[u]
        ds, de = int(mt.det_start[u]), int(mt.det_start[u + 1])
        gs, ge = int(mt.gt_start[u]), int(mt.gt_start[u + 1])
        rec["n_predictions"] += de - ds
        for j, g in enumerate(range(gs, ge)):
            row = int(mt.gt_row[g])
            best = float(ious[:, j].max()) if ious.shape[0] else 0.0
            matched = bool(mt.gtm[g, 0, 0])
            crowd = bool(gt.crowd[row])
            rec["n_gt"] += 1
            rec["gt"].append({
                "id": int(gt.ids[row]), "category_id": cat_id, "best_iou": best,
                "matched_at_50": matched, "crowd": crowd,
            })  # fmt: skip
            if not matched and not crowd:
                rec["missed"].append(int(gt.ids[row]))
        fp = ~mt.dtm[ds:de, 0, 0] & ~mt.dtig[ds:de, 0, 0]
        for d in np.flatnonzero(fp):
            p = int(mt.det_pred[ds + d])
            best = float(ious[d].max()) if ious.shape[1] else 0.0
            rec["false_positives"].append({
                "results_index": int(dt.entry[p]), "category_id": cat_id,
                "score": float(dt.score[p]), "best_iou": best,
            })  # fmt: skip
    return [videos[v] for v in sorted(videos)]
