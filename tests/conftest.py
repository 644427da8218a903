"""Shared test fixtures: a tiny YouTube-VIS dataset on disk, CLI runner, markers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmark.masks import encode_mask

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: GPU tests cannot run
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Give back torch's intra-op thread count after every test: ``visrepro train --threads`` and
    ``visrepro speed --threads`` run in-process in some tests and set it for the whole process, and
    a later test comparing scores at 1e-5 would then run at another count (float sums in another
    order: one such test failed once when run after the training tests)."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


def make_tiny_dataset(
    root: Path, *, videos: int = 2, frames: int = 4, size: tuple[int, int] = (24, 32)
) -> Path:
    """Write a small YouTube-VIS dataset: ``root/JPEGImages/v<i>/<t>.jpg`` and ``root/gt.json``.

    Each video has one square object (category 1) moving right, and video 0 a second object
    (category 2) absent in the last frame. Returns the GT path.
    """
    h, w = size
    rng = np.random.default_rng(0)
    vids, anns = [], []
    for v in range(videos):
        names = []
        for t in range(frames):
            name = f"v{v}/{t:05d}.jpg"
            (root / "JPEGImages" / f"v{v}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / name)
            names.append(name)
        vids.append({"id": v + 1, "width": w, "height": h, "length": frames, "file_names": names})
        for k, cat in enumerate([1, 2] if v == 0 else [1]):
            segs: list[Any] = []
            areas: list[Any] = []
            boxes: list[Any] = []
            for t in range(frames):
                if cat == 2 and t == frames - 1:
                    segs.append(None), areas.append(None), boxes.append(None)
                    continue
                m = np.zeros((h, w), np.uint8)
                y0, x0 = 2 + 10 * k, 2 + 3 * t
                m[y0 : y0 + 8, x0 : x0 + 8] = 1
                segs.append(encode_mask(m))
                areas.append(int(m.sum()))
                boxes.append([x0, y0, 8, 8])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": v + 1,
                    "category_id": cat,
                    "iscrowd": 0,
                    "segmentations": segs,
                    "areas": areas,
                    "bboxes": boxes,
                    "height": h,
                    "width": w,
                }
            )
    gt = {
        "info": {"description": "tiny test set"},
        "videos": vids,
        "categories": [
            {"id": 1, "name": "square", "supercategory": "shape"},
            {"id": 2, "name": "box", "supercategory": "shape"},
        ],
        "annotations": anns,
    }
    path = root / "gt.json"
    path.write_text(json.dumps(gt))
    return path


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A 2-video, 4-frame dataset; returns the GT JSON path (frames under ``JPEGImages``)."""
    return make_tiny_dataset(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``visrepro ARGS`` in-process: returns (exit status, stdout, stderr)."""
    from benchmark.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


@pytest.fixture
def unimplemented_variant() -> Iterator[str]:
    """A method variant with metadata but no builder (as every method is before its adapter lands)."""
    from benchmark import registry as reg
    from benchmark.variant_cfg import InputSize, PublishedResult, VariantCfg

    reg.ensure_loaded()
    name = "notyet_r50.ytvis2019"
    cfg = VariantCfg(
        name=name, method="notyet", backbone="r50", train_dataset="ytvis2019", eval_dataset="ytvis2019_valid",
        num_classes=40, official_repo="https://example.invalid/notyet", paper="-", config="-",
        input_size=InputSize(360, 640),
        published=(PublishedResult("ytvis2019_valid", {"AP": 30.0}, "test fixture"),),
    )  # fmt: skip
    reg.register_variant(cfg)
    yield name
    reg._VARIANTS.pop(name, None)
    reg._ORIGIN.pop(name, None)


def two_threads() -> Iterator[None]:
    """torch at 2 intra-op threads for a module, restored after. The parity fixtures' scores and
    boxes are matched at 1e-5 / 1e-3; at 1 thread a few differ by a little more (float sums in
    another order), so the parity modules pin the count instead of inheriting whatever an earlier
    test (``visrepro train --threads``) or the machine's core count left."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
