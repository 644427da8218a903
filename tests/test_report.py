"""The comparison report: rows for every published result, reasons for missing ones, offline HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmark.registry import get_variant_cfg, list_variants
from benchmark.report.collect import collect_rows, e2e_fps, load_runs, verify


def _metrics(ap: float) -> dict[str, Any]:
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    return {
        "stats": {n: ap for n in names},
        "per_category": {"1": {"AP": ap}, "2": {"AP": -1.0}},
        "bootstrap": {"p2_5": ap - 0.02, "p97_5": ap + 0.01, "mean": ap, "std": 0.01, "n": 10},
    }


def _setup(tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(
        "runs:\n"
        "  r50_sub: {variant: crossvis_r50.ytvis2019, dataset: ytvis2019_valid_sub}\n"
        "reference_runs:\n"
        "  oracle: {variant: oracle.gt, dataset: toyvis_valid}\n"
    )
    for key, ap in (("r50_sub", 0.351), ("oracle", 1.0)):
        (tmp_path / "results" / key).mkdir(parents=True)
        (tmp_path / "results" / key / "metrics.json").write_text(json.dumps(_metrics(ap)))
    (tmp_path / "results" / "r50_sub" / "speed.json").write_text(json.dumps(SPEED))
    return params


#: The fields of a speed.json (``visrepro speed``) the report reads.
SPEED = {
    "fps": 40.0, "protocol": "model", "device": "cpu", "device_name": "Some CPU", "precision": "fp32",
    "threads": 1, "input_shape": [1, 3, 384, 640],
    "stage_ms": {"read": 5.0, "preprocess": 5.0, "forward": 25.0, "track": 5.0, "postprocess": 10.0},
}  # fmt: skip


def test_verify_deltas_and_tolerance() -> None:
    v = {x.metric: x for x in verify({"AP": 35.5, "AP50": 55.1}, {"AP": 35.1, "AP50": 50.0}, {"AP": 0.5})}
    assert v["AP"].delta == pytest.approx(-0.4) and v["AP"].ok is True
    assert v["AP50"].ok is None  # no tolerance declared for AP50
    assert v["AP75"].delta is None


def test_every_published_row_present_with_reason(tmp_path: Path) -> None:
    params = _setup(tmp_path)
    seed, others = collect_rows(load_runs(params), tmp_path / "results", checkpoints=tmp_path / "ck")
    methods = {n for n in list_variants(kind="method") if get_variant_cfg(n).published}
    assert {r.variant for r in seed} == methods and len(methods) == 20
    run = next(r for r in seed if r.run == "r50_sub")
    ap = next(v for v in run.verdicts if v.metric == "AP")
    assert ap.published == 35.5 and ap.reproduced == pytest.approx(35.1)
    assert run.split == "local valid_sub" and run.ci == pytest.approx((33.1, 36.1))
    assert run.per_category == {"1": pytest.approx(35.1)}
    missing = [r for r in seed if r.run is None]
    assert all(r.reason for r in missing)
    assert [o.run for o in others] == ["oracle"] and others[0].kind == "oracle"
    assert run.fps is not None and run.fps["fps"] == 40.0 and e2e_fps(run.fps) == pytest.approx(20.0)
    assert e2e_fps({"stage_ms": {}}) is None and e2e_fps({}) is None


def test_report_command_writes_offline_html(tmp_path: Path, cli: Any) -> None:
    params = _setup(tmp_path)
    rc, _, err = cli("report", "--runs", params, "--results", tmp_path / "results", "--out", tmp_path / "rep")
    assert rc == 0, err
    md = (tmp_path / "rep/README.md").read_text()
    assert "crossvis_r50.ytvis2019" in md and "35.5 / 35.1 (-0.4)" in md and "[33.1, 36.1]" in md
    assert md.count("| cico_") == 18
    assert "| 40.0 (model; e2e 20.0; Some CPU, fp32, 1 thread(s)) |" in md
    page = (tmp_path / "rep/report.html").read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']https?://""", page), "the page must not load anything"
    assert page.count("data:image/png;base64,") == 4
    for name in ("ap_vs_fps", "deltas", "per_category", "speed_vs_size"):
        assert (tmp_path / f"rep/plots/{name}.png").stat().st_size > 1000


def test_bad_runs_file(tmp_path: Path, cli: Any) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("runs:\n  x: {variant: oracle.gt}\n")
    rc, _, err = cli("report", "--runs", bad, "--results", tmp_path, "--out", tmp_path / "o")
    assert rc == 2 and "runs.x" in err and "needs 'variant' and 'dataset'" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs:\n  x: {variant: oracle.gt}\n", "runs.x: each run needs 'variant' and 'dataset'"),
        ("reference_runs: [a]\n", "'reference_runs' must be a mapping"),
        ("- a\n", "a params file is a mapping"),
        ("runs: {\n", "not valid YAML"),
        (
            "runs:\n  x: {variant: oracle.gt, dataset: toyvis_valid}\n"
            "reference_runs:\n  x: {variant: oracle.gt, dataset: toyvis_valid}\n",
            "reference_runs.x: the same run key in two groups",
        ),
    ],
)
def test_bad_run_groups(tmp_path: Path, cli: Any, text: str, message: str) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(text)
    rc, _, err = cli("report", "--runs", bad, "--results", tmp_path, "--out", tmp_path / "o")
    assert rc == 2 and message in err and str(bad) in err


def test_reference_weights_and_retraining_section(tmp_path: Path) -> None:
    """Each shipped small model gets a row: its record (how it was trained, the seed trials), the
    AP of its run, and, when ``retrain:`` names that run, the retrained AP and the difference."""
    import yaml

    from benchmark.report.collect import collect_retraining
    from benchmark.report.render import render_html, render_markdown

    weights = tmp_path / "weights"
    weights.mkdir()
    summary = {"step": 1200, "precision": "bf16", "precision_requested": "auto", "threads": 2,
               "wall_s": 456.0, "cpu": "Some CPU"}  # fmt: skip
    record = {"variant": "crossvis_tiny.toyvis", "sha256": "ab" * 32, "train_summary": summary,
              "seed_trials": [{"seed": 1, "threads": 1, "AP": 38.4}], "note": "a contended run"}  # fmt: skip
    (weights / "crossvis_tiny.toyvis.json").write_text(json.dumps(record))
    params = {"runs": {"cv": {"variant": "crossvis_tiny.toyvis", "dataset": "toyvis_valid"}}, "retrain": {}}
    for key, ap in (("cv", 0.43), ("cv_re", 0.40)):
        (tmp_path / "results" / key).mkdir(parents=True)
        (tmp_path / "results" / key / "metrics.json").write_text(json.dumps(_metrics(ap)))
    rows = collect_retraining(params, tmp_path / "results", weights)
    assert len(rows) == 1 and rows[0].retrain is None and rows[0].reference_ap is not None
    md = render_markdown([], [], {}, tmp_path, rows)
    assert "| crossvis_tiny.toyvis | `abababababab` | 1200 steps, bf16 (auto), 2 thread(s), 7.6 min" in md
    assert "38.4 (seed 1, 1 thr, ?)" in md and "| off |" in md
    params["retrain"] = {
        "cv_re": {"variant": "crossvis_tiny.toyvis", "dataset": "toyvis_valid", "compare": "cv"}
    }
    (tmp_path / "results" / "cv_re" / "model").mkdir()
    (tmp_path / "results" / "cv_re" / "model" / "train_summary.json").write_text(
        json.dumps({**summary, "precision": "fp32", "wall_s": 600.0})
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert set(load_runs(tmp_path / "params.yaml")) == {"cv", "cv_re"}  # retrain runs are runs too
    rows = collect_retraining(params, tmp_path / "results", weights)
    assert rows[0].retrain == "cv_re" and rows[0].delta == pytest.approx(-3.0)
    md = render_markdown([], [], {}, tmp_path, rows)
    assert "| cv_re | 40.0 [38.0, 41.0] | -3.0 | 1200 steps, fp32 (auto), 2 thread(s), 10.0 min" in md
    assert "Notes:\n- crossvis_tiny.toyvis: a contended run" in md
    assert "cv_re" in render_html([], [], {}, rows) and "a contended run" in render_html([], [], {}, rows)
