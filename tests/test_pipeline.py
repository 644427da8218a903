"""The DVC pipeline (dvc.yaml + params.yaml) as DVC itself resolves it, without running any stage.

A scratch repository holds the real ``dvc.yaml``, ``params.yaml`` and ``datasets.dvc`` and the
code the stages depend on; every stage output is a stand-in file, recorded with ``dvc commit``. On
that state DVC's own ``status`` says which stages a change of one parameter makes stale, and its
index says where each stage's inputs come from (a stage, git, or a user's ``datasets/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
#: Paths of the checkout the stages depend on (copied into the scratch repository).
SOURCES = ("benchmark", "methods")
#: The default pipeline's stages.
DEFAULT_STAGES = {
    "toyvis", "fetch@crossvis_tiny.toyvis", "fetch@cico_yolact_tiny.toyvis", "report",
    *(f"{s}@{r}" for s in ("predict", "evaluate", "speed") for r in ("crossvis_tiny_toyvis", "cico_tiny_toyvis")),
    "reference@oracle_toyvis", "reference@oracle_swap_toyvis",
}  # fmt: skip
#: The real run of the README ("Real runs"), switched on by params.
REAL_RUN = {
    "variant": "crossvis_r50.ytvis2019",
    "dataset": "ytvis2019_valid_sub",
    "data": "datasets/youtubevis",
    "gt": "datasets/splits/ytvis2019/valid_sub.json",
    "checkpoint": "checkpoints/crossvis_r50.ytvis2019.pth",
    "args": "--device cuda",
}

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([*DVC, *args], cwd=root, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"dvc {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _name(stage: Any) -> str:
    """``retrain@cico_tiny_retrained`` for a dvc.yaml stage, ``datasets.dvc`` for a .dvc file."""
    return str(stage.name) if getattr(stage, "name", None) else Path(stage.path).name


def _index(root: Path) -> Any:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.index.stages), repo.index.graph


def _stand_ins(root: Path) -> None:
    """A small file for every output (and every dependency inside an output) of every stage."""
    stages, _ = _index(root)
    for st in stages:
        if not getattr(st, "cmd", None):
            continue
        for out in st.outs:
            path = root / str(out.def_path)
            if path.suffix:  # a file output
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"stand-in for {out.def_path}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "stand-in.txt").write_text(f"stand-in for {out.def_path}\n")
    for st in stages:
        for dep in getattr(st, "deps", []):
            path = root / str(dep.def_path)
            if not path.exists() and path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"stand-in for {dep.def_path}\n")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The pipeline in a scratch git+DVC repository, every stage up to date (``dvc commit``)."""
    root = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "params.yaml", "datasets.dvc", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in SOURCES:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    _stand_ins(root)
    dvc(root, "commit", "-f", "-q", "dvc.yaml")  # datasets.dvc: no data here, as on a fresh clone
    yield root


def _stale(root: Path) -> set[str]:
    """The stages ``dvc status`` reports (in this process: no interpreter start per call)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        out = repo.status()
    return {name.rsplit(":", 1)[-1] for name in out if not name.endswith(".dvc")}


def _edit(root: Path, change: dict[str, Any]) -> str:
    """Apply ``{"a.b.c": value}`` to params.yaml; returns the old text (to restore)."""
    params = root / "params.yaml"
    old = params.read_text()
    data = yaml.safe_load(old)
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    return old


def test_default_pipeline_is_up_to_date_after_commit(scratch: Path) -> None:
    stages, _ = _index(scratch)
    assert {_name(s) for s in stages} == DEFAULT_STAGES | {"datasets.dvc"}
    assert _stale(scratch) == set()
    assert "Data and pipelines are up to date." in dvc(scratch, "repro", "--dry")


@pytest.mark.parametrize(
    ("change", "stale"),
    [
        ({"training.cico_tiny_retrained.args.max-steps": 7}, set()),
        ({"runs.crossvis_tiny_toyvis.args": "--adapter-arg x=1"},
         {"predict@crossvis_tiny_toyvis", "speed@crossvis_tiny_toyvis", "report"}),
        ({"eval.bootstrap": 10},
         {"evaluate@crossvis_tiny_toyvis", "evaluate@cico_tiny_toyvis", "reference@oracle_toyvis",
          "reference@oracle_swap_toyvis"}),
        ({"speed.frames": 10}, {"speed@crossvis_tiny_toyvis", "speed@cico_tiny_toyvis"}),
        ({"toyvis.seed": 1}, {"toyvis"}),
        ({"reference_runs.oracle_swap_toyvis.args": ""}, {"reference@oracle_swap_toyvis", "report"}),
    ],
)  # fmt: skip
def test_one_param_makes_only_its_stages_stale(
    scratch: Path, change: dict[str, Any], stale: set[str]
) -> None:
    old = _edit(scratch, change)
    try:
        assert _stale(scratch) == stale
    finally:
        (scratch / "params.yaml").write_text(old)


def test_downstream_of_the_reference_weights_is_their_runs_and_the_report(scratch: Path) -> None:
    import networkx as nx

    stages, graph = _index(scratch)
    by_name = {_name(s): s for s in stages}
    # the graph's edges point from a stage to the stages it depends on
    downstream = {_name(s) for s in nx.ancestors(graph, by_name["fetch@cico_yolact_tiny.toyvis"])}
    assert downstream == {
        "predict@cico_tiny_toyvis",
        "speed@cico_tiny_toyvis",
        "evaluate@cico_tiny_toyvis",
        "report",
    }


def test_retraining_is_a_stage_group_switched_on_in_params(scratch: Path) -> None:
    """``retrain: *training`` (here: the recipes copied in) adds one stage per recipe: train, score,
    evaluate into results/<key>/; the report depends on it; the default runs stay up to date."""
    import networkx as nx

    text = (REPO / "params.yaml").read_text()
    params = yaml.safe_load(text)
    assert params["retrain"] == {} and params["training"], "retraining is off by default"
    assert "retrain: *training" in text, "the switch is documented where it is thrown"
    old = _edit(scratch, {"retrain": params["training"]})
    try:
        stages, graph = _index(scratch)
        by_name = {_name(s): s for s in stages}
        for key, recipe in params["training"].items():
            st = by_name[f"retrain@{key}"]
            assert st.cmd[0].startswith(f"visrepro train --variant {recipe['variant']}")
            assert f"--out results/{key}/model" in st.cmd[0] and "--precision auto" in st.cmd[0]
            assert f"--checkpoint results/{key}/model/model_final.pth" in st.cmd[1]
            assert f"--out results/{key}/metrics.json" in st.cmd[2]
            assert _upstream(graph, st) == {"toyvis"}
            assert st in set(nx.descendants(graph, by_name["report"]))
        assert _stale(scratch) == {f"retrain@{k}" for k in params["training"]} | {"report"}
    finally:
        (scratch / "params.yaml").write_text(old)


def test_default_params_need_no_network_and_no_user_data(scratch: Path) -> None:
    """Every input of the default pipeline is in git or made by a stage: the only fetches are of
    the reference weights the repository ships (``file:`` URLs, sha256 recorded), nothing is read
    from datasets/, and checkpoints/ is read only where a fetch stage wrote it."""
    from benchmark.registry import get_variant_cfg
    from benchmark.variant_cfg import SHIPPED_WEIGHTS

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["fetch"], "the default scores the shipped reference weights"
    for variant in params["fetch"]:
        cfg = get_variant_cfg(variant)
        assert cfg.checkpoint_sha256 is not None, variant
        assert [u.startswith("file:") for u in cfg.checkpoint_urls] == [True], variant
        assert (SHIPPED_WEIGHTS / "toyvis" / f"{variant}.pth").is_file(), variant
    stages, graph = _index(scratch)
    made = {str(o.def_path) for s in stages if getattr(s, "cmd", None) for o in s.outs}
    for st in stages:
        if not getattr(st, "cmd", None):
            continue
        cmds = st.cmd if isinstance(st.cmd, list) else [st.cmd]
        if any("visrepro fetch" in c for c in cmds):
            assert _name(st).removeprefix("fetch@") in params["fetch"], _name(st)
        for dep in st.deps:
            path = str(dep.def_path)
            if path == "params.yaml":
                continue
            inside_output = any(path == m or path.startswith(m + "/") for m in made)
            from_git = path.split("/")[0] in (*SOURCES, "results")
            assert inside_output or from_git, f"{_name(st)} reads {path}, which nothing in the pipeline makes"
            assert not path.startswith("datasets"), (_name(st), path)
            assert not path.startswith("checkpoints") or inside_output, (_name(st), path)
        # in particular the user's datasets are no stage's upstream: a fresh clone runs without them
        assert "datasets.dvc" not in _upstream(graph, st), _name(st)


def _upstream(graph: Any, stage: Any) -> set[str]:
    """Names of the stages ``stage`` depends on, directly or not."""
    import networkx as nx

    return {_name(s) for s in nx.descendants(graph, stage)}


def test_a_real_run_switched_on_by_params_fetches_and_reads_datasets(scratch: Path) -> None:
    default_fetch = yaml.safe_load((REPO / "params.yaml").read_text())["fetch"]
    old = _edit(
        scratch, {"fetch": [*default_fetch, REAL_RUN["variant"]], "runs.crossvis_r50_ytvis2019": REAL_RUN}
    )
    try:
        stages, graph = _index(scratch)
        by_name = {_name(s): s for s in stages}
        fetch = by_name["fetch@crossvis_r50.ytvis2019"]
        assert fetch.cmd == (
            "visrepro fetch --variant crossvis_r50.ytvis2019 --out checkpoints/crossvis_r50.ytvis2019.pth "
            "--no-progress"
        )
        assert [(str(o.def_path), o.use_cache, o.persist) for o in fetch.outs] == [
            (REAL_RUN["checkpoint"], False, True)
        ]
        for name in ("predict", "speed"):
            st = by_name[f"{name}@crossvis_r50_ytvis2019"]
            assert f"--checkpoint {REAL_RUN['checkpoint']} --dataset ytvis2019_valid_sub" in st.cmd
            assert st.cmd.endswith("--device cuda")
            assert {"fetch@crossvis_r50.ytvis2019", "datasets.dvc"} <= _upstream(graph, st)
        evaluate = by_name["evaluate@crossvis_r50_ytvis2019"]
        assert f"--gt {REAL_RUN['gt']}" in evaluate.cmd
        # the default runs are untouched by it
        assert _stale(scratch) >= {"fetch@crossvis_r50.ytvis2019", "predict@crossvis_r50_ytvis2019"}
        assert not any(s.endswith("_tiny_toyvis") for s in _stale(scratch))
    finally:
        (scratch / "params.yaml").write_text(old)


def test_toyvis_lives_in_generated_not_in_the_users_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark.data.catalog import get_dataset

    monkeypatch.delenv("VISREPRO_TOYVIS_ROOT", raising=False)
    spec = get_dataset("toyvis_valid", tmp_path / "data")  # the data root does not move it
    assert spec.ann_file == Path("generated/toyvis/annotations/valid.json")
    monkeypatch.setenv("VISREPRO_TOYVIS_ROOT", str(tmp_path / "toy"))
    spec = get_dataset("toyvis_train")
    assert spec.ann_file == tmp_path / "toy" / "annotations" / "train.json"
    assert spec.status() == (
        f"annotation file missing: {spec.ann_file} "
        f"(generate it: 'dvc repro toyvis' or 'visrepro toyvis --out {tmp_path / 'toy'}')"
    )
    assert get_dataset("ovis_valid", tmp_path / "data").ann_file.is_relative_to(tmp_path / "data")


def test_ci_short_profile_switches_retraining_on_with_short_recipes(tmp_path: Path) -> None:
    """``.ci/short_params.py`` (CI's retraining check) sets ``retrain:`` to the ``training:`` recipes
    with ``max-steps`` and changes nothing else; bad input is an exit 2 naming the file."""
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    script = [sys.executable, str(REPO / ".ci" / "short_params.py")]
    proc = subprocess.run([*script, str(params), "--max-steps", "300"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    before = yaml.safe_load((REPO / "params.yaml").read_text())
    after = yaml.safe_load(params.read_text())
    assert before["retrain"] == {} and before["training"]
    assert set(after["retrain"]) == set(before["training"])
    for name, entry in after["retrain"].items():
        assert entry["args"] == {**before["training"][name]["args"], "max-steps": 300}
        assert {k: v for k, v in entry.items() if k != "args"} == {
            k: v for k, v in before["training"][name].items() if k != "args"
        }
    assert {k: v for k, v in after.items() if k != "retrain"} == {
        k: v for k, v in before.items() if k != "retrain"
    }
    shutil.copy(REPO / "params.yaml", params)
    own = [*script, str(params), "--max-steps", "300", "--steps", "cico_tiny_retrained=800"]
    proc = subprocess.run(own, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = yaml.safe_load(params.read_text())
    assert {n: e["args"]["max-steps"] for n, e in after["retrain"].items()} == {
        n: 800 if n == "cico_tiny_retrained" else 300 for n in before["training"]
    }
    shutil.copy(REPO / "params.yaml", params)
    proc = subprocess.run([*script, str(params), "--max-steps", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(params.read_text())["retrain"] == before["training"], "0: the full recipes"
    for bad in ("nosuch=5", "cico_tiny_retrained", "cico_tiny_retrained=0", "cico_tiny_retrained=x"):
        shutil.copy(REPO / "params.yaml", params)
        proc = subprocess.run(
            [*script, str(params), "--max-steps", "3", "--steps", bad], capture_output=True, text=True
        )
        assert proc.returncode == 2 and bad.split("=")[0] in proc.stderr, (bad, proc.stderr)
        assert params.read_text() == (REPO / "params.yaml").read_text(), "nothing written on bad input"
    params.write_text("runs: {}\n")
    proc = subprocess.run([*script, str(params), "--max-steps", "300"], capture_output=True, text=True)
    assert proc.returncode == 2 and str(params) in proc.stderr and "training" in proc.stderr
