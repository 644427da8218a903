"""Variant metadata: what a method variant is, where its weights are, and what was published for it.

A *variant* is one trained model of one method, named ``{method}_{backbone}.{train dataset}``
(timm's ``arch.tag`` convention): ``crossvis_r50.ytvis2019``, ``cico_condinst_swint.ovis``. Its
:class:`VariantCfg` is frozen metadata, importable without torch, and kept separate from the
*builder* that constructs the adapter (:mod:`benchmark.registry`): the variants of methods that
are not implemented yet are still listed, with their published numbers.

Published numbers are in **percent** (as papers print them). Each :class:`PublishedResult` names
its source; one row per (dataset, source) with ``primary=True`` marking the number the suite
compares against (the seeds' README tables); alternates (paper numbers, other README revisions)
are kept with their own source so a reader can see every figure ever claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "SHIPPED_WEIGHTS",
    "FpsClaim",
    "InputSize",
    "PublishedResult",
    "VariantCfg",
    "VariantKind",
    "shipped_weights_url",
]

#: Weights the repository itself ships (the small ToyVIS models' reference weights, with their
#: training records): ``weights/`` at the top of the checkout. Their sha256 is in
#: ``benchmark/checkpoints.lock.json``, so ``visrepro fetch --variant`` verifies them like a download.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def shipped_weights_url(relative: str) -> str:
    """The ``file:`` URL of ``weights/<relative>`` (a variant's ``checkpoint_urls`` entry)."""
    return (SHIPPED_WEIGHTS / relative).as_uri()


#: ``method``: a re-implemented method; ``oracle``: GT-based upper bound; ``test``: test fixture.
VariantKind = Literal["method", "oracle", "test"]

#: Metrics a published row may carry (YouTube-VIS summary names, in percent).
METRIC_NAMES = ("AP", "AP50", "AP75", "AR1", "AR10")


def _frozen(m: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(m))


@dataclass(frozen=True)
class PublishedResult:
    """One published set of numbers of a variant on one evaluation split.

    Attributes:
        dataset: Catalog name of the split the numbers are on (``ytvis2019_valid``, ``ovis_valid``).
        metrics: ``{"AP": 35.5, "AP50": ..}`` in percent; at least ``AP``.
        source: Where the numbers were read (repository@commit + file, or paper + table).
        kind: ``readme`` (released-checkpoint row), ``paper`` or ``other``.
        primary: The number the suite compares reproductions against (one per dataset).
        tolerance: Allowed |reproduced - published| per metric, in AP points.
        evaluated_on: ``server`` (CodaLab) or ``local``.
        note: Anything a reader must know (disagreeing revisions, missing weights).
    """

    dataset: str
    metrics: Mapping[str, float]
    source: str
    kind: Literal["readme", "paper", "other"] = "readme"
    primary: bool = True
    tolerance: Mapping[str, float] = field(default_factory=lambda: _frozen({"AP": 0.5}))
    evaluated_on: Literal["server", "local"] = "server"
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _frozen(self.metrics))
        object.__setattr__(self, "tolerance", _frozen(self.tolerance))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "metrics": dict(self.metrics),
            "source": self.source,
            "kind": self.kind,
            "primary": self.primary,
            "tolerance": dict(self.tolerance),
            "evaluated_on": self.evaluated_on,
            "note": self.note,
        }


@dataclass(frozen=True)
class FpsClaim:
    """A published speed figure and how it was measured.

    Attributes:
        fps: Frames per second.
        protocol: What was timed: ``model`` (network forward only), ``model+track`` or ``e2e``.
        device: The GPU named by the source, or ``None`` when not stated (then the figure cannot be
            compared with a measurement on a known GPU).
        source: Where it was read.
        note: Caveats.
    """

    fps: float
    protocol: Literal["model", "model+track", "e2e"]
    device: str | None
    source: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "protocol": self.protocol,
            "device": self.device,
            "source": self.source,
            "note": self.note,
        }


@dataclass(frozen=True)
class InputSize:
    """The test-time input size of the official pipeline.

    ``min_size``/``max_size``: resize so that the short side is ``min_size`` unless the long side
    would exceed ``max_size`` (then the long side is ``max_size``). ``pad_divisor``: pad bottom/right
    to a multiple of it; ``pad_min``: pad at least to this ``(H, W)`` (CiCo pads to 384x640).
    """

    min_size: int
    max_size: int
    pad_divisor: int = 32
    pad_min: tuple[int, int] | None = None

    def describe(self) -> str:
        s = f"short side {self.min_size}, long side <= {self.max_size}, pad /{self.pad_divisor}"
        if self.pad_min:
            s += f" (at least {self.pad_min[0]}x{self.pad_min[1]})"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "pad_divisor": self.pad_divisor,
            "pad_min": list(self.pad_min) if self.pad_min else None,
        }


@dataclass(frozen=True)
class VariantCfg:
    """Frozen metadata of one variant (no torch, no builder).

    Attributes:
        name: ``{method}_{backbone}.{train dataset}``.
        method: ``crossvis`` | ``cico`` | ``oracle`` | ...
        kind: ``method``, ``oracle`` or ``test`` (see :data:`VariantKind`).
        backbone: ``r50``, ``r101``, ``swint`` ...
        train_dataset: Dataset family the weights were trained for (``ytvis2019``, ``ovis``; ``any``).
        eval_dataset: Catalog split the published numbers are on (``ytvis2019_valid``).
        num_classes: Classes of the classifier (40 YouTube-VIS, 25 OVIS; 0 = from the dataset).
        official_repo: URL of the official code.
        official_commit: Commit the suite follows.
        paper: arXiv id or venue.
        config: The official config file of the variant.
        checkpoint_urls: Download links of the official weights (empty: none published).
        checkpoint_file: File name of the official weights, as published.
        checkpoint_sha256: Known digest (``None``: not recorded yet; see ``visrepro checkpoints``).
        manifest: Reference manifest of official state-dict keys/shapes (``reference/manifests``).
        input_size: Test-time resize/pad of the official pipeline.
        clip_length: Frames per forward (1: online, frame-in frame-out).
        clip_overlap: Frames shared by consecutive clips.
        published: Every published set of numbers (primary and alternates).
        fps: Published speed figures.
        notes: Known deviations, missing weights, ambiguities.
    """

    name: str
    method: str
    kind: VariantKind = "method"
    backbone: str = ""
    train_dataset: str = ""
    eval_dataset: str = ""
    num_classes: int = 0
    official_repo: str = ""
    official_commit: str | None = None
    paper: str = ""
    config: str = ""
    checkpoint_urls: tuple[str, ...] = ()
    checkpoint_file: str | None = None
    checkpoint_sha256: str | None = None
    manifest: str | None = None
    input_size: InputSize | None = None
    clip_length: int = 1
    clip_overlap: int = 0
    published: tuple[PublishedResult, ...] = ()
    fps: tuple[FpsClaim, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def arch(self) -> str:
        """The part before the dot (``crossvis_r50``)."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """The part after the dot (``ytvis2019``)."""
        return self.name.split(".", 1)[1] if "." in self.name else ""

    @property
    def safe_name(self) -> str:
        """File-safe name (``.`` replaced by ``_``)."""
        return self.name.replace(".", "_")

    def primary_result(self, dataset: str | None = None) -> PublishedResult | None:
        """The primary published row (on ``dataset``, default :attr:`eval_dataset`)."""
        ds = dataset or self.eval_dataset
        for r in self.published:
            if r.primary and r.dataset == ds:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used by ``visrepro list --json``)."""
        return {
            "name": self.name,
            "method": self.method,
            "kind": self.kind,
            "backbone": self.backbone,
            "train_dataset": self.train_dataset,
            "eval_dataset": self.eval_dataset,
            "num_classes": self.num_classes,
            "official_repo": self.official_repo,
            "official_commit": self.official_commit,
            "paper": self.paper,
            "config": self.config,
            "checkpoint_urls": list(self.checkpoint_urls),
            "checkpoint_file": self.checkpoint_file,
            "checkpoint_sha256": self.checkpoint_sha256,
            "manifest": self.manifest,
            "input_size": self.input_size.to_dict() if self.input_size else None,
            "clip_length": self.clip_length,
            "clip_overlap": self.clip_overlap,
            "published": [r.to_dict() for r in self.published],
            "fps": [f.to_dict() for f in self.fps],
            "notes": list(self.notes),
        }
