"""The dataset catalog: named splits, where they live on disk, and whether they are present.

Layout under the data root (``--data-root``, ``$VISREPRO_DATA_ROOT`` or ``./datasets``), as the
upstream READMEs and the official archives have it::

    datasets/youtubevis/annotations/{train,valid,test}.json     YouTube-VIS 2019 (CrossVIS's layout)
    datasets/youtubevis/{train,valid,test}/[JPEGImages/]<video>/<frame>.jpg
    datasets/ytvis_2021/{train,valid,test}/instances.json       YouTube-VIS 2021 (official archive)
    datasets/ytvis_2021/{train,valid,test}/JPEGImages/<video>/<frame>.jpg
    datasets/ovis/annotations_{train,valid,test}.json           OVIS (official archive)
    datasets/ovis/{train,valid,test}/<video>/<frame>.jpg
    datasets/splits/<family>/{train_sub,valid_sub}.json         local splits (``visrepro split``)

ToyVIS is generated, not brought in, so it lives outside the data root (which holds only data a
user brought in, recorded by ``datasets.dvc``): ``$VISREPRO_TOYVIS_ROOT`` or ``./generated/toyvis``::

    generated/toyvis/annotations/{train,valid}.json             ToyVIS (``visrepro toyvis``)
    generated/toyvis/{train,valid}/JPEGImages/<video>/<frame>.jpg

The image root of a split is the first existing directory among its candidates (the 2019 archive
unpacks to ``train/JPEGImages`` while CrossVIS's README shows ``train/<video>``); both are documented
layouts, and when neither exists the spec says so instead of guessing.

``valid`` and ``test`` of the real datasets carry no annotations (never published; the servers are
closed), so local AP uses ``valid_sub``: about 10% of the train videos, held out by ``visrepro split``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError

__all__ = [
    "FAMILIES",
    "DatasetSpec",
    "configure",
    "data_root",
    "get_dataset",
    "list_datasets",
    "run",
    "toyvis_root",
]

DEFAULT_DATA_ROOT = "datasets"
#: Where the generated ToyVIS lives (the DVC pipeline's ``toyvis`` stage writes it there).
DEFAULT_TOYVIS_ROOT = "generated/toyvis"


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    num_classes: int
    subdir: str
    ann: dict[str, str]  # split -> annotation file, relative to the family dir
    images: dict[str, tuple[str, ...]]  # split -> image root candidates
    annotated: tuple[str, ...]  # splits whose file carries GT
    generated: bool = False  # lives at toyvis_root(), not under the data root


FAMILIES: dict[str, Family] = {
    "ytvis2019": Family(
        "ytvis2019",
        "YouTube-VIS 2019",
        40,
        "youtubevis",
        {s: f"annotations/{s}.json" for s in ("train", "valid", "test")},
        {s: (f"{s}/JPEGImages", s) + (("val",) if s == "valid" else ()) for s in ("train", "valid", "test")},
        ("train",),
    ),
    "ytvis2021": Family(
        "ytvis2021",
        "YouTube-VIS 2021",
        40,
        "ytvis_2021",
        {s: f"{s}/instances.json" for s in ("train", "valid", "test")},
        {s: (f"{s}/JPEGImages",) for s in ("train", "valid", "test")},
        ("train",),
    ),
    "ovis": Family(
        "ovis",
        "OVIS",
        25,
        "ovis",
        {s: f"annotations_{s}.json" for s in ("train", "valid", "test")},
        {s: (s, f"{s}/JPEGImages") for s in ("train", "valid", "test")},
        ("train",),
    ),
    "toyvis": Family(
        "toyvis",
        "ToyVIS (synthetic)",
        0,
        "toyvis",
        {s: f"annotations/{s}.json" for s in ("train", "valid")},
        {s: (f"{s}/JPEGImages",) for s in ("train", "valid")},
        ("train", "valid"),
        generated=True,
    ),
}


def data_root(root: str | Path | None = None) -> Path:
    """The data root: the argument, else ``$VISREPRO_DATA_ROOT``, else ``./datasets``."""
    return Path(root if root is not None else os.environ.get("VISREPRO_DATA_ROOT", DEFAULT_DATA_ROOT))


def toyvis_root() -> Path:
    """Where the generated ToyVIS is: ``$VISREPRO_TOYVIS_ROOT``, else ``./generated/toyvis``."""
    return Path(os.environ.get("VISREPRO_TOYVIS_ROOT") or DEFAULT_TOYVIS_ROOT)


@dataclass(frozen=True)
class DatasetSpec:
    """One named split of one dataset family (``ytvis2019_valid_sub``, ``ovis_valid``, ...).

    Attributes:
        name: ``<family>_<split>``.
        family: ``ytvis2019`` | ``ytvis2021`` | ``ovis`` | ``toyvis``.
        split: ``train`` | ``valid`` | ``test`` | ``train_sub`` | ``valid_sub``.
        ann_file: The annotation JSON.
        image_candidates: Directories the frames may be in, first existing wins.
        has_annotations: Whether this split's file carries GT (local AP is possible).
        num_classes: Categories of the family (0: read from the file).
    """

    name: str
    family: str
    split: str
    ann_file: Path
    image_candidates: tuple[Path, ...]
    has_annotations: bool
    num_classes: int

    @property
    def image_root(self) -> Path | None:
        for cand in self.image_candidates:
            if cand.is_dir():
                return cand
        return None

    def status(self) -> str:
        """``"present"`` or why not (``"annotation file missing: ..."``)."""
        if not self.ann_file.is_file():
            if self.family == "toyvis":
                hint = f"generate it: 'dvc repro toyvis' or 'visrepro toyvis --out {self.ann_file.parent.parent}'"
            elif self.split.endswith("_sub"):
                hint = "run 'visrepro split'"
            else:
                hint = "download it (see README)"
            return f"annotation file missing: {self.ann_file} ({hint})"
        if self.image_root is None:
            return "frames missing: none of " + ", ".join(str(c) for c in self.image_candidates)
        return "present"

    def load(self, *, check_frames: bool = False) -> YTVISDataset:
        """Read and validate the annotation file; raise :class:`InputError` if absent."""
        status = self.status()
        if not self.ann_file.is_file() or (check_frames and status != "present"):
            raise InputError(f"dataset {self.name} is not available: {status}", file=self.ann_file)
        return YTVISDataset.load(self.ann_file, self.image_root, check_frames=check_frames)


def get_dataset(name: str, root: str | Path | None = None) -> DatasetSpec:
    """The spec of ``name`` (``<family>_<split>``) under the data root."""
    for fam in FAMILIES.values():
        if not name.startswith(fam.name + "_"):
            continue
        split = name[len(fam.name) + 1 :]
        base = toyvis_root() if fam.generated else data_root(root) / fam.subdir
        if split in fam.ann:
            return DatasetSpec(
                name,
                fam.name,
                split,
                base / fam.ann[split],
                tuple(base / c for c in fam.images[split]),
                split in fam.annotated,
                fam.num_classes,
            )
        if split in ("train_sub", "valid_sub") and "train" in fam.ann:
            return DatasetSpec(
                name,
                fam.name,
                split,
                data_root(root) / "splits" / fam.name / f"{split}.json",
                tuple(base / c for c in fam.images["train"]),
                True,
                fam.num_classes,
            )
    raise InputError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")


def list_datasets() -> list[str]:
    names = []
    for fam in FAMILIES.values():
        names += [f"{fam.name}_{s}" for s in fam.ann]
        if not fam.generated:
            names += [f"{fam.name}_train_sub", f"{fam.name}_valid_sub"]
    return names


# ---- visrepro datasets ------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", help=f"data root (default: $VISREPRO_DATA_ROOT or ./{DEFAULT_DATA_ROOT})"
    )
    parser.add_argument("names", nargs="*", help="datasets to show (default: all)")


def run(args: argparse.Namespace) -> int:
    names: Sequence[str] = args.names or list_datasets()
    specs = [get_dataset(n, args.data_root) for n in names]
    width = max(len(s.name) for s in specs)
    for s in specs:
        gt = "GT" if s.has_annotations else "no GT"
        print(f"{s.name:<{width}}  {gt:<5}  {s.status()}")
    return 0
