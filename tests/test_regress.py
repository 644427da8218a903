"""The regression gate: a broken tracker and a slowed model must fail it; an unchanged run passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.regress import check_accuracy, check_speed, platform_fingerprint
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
    base.write_text(json.dumps({"platform": platform_fingerprint(), "accuracy": {"run": good}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 1 and "FAIL run: dropped" in out and "regression gate: FAIL" in out
    assert "platform" not in out  # the baseline's own platform: compared exactly
    # a rise is reported but passes; a missing run fails
    findings = check_accuracy({"run": broken, "gone": good}, results, 1e-6)
    assert {f.what: f.level for f in findings} == {"run": "ok", "gone": "fail"}


def test_accuracy_gate_across_platforms(tmp_path: Path, cli: Any) -> None:
    """A baseline from another torch build / CPU / code path: float sums differ, so only a drop
    beyond --cross-platform-tol (0.3 points) fails, and the gate says it compared loosely."""
    gt = _gt_with_crossing(tmp_path)
    results = tmp_path / "results"
    good = _predict_eval(cli, gt, results, "run")
    other = dict(platform_fingerprint(), cpu="Some Other CPU", torch="0.0.1")
    base = tmp_path / "baseline.json"
    slightly_better = {k: v + 0.002 if v >= 0 else v for k, v in good.items()}
    base.write_text(json.dumps({"platform": other, "accuracy": {"run": slightly_better}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 0, out
    assert "WARN platform: the baseline's is torch 0.0.1 on Some Other CPU" in out
    assert "within -0.3 points" in out and "OK   run" in out
    # 0.4 points lower than the baseline: beyond the cross-platform bound
    base.write_text(
        json.dumps(
            {"platform": other, "accuracy": {"run": {k: v + 0.004 if v >= 0 else v for k, v in good.items()}}}
        )
    )
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 1 and "FAIL run: dropped: AP" in out
    # the same CPU on another code path (ATEN_CPU_CAPABILITY) is another platform
    assert dict(platform_fingerprint(), cpu_capability="AVX2") != platform_fingerprint()
    base.write_text(json.dumps({"platform": other, "accuracy": {"run": slightly_better}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed", "--ap-tol", "0.001",
                     "--cross-platform-tol", "0.001")  # fmt: skip
    assert rc == 1 and "FAIL run: dropped: AP" in out
    # an older baseline without a recorded platform is compared loosely too, and says so
    base.write_text(json.dumps({"accuracy": {"run": slightly_better}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 0 and "the baseline's is not recorded" in out
    base.write_text(json.dumps({"platform": "x86", "accuracy": {"run": good}}))
    rc, _, err = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 2 and "baseline.json" in err and "platform" in err
    # a real regression (identities swapped in every video) fails even across platforms
    broken = _predict_eval(cli, gt, results, "run", "--overwrite", "--adapter-arg", "swap=1.0")
    assert good["AP"] - broken["AP"] > 0.08
    base.write_text(json.dumps({"platform": other, "accuracy": {"run": good}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 1 and "FAIL run: dropped" in out


def test_training_is_checked_loosely_and_only_when_it_ran(tmp_path: Path, cli: Any) -> None:
    """Baseline ``training`` runs (retrained models) may drop by --training-tol (8 points) on any
    platform; absent (retraining off) they are reported as not checked; a real drop fails."""
    gt = _gt_with_crossing(tmp_path)
    results = tmp_path / "results"
    good = _predict_eval(cli, gt, results, "retrained")
    base = tmp_path / "baseline.json"
    a_bit_better = {k: v + 0.05 if v >= 0 else v for k, v in good.items()}
    payload = {"platform": platform_fingerprint(), "accuracy": {}, "training": {"retrained": a_bit_better}}
    base.write_text(json.dumps(payload))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--no-speed")
    assert rc == 0 and "OK   training retrained: AP" in out and "within -8.0 points" in out, out
    rc, out, _ = cli(
        "regress", "--baseline", base, "--results", results, "--no-speed", "--training-tol", "0.01"
    )
    assert rc == 1 and "FAIL training retrained: dropped" in out
    rc, out, _ = cli("regress", "--baseline", base, "--results", tmp_path / "none", "--no-speed")
    assert rc == 0 and "WARN training: not checked" in out and "retrain:" in out
    # update sorts a run with a retrained model under training, the others under accuracy
    (results / "retrained" / "model").mkdir()
    (results / "retrained" / "model" / "train_summary.json").write_text("{}")
    _predict_eval(cli, gt, results, "shipped")
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--update")
    assert rc == 0 and "1 run(s) of accuracy, 1 of training, 0 of speed" in out
    written = json.loads(base.read_text())
    assert set(written["accuracy"]) == {"shipped"} and set(written["training"]) == {"retrained"}


@pytest.fixture
def toy_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small ToyVIS where the catalog looks for it (``toyvis_valid`` is what the pipeline times)."""
    from benchmark.data.toyvis import generate_toyvis

    root = tmp_path / "toy"
    generate_toyvis(
        root, num_train_videos=1, num_valid_videos=2, frames=(30, 30), size=(48, 64), progress=False
    )
    monkeypatch.setenv("VISREPRO_TOYVIS_ROOT", str(root))
    return root


def _speed_stage(cli: Any, results: Path, run: str) -> dict[str, Any]:
    """What the pipeline's speed stage does for one run."""
    out = results / run / "speed.json"
    rc, _, err = cli("speed", "--variant", "test_tiny.toy", "--dataset", "toyvis_valid", "--threads", "1",
                     "--warmup", "5", "--frames", "40", "--out", out)  # fmt: skip
    assert rc == 0, err
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_speed_gate_reads_the_pipeline_and_catches_a_slowed_model(
    toy_root: Path, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import benchmark.regress as regress
    from methods import _testing

    results = tmp_path / "results"
    first = _speed_stage(cli, results, "tiny")
    ratio = first["latency_ms_median"] / first["calibration_ms"]
    baseline = {"tiny": {"ratio": ratio}}
    findings, m = check_speed(baseline, results, limit=10.0)  # the same file: far inside a wide limit
    assert findings[0].level == "ok" and m["tiny"]["ratio"] == pytest.approx(ratio)
    assert "measured again" not in findings[0].message

    # a noisy pipeline measurement alone does not fail: the gate measures once more itself
    noisy = dict(first, latency_ms_median=first["latency_ms_median"] * 1000)
    (results / "tiny" / "speed.json").write_text(json.dumps(noisy))
    findings, _ = check_speed(baseline, results, limit=10.0)
    assert findings[0].level == "ok" and "measured again" in findings[0].message

    original: Callable[..., torch.Tensor] = _testing.TinyNet.forward

    def slowed(self: Any, x: torch.Tensor) -> torch.Tensor:
        for _ in range(60):  # a deliberate 60x slow-down of the network
            out = original(self, x)
        return out

    monkeypatch.setattr(_testing.TinyNet, "forward", slowed)
    # the gate re-measures in a fresh process: the same slow-down there
    slow_speed = (
        "import sys; from methods import _testing as t; f = t.TinyNet.forward; "
        "t.TinyNet.forward = lambda s, x: [f(s, x) for _ in range(60)][-1]; "
        "from benchmark.cli import main; sys.exit(main(['speed', *sys.argv[1:]]))"
    )
    monkeypatch.setattr(regress, "SPEED_COMMAND", (sys.executable, "-c", slow_speed))
    _speed_stage(cli, results, "tiny")
    findings, m = check_speed(baseline, results, limit=0.4)
    assert findings[0].level == "fail", findings[0].message
    assert "measured again" in findings[0].message and m["tiny"]["ratio"] > 1.4 * ratio
    # a run the speed stage did not measure fails
    findings, _ = check_speed({"gone": {"ratio": 1.0}}, results, limit=0.4)
    assert findings[0].level == "fail" and "the speed stage did not run" in findings[0].message


def test_speed_gate_best_of_remeasurements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the limit, the gate measures again up to REMEASURE times and keeps the best: a noisy
    first re-measurement does not fail, a run over the limit in all of them does."""
    import benchmark.regress as regress

    run = tmp_path / "results" / "r"
    run.mkdir(parents=True)
    (run / "speed.json").write_text(json.dumps(
        {"variant": "v", "dataset": "d", "latency_ms_median": 30.0, "calibration_ms": 6.0}
    ))  # fmt: skip
    base = {"r": {"ratio": 2.0}}  # limit 2.8 at +40%; the file says 5.0
    seq = iter([4.0, 2.5, 9.0])
    calls: list[float] = []

    def fake(_speed: Any) -> dict[str, float]:
        calls.append(next(seq))
        return {"model_ms": calls[-1], "calibration_ms": 1.0, "ratio": calls[-1]}

    monkeypatch.setattr(regress, "_measure", fake)
    findings, m = check_speed(base, tmp_path / "results", limit=0.4)
    assert findings[0].level == "ok" and calls == [4.0, 2.5] and m["r"]["ratio"] == 2.5
    assert "gave 5.000; measured again here, best of 2" in findings[0].message
    seq = iter([4.0, 3.5, 9.0, 1.0])
    calls.clear()
    findings, m = check_speed(base, tmp_path / "results", limit=0.4)
    assert findings[0].level == "fail" and len(calls) == regress.REMEASURE and m["r"]["ratio"] == 3.5


def test_update_then_gate_through_the_cli(toy_root: Path, tmp_path: Path, cli: Any) -> None:
    results = tmp_path / "results"
    gt = toy_root / "annotations" / "valid.json"
    rc, _, err = cli("predict", "--variant", "oracle.gt", "--dataset", "toyvis_valid", "--no-progress",
                     "--out", results / "oracle" / "predict" / "results.json")  # fmt: skip
    assert rc == 0, err
    rc, _, err = cli("evaluate", "--gt", gt, "--results", results / "oracle" / "predict" / "results.json",
                     "--out", results / "oracle" / "metrics.json")  # fmt: skip
    assert rc == 0, err
    _speed_stage(cli, results, "tiny")
    base = tmp_path / "baseline.json"
    rc, out, err = cli("regress", "--baseline", base, "--results", results, "--update")
    assert rc == 0, err
    assert "1 run(s) of accuracy, 0 of training, 1 of speed" in out
    written = json.loads(base.read_text())
    assert set(written["accuracy"]) == {"oracle"} and written["accuracy"]["oracle"]["AP"] == 1.0
    assert set(written["speed"]) == {"tiny"} and written["speed"]["tiny"]["variant"] == "test_tiny.toy"
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--speed-limit", "10")
    assert rc == 0 and "OK   speed tiny" in out and "regression gate: PASS (0 failing of 2 checks)" in out
    # a speed file of an older format is an input error naming the file
    (results / "tiny" / "speed.json").write_text(json.dumps({"variant": "test_tiny.toy"}))
    rc, _, err = cli("regress", "--baseline", base, "--results", results)
    assert rc == 2 and "speed.json" in err and "calibration_ms" in err
    rc, _, err = cli("regress", "--baseline", base, "--results", tmp_path / "empty", "--update")
    assert rc == 2 and "run 'dvc repro' first" in err


def test_bad_baseline(tmp_path: Path, cli: Any) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("[]")
    rc, _, err = cli("regress", "--baseline", bad, "--no-speed")
    assert rc == 2 and "needs an 'accuracy' object" in err
    bad.write_text(json.dumps({"accuracy": {}, "speed": {"tiny": {"model_ms": 1.0}}}))
    rc, _, err = cli("regress", "--baseline", bad)
    assert rc == 2 and "speed.tiny" in err and "numeric 'ratio'" in err


def test_speed_baseline_is_per_platform(toy_root: Path, tmp_path: Path, cli: Any) -> None:
    """Speed is compared only with a baseline of this platform: another platform's is reported as
    not compared; --update-speed records this one beside it, and the gate then compares with it."""
    results = tmp_path / "results"
    _speed_stage(cli, results, "tiny")
    other = dict(platform_fingerprint(), cpu="Some Other CPU")
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps({"platform": other, "accuracy": {}, "speed": {"tiny": {"ratio": 1e-6}}}))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results)
    assert rc == 0 and "WARN speed: not compared" in out and "--update-speed" in out, out
    rc, out, err = cli("regress", "--baseline", base, "--results", results, "--update-speed")
    assert rc == 0, err
    written = json.loads(base.read_text())
    assert written["speed"] == {"tiny": {"ratio": 1e-6}}, "the baseline platform's speed stays"
    assert [e["platform"] for e in written["speed_other_platforms"]] == [platform_fingerprint()]
    rc, out, _ = cli("regress", "--baseline", base, "--results", results, "--speed-limit", "10")
    assert rc == 0 and "OK   speed tiny" in out, out
    # this platform's entry with a ratio 20x lower: the model is "slower" than recorded, and fails
    written["speed_other_platforms"][0]["speed"]["tiny"]["ratio"] /= 20
    base.write_text(json.dumps(written))
    rc, out, _ = cli("regress", "--baseline", base, "--results", results)
    assert rc == 1 and "FAIL speed tiny" in out
