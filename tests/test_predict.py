"""`visrepro predict`: shards, merge, zip, log, resume after a kill, torchrun with 2 gloo ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, make_tiny_dataset

from benchmark.errors import UsageError
from benchmark.predict import parse_adapter_args

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli_predict(monkeypatch: pytest.MonkeyPatch, cli: Cli) -> Cli:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "predict", ("benchmark.predict", "predict"))
    return cli


@pytest.fixture
def four_videos(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "ds", videos=4, frames=5)


def _args(gt: Path, out: Path, variant: str = "test_tiny.toy") -> list[str]:
    return ["--variant", variant, "--dataset", str(gt), "--frames-root", str(gt.parent / "JPEGImages"),
            "--out", str(out), "--no-progress"]  # fmt: skip


def _subprocess(
    args: list[str], env: dict[str, str] | None = None, torchrun: int = 0
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    if torchrun:
        launcher = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            f"--nproc-per-node={torchrun}",
        ]
        cmd = [*launcher, "-m", "benchmark.predict", *args]
    else:
        cmd = [sys.executable, "-m", "benchmark.predict", *args]
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)


def test_predict_writes_results_shards_zip_and_log(
    cli_predict: Cli, tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run" / "results.json"
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "test_tiny_clip.toy"))
    assert rc == 0, err
    results = json.loads(out.read_text())
    assert [r["video_id"] for r in results] == [1, 1, 2, 2]  # dataset order, then track order
    assert all(len(r["segmentations"]) == 4 for r in results)
    with zipfile.ZipFile(out.with_suffix(".zip")) as zf:
        assert zf.namelist() == ["results.json"] and zf.read("results.json") == out.read_bytes()
    shards = out.with_name("results.json.shards")
    assert sorted(p.name for p in shards.iterdir()) == ["1.json", "2.json", "run.json"]
    shard = json.loads((shards / "1.json").read_text())
    assert shard["variant"] == "test_tiny_clip.toy" and shard["dataset_sha256"] and shard["video_id"] == 1
    assert "wrote" in out.with_name("results.json.log").read_text()
    # a second run needs --resume or --overwrite
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "test_tiny_clip.toy"))
    assert rc == 2 and "--resume" in err
    before = out.read_bytes()
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "test_tiny_clip.toy"), "--resume")
    assert rc == 0 and out.read_bytes() == before
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "test_tiny.toy"), "--resume")
    assert rc == 2 and "different run" in err and "variant" in err
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "test_tiny.toy"), "--overwrite")
    assert rc == 0 and json.loads(out.read_text()) != results


def test_resume_after_kill_loses_and_repeats_nothing(
    cli_predict: Cli, four_videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    calls = tmp_path / "calls.txt"
    env = {"VISREPRO_TEST_CALLS_FILE": str(calls)}
    killed = _subprocess(_args(four_videos, out), dict(env, VISREPRO_TEST_CRASH_AFTER="2"))
    assert killed.returncode == 3, killed.stderr
    assert not out.exists()
    shards = out.with_name("results.json.shards")
    assert sorted(p.name for p in shards.glob("[0-9]*.json")) == ["1.json", "2.json"]
    resumed = _subprocess([*_args(four_videos, out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert calls.read_text().split() == ["1", "2", "3", "4"]  # each video predicted exactly once
    rc, _, err = cli_predict("predict", *_args(four_videos, tmp_path / "fresh.json"))  # uninterrupted
    assert rc == 0, err
    assert out.read_bytes() == (tmp_path / "fresh.json").read_bytes()


def test_torchrun_two_gloo_ranks_byte_identical(cli_predict: Cli, four_videos: Path, tmp_path: Path) -> None:
    single = tmp_path / "single" / "results.json"
    multi = tmp_path / "multi" / "results.json"
    calls = tmp_path / "calls.txt"
    rc, _, err = cli_predict("predict", *_args(four_videos, single, "test_tiny_clip.toy"))
    assert rc == 0, err
    r2 = _subprocess(
        _args(four_videos, multi, "test_tiny_clip.toy"), {"VISREPRO_TEST_CALLS_FILE": str(calls)}, 2
    )
    assert r2.returncode == 0, r2.stderr
    assert multi.read_bytes() == single.read_bytes()
    assert multi.with_suffix(".zip").read_bytes() == single.with_suffix(".zip").read_bytes()
    assert sorted(calls.read_text().split()) == ["1", "2", "3", "4"]
    assert multi.with_name("results.json.log.rank1").is_file()


def test_single_video_and_max_videos(cli_predict: Cli, four_videos: Path, tmp_path: Path) -> None:
    frames_dir = four_videos.parent / "JPEGImages" / "v2"
    out = tmp_path / "one.json"
    rc, _, err = cli_predict("predict", "--variant", "test_tiny.toy", "--video", frames_dir, "--video-id", "9",
                             "--out", out, "--no-progress")  # fmt: skip
    assert rc == 0, err
    res = json.loads(out.read_text())
    assert {r["video_id"] for r in res} == {9} and all(len(r["segmentations"]) == 5 for r in res)
    out2 = tmp_path / "two.json"
    rc, _, err = cli_predict("predict", *_args(four_videos, out2), "--max-videos", "2")
    assert rc == 0 and {r["video_id"] for r in json.loads(out2.read_text())} == {1, 2}


def test_bad_input_exits_2(
    unimplemented_variant: str, cli_predict: Cli, tiny_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, "nope.x"))
    assert rc == 2 and "unknown variant" in err
    rc, _, err = cli_predict("predict", "--variant", "test_tiny.toy", "--dataset", tiny_dataset, "--out", out)
    assert rc == 2 and "frames not found" in err
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out, unimplemented_variant))
    assert rc == 2 and "not implemented yet" in err
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out), "--adapter-arg", "oops")
    assert rc == 2 and "KEY=VALUE" in err
    rc, _, err = cli_predict("predict", *_args(tiny_dataset, out), "--checkpoint", tmp_path / "none.pth")
    assert rc == 2 and "does not exist" in err


def test_parse_adapter_args() -> None:
    assert parse_adapter_args(["a=1", "b=0.5", "c=shift", "d=true", 'e="x"']) == {
        "a": 1, "b": 0.5, "c": "shift", "d": True, "e": "x",
    }  # fmt: skip
    with pytest.raises(UsageError):
        parse_adapter_args(["=1"])


def test_seed_makes_random_weights_reproducible(
    cli_predict: Cli, four_videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import torch

    import benchmark.registry

    built: list[dict[str, torch.Tensor]] = []
    create = benchmark.registry.create_adapter

    def capture(*a: object, **k: object) -> object:
        ad = create(*a, **k)  # type: ignore[arg-type]
        built.append({n: v.clone() for n, v in ad.model.state_dict().items()})
        return ad

    monkeypatch.setattr(benchmark.registry, "create_adapter", capture)
    frames_dir = four_videos.parent / "JPEGImages" / "v2"
    for i, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"r{i}.json"
        rc, _, err = cli_predict("predict", "--variant", "crossvis_tiny.toyvis", "--video", frames_dir,
                                 "--seed", seed, "--out", out, "--no-progress")  # fmt: skip
        assert rc == 0, err
        assert f"random weights (seed {seed})" in caplog.text
    same = [all(torch.equal(a[n], b[n]) for n in a) for a, b in ((built[0], built[1]), (built[0], built[2]))]
    assert same == [True, False]
    rc, _, err = cli_predict("predict", *_args(four_videos, tmp_path / "c.json"), "--seed", "1",
                             "--checkpoint", tmp_path / "w.pth")  # fmt: skip
    assert rc == 2 and "--seed" in err and not (tmp_path / "c.json").exists()


def test_run_identity_records_the_effective_settings(tmp_path: Path) -> None:
    """A run records the test-time settings its builder chose (a default may change between
    versions); resuming it under other settings is refused, naming them."""
    from benchmark.errors import InputError
    from benchmark.predict import _check_identity, _identity
    from benchmark.registry import get_variant_cfg
    from methods.cico.small import build as cico_tiny
    from methods.crossvis.small import build as crossvis_tiny

    ad = cico_tiny(get_variant_cfg("cico_yolact_tiny.toyvis"))
    ident = _identity(ad, {}, "sha")
    assert ident["settings"]["track"]["match_coeff"] == [0.1, 0.5, 0.5, 1.0]
    assert ident["settings"]["detect"]["conf_thresh"] == 0.05
    found = json.loads(json.dumps(ident))  # as read back from a shard
    _check_identity(found, ident, tmp_path / "1.json")
    other = cico_tiny(get_variant_cfg("cico_yolact_tiny.toyvis"), match_coeff="0.1,0.5,0.5,0.3")
    with pytest.raises(InputError, match=r"different run \(settings: .*0\.3\]"):
        _check_identity(found, _identity(other, {}, "sha"), tmp_path / "1.json")
    # a shard of an earlier version, without the settings, is not taken as this run's
    del found["settings"]
    with pytest.raises(InputError, match=r"settings: None there"):
        _check_identity(found, ident, tmp_path / "1.json")
    # an adapter without test-time settings records none (shards of earlier versions still match)
    assert "settings" not in _identity(crossvis_tiny(get_variant_cfg("crossvis_tiny.toyvis")), {}, "sha")
