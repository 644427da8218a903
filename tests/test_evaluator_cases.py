"""The evaluator against the official YouTube-VIS evaluator's answers (tests/fixtures/evaluator)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.errors import InputError
from benchmark.evaluation.bootstrap import _CatData, ap_for_counts
from benchmark.evaluation.evaluate import evaluate
from benchmark.evaluation.ytvis_eval import STAT_NAMES

# floats against the official evaluator's answers at 1e-9
pytestmark = pytest.mark.numeric

CASES = Path(__file__).parent / "fixtures" / "evaluator"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())
TOL = 1e-9


def _load(name: str) -> tuple[dict, list, dict]:
    d = CASES / name
    return (
        json.loads((d / "gt.json").read_text()),
        json.loads((d / "results.json").read_text()),
        json.loads((d / "expected.json").read_text()),
    )


def _assert_close(got: dict, exp: dict, what: str) -> None:
    for s in STAT_NAMES:
        assert abs(got[s] - exp[s]) <= TOL, f"{what} {s}: got {got[s]!r}, official {exp[s]!r}"


def test_all_cases_present() -> None:
    assert len(NAMES) == 50


@pytest.mark.parametrize("name", NAMES)
def test_case_matches_official(name: str) -> None:
    gt, res, exp = _load(name)
    crashed = "official_error" in exp
    quirk = name.startswith("quirk_")
    if quirk or name == "error_unknown_video_id":
        with pytest.raises(InputError):  # strict mode rejects malformed predictions
            evaluate(gt, copy.deepcopy(res))
    if quirk or crashed:
        r = evaluate(gt, res, lenient=True)
    else:
        r = evaluate(gt, res)
    stats = exp["stats_if_bypassed"] if crashed else exp["stats"]
    per_cat = exp["per_category_if_bypassed"] if crashed else exp["per_category"]
    _assert_close(r.stats, stats, name)
    assert {str(k) for k in r.per_category} == set(per_cat)
    for cid, e in per_cat.items():
        _assert_close(r.per_category[int(cid)], e, f"{name} category {cid}")


def _with_occlusion(gt: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    gt = copy.deepcopy(gt)
    labels = ["no_occlusion", "slight_occlusion", "severe_occlusion", None]
    for a in gt.get("annotations") or []:
        occ = [labels[int(i)] for i in rng.integers(0, 4, len(a["segmentations"]))]
        if all(o is None for o in occ):
            occ[0] = "slight_occlusion"
        a["occlusion"] = occ
    return gt


@pytest.mark.parametrize(
    "name", [*[n for n in NAMES if n.startswith("r0")][:12], "hm_crowd", "hm_recall_grid"]
)
def test_ovis_shares_the_12_stats(name: str) -> None:
    gt, res, exp = _load(name)
    r = evaluate(_with_occlusion(gt, 7), res)
    assert r.ovis is not None and len(r.ovis) == 18
    for s in STAT_NAMES:
        assert r.ovis[s] == r.stats[s] == pytest.approx(exp["stats"][s], abs=TOL)


def test_bootstrap_identity_resample_gives_ap() -> None:
    gt, res, exp = _load("r023")
    from benchmark.evaluation import ytvis_eval as ye
    from benchmark.evaluation.evaluate import _select
    from benchmark.evaluation.loading import build_gt, build_preds

    g = build_gt(gt)
    d = build_preds(res, g)
    order = _select(g, d)
    kept = np.zeros(len(d.video), bool)
    kept[order] = True
    mt = ye.match(g, d, order, ye.track_ious(g, d, kept), 4)
    cats = [_CatData(mt, k, len(g.video_ids)) for k in range(len(g.cat_ids))]
    assert ap_for_counts(cats, np.ones(len(g.video_ids), dtype=np.int64)) == pytest.approx(
        exp["stats"]["AP"], abs=1e-12
    )
    # doubling every video leaves precision at every recall point unchanged up to ties order
    r = evaluate(gt, res, bootstrap=50, seed=3)
    b = r.bootstrap
    assert b is not None and b["n"] == 50
    assert 0 <= b["p2_5"] <= b["mean"] <= b["p97_5"] <= 1
    assert evaluate(gt, res, bootstrap=50, seed=3).bootstrap == b  # seeded: reproducible


def test_bootstrap_duplicates_are_distinct_videos() -> None:
    # one video, one GT, one perfect prediction: any resample has AP 1 (duplicates add GT and TP alike)
    gt, res, _ = _load("hm_perfect")
    r = evaluate(gt, res, bootstrap=20, seed=1)
    assert r.bootstrap is not None
    assert r.bootstrap["mean"] == pytest.approx(1.0, abs=1e-9)
    assert r.bootstrap["std"] == pytest.approx(0.0, abs=1e-9)


def test_cli_in_process_writes_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = CASES / "r006"
    out = tmp_path / "m.json"
    rc = main(["evaluate", "--gt", str(d / "gt.json"), "--results", str(d / "results.json"), "--out", str(out),
               "--per-category", "--per-video", "--bootstrap", "5", "--seed", "2"])  # fmt: skip
    assert rc == 0
    m = json.loads(out.read_text())
    exp = json.loads((d / "expected.json").read_text())
    _assert_close(m["stats"], exp["stats"], "r006")
    assert set(m) >= {"stats", "per_category", "per_video", "bootstrap", "meta"}
    assert m["meta"]["n_predictions"] == 99 and len(m["meta"]["gt_sha256"]) == 64
    assert m["meta"]["lenient"] is False
    assert len(m["per_video"]) == 8
    for v in m["per_video"]:
        for g in v["gt"]:
            assert 0.0 <= g["best_iou"] <= 1.0
    text = capsys.readouterr().out
    assert "AP50" in text and "per category" in text and "bootstrap AP" in text


def test_cli_strict_quirk_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    d = CASES / "quirk_dt_shorter_than_video"
    rc = main(["evaluate", "--gt", str(d / "gt.json"), "--results", str(d / "results.json")])
    assert rc == 2
    assert "segmentations has 2 entries, the video has 4 frames" in capsys.readouterr().err


def test_cli_subprocess(tmp_path: Path) -> None:
    d = CASES / "hm_tied_scores_across_videos"
    out = tmp_path / "m.json"
    p = subprocess.run(
        [sys.executable, "-m", "benchmark", "evaluate", "--gt", str(d / "gt.json"),
         "--results", str(d / "results.json"), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    exp = json.loads((d / "expected.json").read_text())
    _assert_close(json.loads(out.read_text())["stats"], exp["stats"], "subprocess")
