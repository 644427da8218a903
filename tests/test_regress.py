"""The regression gate: a broken tracker and a slowed model must fail it; an unchanged run passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.regress import check_accuracy, check_speed
from tests.conftest import make_tiny_dataset


def _predict_eval(cli: Any, gt: Path, results: Path, run: str, *extra: str) -> dict[str, float]:
    out = results / run
    rc, _, err = cli(
        "predict", "--variant", "oracle.gt", "--dataset", gt, "--out", out / "r.json", "--no-progress", *extra
    )
    assert rc == 0, err
    rc, _, err = cli("evaluate", "--gt", gt, "--results", out / "r.json", "--out", out / "metrics.json")
    assert rc == 0, err
    return json.loads((out / "metrics.json").read_text())["stats"]


def _gt_with_crossing(tmp_path: Path) -> Path:
    """Two videos, each with two tracks of one category, so an identity swap costs AP."""
    gt_path = make_tiny_dataset(tmp_path, videos=2, frames=6)
    gt = json.loads(gt_path.read_text())
    for a in gt["annotations"]:
        a["category_id"] = 1
    extra = json.loads(json.dumps([a for a in gt["annotations"] if a["video_id"] == 1]))
    for k, a in enumerate(extra):
        a["id"] = 100 + k
        a["video_id"] = 2
    gt["annotations"] = [a for a in gt["annotations"] if a["video_id"] != 2] + extra
    gt_path.write_text(json.dumps(gt))
    return gt_path


def test_accuracy_gate(tmp_path: Path, cli: Any) -> None:
    gt = _gt_with_crossing(tmp_path)
    results = tmp_path / "results"
    good = _predict_eval(cli, gt, results, "run")
    assert all(f.level == "ok" for f in check_accuracy({"run": good}, results, 1e-6))
    # the same run with a broken tracker (identities swapped mid-video) must fail, readably
    broken = _predict_eval(cli, gt, results, "run", "--overwrite", "--adapter-arg", "swap=1.0")
    assert broken["AP"] < good["AP"]
    findings = check_accuracy({"run": good}, results, 1e-6)
    assert [f.level for f in findings] == ["fail"]
    assert "dropped: AP 100.0000 ->" in findings[0].message
    # and through the CLI: exit 1
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps({"accuracy": {"run": good}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 1 and "FAIL run: dropped" in out and "regression gate: FAIL" in out
    # a rise is reported but passes; a missing run fails
    findings = check_accuracy({"run": broken, "gone": good}, results, 1e-6)
    assert {f.what: f.level for f in findings} == {"run": "ok", "gone": "fail"}


def test_speed_gate_catches_a_slowed_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from methods import _testing

    gt = make_tiny_dataset(tmp_path, videos=2, frames=30, size=(48, 64))
    root = str(gt.parent / "JPEGImages")
    entry = {"test_tiny.toy": {"dataset": str(gt), "frames_root": root, "ratio": 0.0}}
    _, measured = check_speed(entry, limit=0.4, frames=40)
    baseline = {"test_tiny.toy": {**entry["test_tiny.toy"], "ratio": measured["test_tiny.toy"]["ratio"]}}
    findings, _ = check_speed(baseline, limit=10.0, frames=40)  # unchanged model: far inside a wide limit
    assert findings[0].level == "ok"

    original: Callable[..., torch.Tensor] = _testing.TinyNet.forward

    def slowed(self: Any, x: torch.Tensor) -> torch.Tensor:
        for _ in range(60):  # a deliberate 60x slow-down of the network
            out = original(self, x)
        return out

    monkeypatch.setattr(_testing.TinyNet, "forward", slowed)
    findings, m = check_speed(baseline, limit=0.4, frames=40)
    assert findings[0].level == "fail", findings[0].message
    assert m["test_tiny.toy"]["ratio"] > 1.4 * baseline["test_tiny.toy"]["ratio"]


def test_bad_baseline(tmp_path: Path, cli: Any) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("[]")
    rc, _, err = cli("regress", "--baseline", bad, "--no-speed")
    assert rc == 2 and "needs an 'accuracy' object" in err
