"""A method from outside the suite: a tiny package with a ``visrepro.methods`` entry point, built and
installed by pip (offline), then run end to end through ``visrepro predict`` and the evaluator.

Why ``pip install --target <tmp>`` rather than into the shared venv: it is the real build + install
path (pyproject, setuptools backend, ``.dist-info/entry_points.txt`` written by pip), but it leaves
the venv other engineers and test runs use untouched, needs no uninstall in teardown and cannot
leak into a parallel test session. The subprocess sees it through ``PYTHONPATH``, exactly as
``importlib.metadata`` sees any site directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO

import benchmark.registry as reg

evaluate = pytest.importorskip("benchmark.evaluation.evaluate", reason="evaluator not landed").evaluate

ADAPTER_SOURCE = '''
"""visrepro_ext_demo: an external VIS "method" that copies the GT masks (for testing plugins)."""
from __future__ import annotations

from benchmark.adapter import InstanceOutput, MethodAdapter
from benchmark.masks import to_compressed_rle
from benchmark.registry import register_variant
from benchmark.variant_cfg import VariantCfg


class GTCopy(MethodAdapter):
    needs_frames = False

    def preprocess(self, frames, clip, video):
        return clip.emit

    def forward(self, inputs):
        return inputs

    def track(self, raw, clip, video):
        return [(t, f) for f in raw for t in self.dataset.tracks_of(video.video_id) if t.segmentations[f]]

    def postprocess(self, tracked, clip, video):
        return [InstanceOutput(t.id, t.category_id, 0.9, (f,),
                               (to_compressed_rle(t.segmentations[f], video.height, video.width),))
                for t, f in tracked]


def build(cfg, *, device="cpu"):
    return GTCopy(cfg, device=device)


CFG = VariantCfg(name="{name}", method="{method}", kind="oracle", train_dataset="any")


def register():
    register_variant(CFG, build)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "visrepro-ext-demo"
version = "0.1.0"

[project.entry-points."visrepro.methods"]
demo = "visrepro_ext_demo:register"

[tool.setuptools]
py-modules = ["visrepro_ext_demo"]
"""


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    saved = (dict(reg._VARIANTS), dict(reg._BUILDERS), dict(reg._ORIGIN))
    yield
    for table, old in zip((reg._VARIANTS, reg._BUILDERS, reg._ORIGIN), saved, strict=True):
        table.clear()
        table.update(old)  # type: ignore[arg-type]


def test_entry_point_package_installed_by_pip(tiny_dataset: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "ext_pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "visrepro_ext_demo.py").write_text(
        ADAPTER_SOURCE.replace("{name}", "demo_gt.any").replace("{method}", "demo")
    )
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--quiet", "--target", str(site), str(pkg)]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    eps = (next(site.glob("visrepro_ext_demo-*.dist-info")) / "entry_points.txt").read_text()
    assert "[visrepro.methods]" in eps and "demo = visrepro_ext_demo:register" in eps
    out = tmp_path / "res" / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    listing = subprocess.run(
        [sys.executable, "-c", "import benchmark.registry as r; print(r.status_of('demo_gt.any'))"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert listing.stdout.strip() == "oracle", listing.stderr
    cmd = [sys.executable, "-m", "benchmark.predict", "--variant", "demo_gt.any", "--dataset", str(tiny_dataset),
           "--out", str(out), "--no-progress"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert evaluate(tiny_dataset, out).stats["AP"] == pytest.approx(1.0, abs=1e-9)
    assert {r["score"] for r in json.loads(out.read_text())} == {0.9}


@pytest.mark.usefixtures("scratch_registry")
def test_adapter_module_option(
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "predict", ("benchmark.predict", "predict"))
    src = textwrap.dedent(ADAPTER_SOURCE).replace("{name}", "modpath_gt.any").replace("{method}", "modpath")
    (tmp_path / "my_adapter_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "r.json"
    rc, _, err = cli("predict", "--adapter-module", "my_adapter_mod:register", "--variant", "modpath_gt.any",
                     "--dataset", tiny_dataset, "--out", out, "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert evaluate(tiny_dataset, out).stats["AP"] == pytest.approx(1.0, abs=1e-9)
    rc, _, err = cli("predict", "--adapter-module", "no_such_module_xyz", "--variant", "x.y",
                     "--dataset", tiny_dataset, "--out", out)  # fmt: skip
    assert rc == 2 and "cannot import adapter module" in err
