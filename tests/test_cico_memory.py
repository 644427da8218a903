"""CiCo's tracker keeps masks per mask source (detection candidate), not per (candidate, class)
pair: the same decisions and masks as one copy per pair, with memory bounded by the candidates.

With random weights one clip can keep thousands of pairs of a few hundred candidates; the
official code (and this suite before) held a mask per pair in Detect's output, the tracker's
memory and its output. These tests build clips whose candidates pass for many classes and run the
tracker twice: on Detections whose pairs share their candidate's mask, and on the same pairs
each with a private copy. Everything must agree; the first keeps far fewer masks.
"""

from __future__ import annotations

import pytest
import torch

from methods.cico.detect import Detections
from methods.cico.masks import instance_masks
from methods.cico.track import TrackConfig, TrackOutput, TrackTF

# two code paths (shared vs private mask copies) compared at atol 0 / 1e-6
pytestmark = pytest.mark.numeric

T, H, W, D = 3, 24, 40, 8


def _clip(g: torch.Generator, base: dict[str, torch.Tensor], proto: torch.Tensor) -> Detections:
    """Candidates near ``base`` (so objects match across clips) kept for every class above 0.1."""
    n = base["coeff"].shape[0]
    coeff = base["coeff"] + 0.1 * torch.randn(n, D, generator=g)
    ctr = (base["ctr"] + 0.02 * torch.randn(n, 1, 2, generator=g)).clamp(0.15, 0.85)
    ctr = ctr + 0.01 * torch.arange(T).reshape(1, T, 1)
    box = torch.cat([ctr - base["half"], ctr + base["half"]], -1)  # [n, T, 4]
    box_cir = torch.cat([box[..., :2].min(1).values, box[..., 2:].max(1).values], -1)
    track = torch.nn.functional.normalize(base["track"] + 0.1 * torch.randn(n, 64, generator=g), dim=1)
    # every third candidate scores <= 0.13 for every class: its objects can no longer be output
    # after one clip (0.13 * 0.9 ** 3 < 0.1), so the memory holds dead sources
    low = (torch.arange(n) % 3 == 0).reshape(n, 1)
    conf = torch.rand(n, 5, generator=g) * torch.where(low, 0.13, 1.0)
    cand, cls = torch.nonzero(conf > 0.1, as_tuple=True)
    score = conf[cand, cls]
    order = score.sort(descending=True).indices
    cand, cls, score = cand[order], cls[order], score[order]
    masks = instance_masks("yolact", proto, coeff, box_cir, 1.1, 0.1)
    used, idx = torch.unique(cand, return_inverse=True)
    return Detections(
        score, cls + 1, box[cand], box_cir[cand], masks[used], idx, coeff[cand], track[cand],
        torch.zeros(len(cand), dtype=torch.long), cand,
    )  # fmt: skip


def _private(d: Detections) -> Detections:
    """The same pairs, each with its own copy of the mask."""
    return Detections(
        d.score, d.cls, d.box, d.box_cir, d.pair_masks().clone(), torch.arange(len(d)), d.mask_coeff,
        d.track, d.prior_levels, d.anchor,
    )  # fmt: skip


def _same(a: TrackOutput, b: TrackOutput) -> None:
    assert torch.equal(a.ids, b.ids) and torch.equal(a.cls, b.cls)
    torch.testing.assert_close(a.score, b.score, rtol=0, atol=0)
    assert torch.equal(a.pair_masks() > 0.5, b.pair_masks() > 0.5)
    torch.testing.assert_close(a.pair_masks(), b.pair_masks(), rtol=0, atol=1e-6)


def test_shared_mask_sources_decide_as_private_copies() -> None:
    g = torch.Generator().manual_seed(0)
    n = 12
    base = {
        "coeff": torch.randn(n, D, generator=g),
        "ctr": torch.rand(n, 1, 2, generator=g) * 0.6 + 0.2,
        "half": torch.rand(n, 1, 2, generator=g) * 0.15 + 0.05,
        "track": torch.randn(n, 64, generator=g),
    }
    shared_tr = TrackTF(TrackConfig(mask_type="yolact"))
    private_tr = TrackTF(TrackConfig(mask_type="yolact"))
    # the gap before frame 5 shares nothing: that clip re-segments the whole memory (``full``)
    schedule = [(0, 1, 2), (2, 3, 4), (5, 6, 7), (7, 8, 9), (9, 10, 9)]
    carried_out = 0
    for c, ids in enumerate(schedule):
        proto = torch.randn(H, W, T, D, generator=g)
        dets = _clip(g, base, proto)
        before = shared_tr.memory
        prev = (before.mask_coeff.clone(), before.box_cir.clone()) if before is not None else None
        assert len(dets) > 2 * dets.masks.shape[0]  # many pairs per candidate
        a = shared_tr(dets, proto, ids, c == 0, keep_debug=True)
        b = private_tr(_private(dets), proto, ids, c == 0, keep_debug=True)
        _same(a, b)
        if c:
            assert a.debug["matched"] == b.debug["matched"] and a.debug["new"] == b.debug["new"]
            torch.testing.assert_close(a.debug["comp"], b.debug["comp"], rtol=0, atol=1e-6)
            # carried objects: re-segmented from their own coefficients and box (crop x1.2)
            assert prev is not None
            matched = {o for _, o in a.debug["matched"]}
            rows = [k for k, o in enumerate(a.ids.tolist()) if o < len(prev[0]) and o not in matched]
            carried_out += len(rows)
            if rows:
                objs = a.ids[rows]
                expect = instance_masks("yolact", proto, prev[0][objs], prev[1][objs], 1.2, None)
                torch.testing.assert_close(a.pair_masks()[rows], expect, rtol=0, atol=1e-6)
        ms, mp = shared_tr.memory, private_tr.memory
        assert ms is not None and mp is not None and len(ms) == len(mp)
        # one mask per source, on the frame the next clip shares only
        assert ms.fg.shape[1] == 1 and ms.fg.shape[0] == int(torch.unique(ms.src).numel())
        assert ms.fg.shape[0] < mp.fg.shape[0] == len(mp)
        assert torch.equal(ms.fg[ms.src], mp.fg[mp.src])
    assert carried_out > 0, "the clips exercise carried-forward objects"
