"""Registry and variant metadata: schema of every variant, naming, duplicates, lock file, `visrepro list`."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import benchmark.registry as reg
from benchmark.data.catalog import list_datasets
from benchmark.errors import InputError
from benchmark.variant_cfg import PublishedResult, VariantCfg

SHARED = Path("/work/shared")
ALL = reg.list_variants()
#: Variants of published checkpoints (small ToyVIS variants trained here have no published row).
METHODS = [n for n in reg.list_variants(kind="method") if reg.get_variant_cfg(n).published]


@pytest.fixture
def cli_list(
    monkeypatch: pytest.MonkeyPatch, cli: Callable[..., tuple[int, str, str]]
) -> Callable[..., tuple[int, str, str]]:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "list", ("benchmark.registry", "list variants"))
    monkeypatch.setitem(benchmark.cli.COMMANDS, "checkpoints", ("benchmark.checkpoint", "checkpoints"))
    return cli


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Snapshot and restore the registry tables around a test that registers things."""
    saved = (dict(reg._VARIANTS), dict(reg._BUILDERS), dict(reg._ORIGIN))
    yield
    for table, old in zip((reg._VARIANTS, reg._BUILDERS, reg._ORIGIN), saved, strict=True):
        table.clear()
        table.update(old)  # type: ignore[arg-type]


def test_expected_variants_are_listed() -> None:
    assert {"crossvis_r50.ytvis2019", "crossvis_r101.ytvis2019"} <= set(METHODS)
    cico = [n for n in METHODS if n.startswith("cico_")]
    assert len(cico) == 18
    for head in ("yolact", "condinst"):
        for bb in ("r50", "r101", "swint"):
            for ds in ("ytvis2019", "ytvis2021", "ovis"):
                assert f"cico_{head}_{bb}.{ds}" in cico
    assert "oracle.gt" in ALL and "test_tiny.toy" in ALL


@pytest.mark.parametrize("name", METHODS)
def test_variant_metadata_schema(name: str) -> None:
    cfg = reg.get_variant_cfg(name)
    assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+\.[a-z0-9]+", name), name
    assert cfg.name == name and cfg.method == name.split("_", 1)[0]
    assert cfg.official_repo.startswith("https://github.com/")
    assert cfg.paper and cfg.config and cfg.official_commit
    assert cfg.input_size is not None and cfg.input_size.min_size in (360, 384)
    assert cfg.input_size.max_size == 640
    assert cfg.num_classes == (25 if cfg.train_dataset == "ovis" else 40)
    known = set(list_datasets())
    assert cfg.eval_dataset in known
    primaries = [r for r in cfg.published if r.primary]
    assert len(primaries) == 1, "exactly one primary published row"
    for r in cfg.published:
        assert r.dataset in known
        assert "AP" in r.metrics and 0 < r.metrics["AP"] < 100
        assert r.source and r.kind in ("readme", "paper", "other")
        assert set(r.metrics) <= {"AP", "AP50", "AP75", "AR1", "AR10"}
    for url in cfg.checkpoint_urls:
        assert url.startswith("https://drive.google.com/file/d/")
    assert cfg.checkpoint_sha256 is None or re.fullmatch(r"[0-9a-f]{64}", cfg.checkpoint_sha256)
    assert cfg.manifest and (SHARED / "reference/manifests" / cfg.manifest).is_file()
    json.dumps(cfg.to_dict())
    assert reg.status_of(name) in ("implemented", "not implemented yet")


def test_crossvis_numbers_and_fps_protocol() -> None:
    r50 = reg.get_variant_cfg("crossvis_r50.ytvis2019")
    prim = r50.primary_result()
    assert prim is not None and dict(prim.metrics) == {
        "AP": 35.5,
        "AP50": 55.1,
        "AP75": 39.0,
        "AR1": 35.4,
        "AR10": 42.2,
    }
    paper = [r for r in r50.published if r.kind == "paper"]
    assert paper and paper[0].metrics["AP"] == 36.3 and not paper[0].primary
    model_fps = [f for f in r50.fps if f.protocol == "model"]
    assert model_fps[0].fps == 39.8 and model_fps[0].device is None
    r101 = reg.get_variant_cfg("crossvis_r101.ytvis2019")
    assert r101.primary_result().metrics["AR10"] == 43.9  # type: ignore[union-attr]
    assert [f.fps for f in r101.fps if f.protocol == "model"] == [35.6]
    assert r50.input_size and (r50.input_size.min_size, r50.clip_length) == (360, 1)
    assert len(r50.checkpoint_urls) == 2


def test_cico_seed_numbers_primary_csv_alternates() -> None:
    """Every CiCo cell: the primary AP is the seed README's; where published_results.csv differs,
    the CSV number is an alternate with a source."""
    seed = (SHARED / "seeds/cico-README.md").read_text()
    tables = re.split(r"### Quantitative Results on ", seed)[1:]
    ds_of = {"YTVIS2019": "ytvis2019", "YTVIS2021": "ytvis2021", "OVIS": "ovis"}
    seen = 0
    for table in tables:
        ds = ds_of[table.split()[0]]
        for m in re.finditer(r"^\|\s*(R50|R101|Swin-tiny)\s*\|(\w+)\s*\|\s*([\d.]+)\s*\|(.*)$", table, re.M):
            bb = {"R50": "r50", "R101": "r101", "Swin-tiny": "swint"}[m[1]]
            head = "yolact" if m[2].lower() in ("yolact", "yoalct") else "condinst"
            cfg = reg.get_variant_cfg(f"cico_{head}_{bb}.{ds}")
            assert cfg.primary_result().metrics["AP"] == float(m[3])  # type: ignore[union-attr]
            links = re.findall(r"https://drive\.google\.com/file/d/([\w-]+)", m[4].split("|")[0])
            assert [u.split("/")[5] for u in cfg.checkpoint_urls] == links
            seen += 1
    assert seen == 18
    ds_csv = {"YTVIS19": "ytvis2019", "YTVIS21": "ytvis2021", "OVIS": "ovis"}
    with open(SHARED / "reference/published_results.csv") as fh:
        for row in csv.DictReader(fh):
            if row["method"] != "CiCo":
                continue
            bb = {"R-50": "r50", "R-101": "r101", "Swin-T": "swint"}[row["backbone"]]
            head = "yolact" if "Yolact" in row["variant"] else "condinst"
            cfg = reg.get_variant_cfg(f"cico_{head}_{bb}.{ds_csv[row['dataset']]}")
            aps = {r.metrics["AP"]: r for r in cfg.published}
            assert float(row["AP"]) in aps
            if not aps[float(row["AP"])].primary:
                assert "d835b52" in aps[float(row["AP"])].source


def test_unknown_variant_suggests_close_names() -> None:
    with pytest.raises(InputError, match=r"did you mean crossvis_r50\.ytvis2019"):
        reg.get_variant_cfg("crossvis_r50.ytvis19")


def test_not_implemented_variant_cannot_be_built(unimplemented_variant: str) -> None:
    with pytest.raises(InputError, match="not implemented yet"):
        reg.create_adapter(unimplemented_variant)


@pytest.mark.usefixtures("scratch_registry")
def test_duplicate_registration_raises() -> None:
    cfg = VariantCfg(name="dup_r1.toy", method="dup")
    reg.register_variant(cfg, "methods._testing:build_tiny")
    reg.register_variant(cfg, "methods._testing:build_tiny")  # identical: harmless
    with pytest.raises(reg.RegistryError, match="registered twice"):
        reg.register_variant(VariantCfg(name="dup_r1.toy", method="dup", notes=("other",)))
    with pytest.raises(reg.RegistryError, match="already registered"):
        reg.register_builder("dup_r1.toy", "methods.oracle:build")
    with pytest.raises(reg.RegistryError, match=r"method_backbone\.dataset"):
        reg.register_variant(VariantCfg(name="nodot", method="x"))


@pytest.mark.usefixtures("scratch_registry")
def test_builder_by_arch_covers_all_tags() -> None:
    reg.register_variant(VariantCfg(name="arch_x.a", method="arch"))
    reg.register_variant(VariantCfg(name="arch_x.b", method="arch"))
    assert not reg.is_implemented("arch_x.a")
    reg.register_builder("arch_x", "methods._testing:build_tiny")
    assert reg.is_implemented("arch_x.a") and reg.is_implemented("arch_x.b")
    assert reg.create_adapter("arch_x.b").cfg.name == "arch_x.b"


def test_lock_file_sha_is_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "lock.json"
    sha = "ab" * 32
    lock.write_text(json.dumps({"format": 1, "checkpoints": {"crossvis_r50.ytvis2019": {"sha256": sha}}}))
    monkeypatch.setenv("VISREPRO_CHECKPOINTS_LOCK", str(lock))
    assert reg.get_variant_cfg("crossvis_r50.ytvis2019").checkpoint_sha256 == sha
    assert reg.get_variant_cfg("crossvis_r101.ytvis2019").checkpoint_sha256 is None


def test_committed_lock_file_is_valid() -> None:
    from benchmark.checkpoint import LOCK_PATH, read_lock

    data = json.loads(LOCK_PATH.read_text())
    assert data["format"] == 1
    for name, rec in read_lock(LOCK_PATH).items():
        assert name in ALL and re.fullmatch(r"[0-9a-f]{64}", rec["sha256"])


def test_cli_list_table_and_json(
    cli_list: Callable[..., tuple[int, str, str]], unimplemented_variant: str
) -> None:
    rc, out, _ = cli_list("list")
    assert rc == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert "not implemented yet" in lines[unimplemented_variant]
    assert "implemented" in lines["cico_yolact_r50.ovis"]
    assert "35.5" in lines["crossvis_r50.ytvis2019"] and "39.8" in lines["crossvis_r50.ytvis2019"]
    assert "test fixture" in lines["test_tiny.toy"]
    rc, out, _ = cli_list("list", "crossvis_r*", "--json")
    data = json.loads(out)
    assert rc == 0 and [d["name"] for d in data] == ["crossvis_r101.ytvis2019", "crossvis_r50.ytvis2019"]
    assert data[0]["status"] in ("implemented", "not implemented yet") and data[0]["published"][0]["primary"]
    rc, _, err = cli_list("list", "nothing*")
    assert rc == 1 and "no variant" in err


def test_published_result_is_immutable() -> None:
    r = PublishedResult("ytvis2019_valid", {"AP": 1.0}, "x")
    with pytest.raises(TypeError):
        r.metrics["AP"] = 2.0  # type: ignore[index]
