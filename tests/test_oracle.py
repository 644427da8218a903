"""The oracle adapter end to end: predict -> evaluate gives AP 1 unperturbed, less perturbed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.masks import decode_rle
from benchmark.registry import create_adapter

evaluate = pytest.importorskip("benchmark.evaluation.evaluate", reason="evaluator not landed").evaluate

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli_predict(monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Cli:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "predict", ("benchmark.predict", "predict"))
    return cli


@pytest.fixture(scope="module")
def toyvis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ToyVIS split (crossing same-category objects, occlusions): GT JSON path."""
    from benchmark.data.toyvis import generate_toyvis

    root = tmp_path_factory.mktemp("toyvis")
    generate_toyvis(root, num_train_videos=1, num_valid_videos=6, frames=8, seed=0, progress=False)
    return root / "annotations" / "valid.json"


def _predict_eval(cli: Cli, gt: Path, out: Path, *args: str) -> float:
    rc, _, err = cli(
        "predict", "--variant", "oracle.gt", "--dataset", gt, "--out", out, "--no-progress", *args
    )
    assert rc == 0, err
    return float(evaluate(gt, out).stats["AP"])


def test_unperturbed_oracle_scores_ap_1(cli_predict: Cli, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "res" / "results.json"
    ap = _predict_eval(cli_predict, tiny_dataset, out)
    assert ap == pytest.approx(1.0, abs=1e-9)
    results = json.loads(out.read_text())
    gt = json.loads(tiny_dataset.read_text())
    assert len(results) == len(gt["annotations"])
    for r, a in zip(results, gt["annotations"], strict=True):
        assert (r["video_id"], r["category_id"], r["score"]) == (a["video_id"], a["category_id"], 1.0)
        assert r["segmentations"] == a["segmentations"]


@pytest.mark.parametrize(
    "args",
    [("drop=0.5",), ("jitter=2",), ("jitter=1", 'jitter_mode="morph"'), ("swap=1.0", "seed=3")],
    ids=["drop", "shift", "morph", "swap"],
)
def test_perturbations_lower_ap(
    cli_predict: Cli, tiny_dataset: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    gt = tiny_dataset
    if "swap=1.0" in args:  # needs two same-category tracks: make video 1's second object category 1
        data = json.loads(gt.read_text())
        data["annotations"][1]["category_id"] = 1
        gt.write_text(json.dumps(data))
    extra = [x for a in args for x in ("--adapter-arg", a)]
    ap = _predict_eval(cli_predict, gt, tmp_path / "p.json", *extra)
    assert 0.0 <= ap < 1.0 - 1e-6


def test_perturbations_are_deterministic_per_video(tiny_dataset: Path) -> None:
    ds = YTVISDataset.load(tiny_dataset)
    runs = []
    for order in ([1, 2], [2, 1]):
        ad = create_adapter("oracle.gt", drop=0.4, jitter=1, score_drop=0.5, seed=7)
        ad.set_dataset(ds)
        from benchmark.predict import open_input

        _, jobs, _ = open_input(dataset=str(tiny_dataset), video=None, needs_frames=False)
        by_id = {j.video_id: j for j in jobs}
        runs.append({v: [p.to_json() for p in ad.predict_video(by_id[v].open())] for v in order})
    assert runs[0] == runs[1]
    scores = [p["score"] for preds in runs[0].values() for p in preds]
    assert all(0.5 <= s <= 1.0 for s in scores) and any(s < 1.0 for s in scores)


def test_shift_moves_the_mask(tiny_dataset: Path) -> None:
    ds = YTVISDataset.load(tiny_dataset)
    ad = create_adapter("oracle.gt", jitter=3)
    ad.set_dataset(ds)
    from benchmark.predict import open_input

    _, jobs, _ = open_input(dataset=str(tiny_dataset), video=None, needs_frames=False)
    pred = ad.predict_video(jobs[0].open())[0]
    gt0 = ds.tracks_of(1)[0].segmentations[0]
    a, b = decode_rle(gt0), decode_rle(pred.segmentations[0])  # type: ignore[arg-type]
    assert 0 < b.sum() <= a.sum() and (a != b).any()  # shifted (maybe partly out of the frame)


def test_oracle_needs_ground_truth(tiny_dataset: Path, tmp_path: Path) -> None:
    data = json.loads(tiny_dataset.read_text())
    del data["annotations"]
    nogt = tmp_path / "nogt.json"
    nogt.write_text(json.dumps(data))
    ad = create_adapter("oracle.gt")
    with pytest.raises(InputError, match="needs ground truth"):
        ad.set_dataset(YTVISDataset.load(nogt))
    with pytest.raises(InputError, match=r"drop must be in \[0, 1\]"):
        create_adapter("oracle.gt", drop=2)
    with pytest.raises(InputError, match="bad adapter option"):
        create_adapter("oracle.gt", nonsense=1)


def test_oracle_on_toyvis_same_category_swap(cli_predict: Cli, toyvis: Path, tmp_path: Path) -> None:
    assert _predict_eval(cli_predict, toyvis, tmp_path / "a.json") == pytest.approx(1.0, abs=1e-9)
    swapped = _predict_eval(cli_predict, toyvis, tmp_path / "b.json", "--adapter-arg", "swap=1.0")
    assert swapped < 1.0
