"""Collect the report's rows from flat result files.

Inputs, all plain files so the report can be rebuilt without re-running anything:

* the runs file (``params.yaml``'s ``runs:`` and ``reference_runs:`` mappings, passed explicitly
  with ``--runs``): ``{run key: {variant, dataset, ...}}``;
* ``<results>/<run key>/metrics.json`` (``visrepro evaluate``) and ``speed.json`` (``visrepro speed``);
* the variant registry (published numbers, with sources);
* the small models' reference weights' records (``weights/toyvis/<variant>.json``) and, for the
  runs of ``retrain:``, ``<results>/<key>/model/train_summary.json``.

Every primary published row of every method variant becomes a row of the report, reproduced or
not; a row that was not run says why instead of disappearing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmark._io import read_json
from benchmark.data.catalog import get_dataset
from benchmark.errors import InputError
from benchmark.registry import get_variant_cfg, list_variants, status_of

__all__ = [
    "REPORT_METRICS",
    "RUN_GROUPS",
    "RetrainRow",
    "Row",
    "Verdict",
    "collect_retraining",
    "collect_rows",
    "e2e_fps",
    "load_runs",
    "split_label",
    "verify",
]

#: Metrics the report compares (YouTube-VIS names; values in percent).
REPORT_METRICS = ("AP", "AP50", "AP75", "AR1", "AR10")


@dataclass(frozen=True)
class Verdict:
    """One metric of one row: published vs reproduced (percent)."""

    metric: str
    published: float | None
    reproduced: float | None
    tolerance: float | None

    @property
    def delta(self) -> float | None:
        if self.published is None or self.reproduced is None:
            return None
        return self.reproduced - self.published

    @property
    def ok(self) -> bool | None:
        """Within tolerance (``None``: nothing to compare, or no tolerance declared)."""
        d = self.delta
        if d is None or self.tolerance is None:
            return None
        return abs(d) <= self.tolerance


def verify(
    published: Mapping[str, float], reproduced: Mapping[str, float] | None, tolerance: Mapping[str, float]
) -> list[Verdict]:
    """The one place that decides "reproduced?": a :class:`Verdict` per report metric."""
    return [
        Verdict(m, published.get(m), None if reproduced is None else reproduced.get(m), tolerance.get(m))
        for m in REPORT_METRICS
    ]


@dataclass
class Row:
    """One line of the report.

    Attributes:
        variant: Registry name.
        run: The run key (``None`` when not run).
        published_on: The split the published numbers are on.
        split: Where the reproduction was scored (``ToyVIS``, ``local valid_sub``, ...), or ``-``.
        verdicts: Per metric.
        reason: Why there is no reproduced number (``None`` when there is one).
        ci: Bootstrap 95% interval of AP (percent), when computed.
        fps: The run's ``speed.json`` (FPS, protocol, device, per-stage times), when measured.
        published_fps: Published FPS with protocol and device.
        source: Where the published numbers were read.
        per_category: Per-category AP of the run (percent), for plots.
    """

    variant: str
    run: str | None
    published_on: str
    split: str
    verdicts: list[Verdict]
    reason: str | None = None
    ci: tuple[float, float] | None = None
    fps: dict[str, Any] | None = None
    published_fps: str = ""
    source: str = ""
    per_category: dict[str, float] = field(default_factory=dict)
    kind: str = "method"


#: The mappings of a params file that hold runs (each a ``{run key: {variant, dataset, ...}}``).
RUN_GROUPS = ("runs", "reference_runs", "retrain")


def load_runs(path: str | Path) -> dict[str, dict[str, Any]]:
    """Every run of a params file: its ``runs:`` and ``reference_runs:`` (``{}`` when it has none).

    Raises:
        InputError: Unreadable file, a group that is not a mapping, a run without ``variant`` or
            ``dataset``, or one key in two groups (they share ``results/<key>``).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError("runs file does not exist", file=path) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file=path) from None
    if data is not None and not isinstance(data, dict):
        raise InputError("a params file is a mapping", file=path)
    runs: dict[str, dict[str, Any]] = {}
    for group in RUN_GROUPS:
        found = (data or {}).get(group) or {}
        if not isinstance(found, dict):
            raise InputError(f"'{group}' must be a mapping of run key -> {{variant, dataset}}", file=path)
        for key, run in found.items():
            if not isinstance(run, dict) or not {"variant", "dataset"} <= set(run):
                raise InputError("each run needs 'variant' and 'dataset'", file=path, entry=f"{group}.{key}")
            if key in runs:
                raise InputError(
                    "the same run key in two groups (both would write results/<key>)",
                    file=path,
                    entry=f"{group}.{key}",
                )
            runs[key] = run
    return runs


def split_label(dataset: str) -> str:
    """How a reader should read the split a number was scored on."""
    if dataset.startswith("toyvis"):
        return "ToyVIS (synthetic)"
    if dataset.endswith("_valid_sub"):
        return "local valid_sub"
    if dataset.endswith("_valid"):
        return "official valid (no public GT)"
    return dataset


def _pct(stats: Mapping[str, float]) -> dict[str, float]:
    return {
        k: 100.0 * v for k, v in stats.items() if isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)
    }


def e2e_fps(speed: Mapping[str, Any]) -> float | None:
    """End-to-end FPS from a ``speed.json``'s per-stage times (all stages), whatever its protocol."""
    stages = speed.get("stage_ms")
    if not isinstance(stages, Mapping) or not stages:
        return None
    total = sum(float(v) for v in stages.values())
    return 1e3 / total if total > 0 else None


def _read_optional(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def _not_run_reason(variant: str, checkpoints: Path, data_root: Path | None, dataset: str) -> str:
    status = status_of(variant)
    if status == "not implemented yet":
        return "not implemented yet"
    cfg = get_variant_cfg(variant)
    names = [f"{variant}.pth"] + ([cfg.checkpoint_file] if cfg.checkpoint_file else [])
    if not any((checkpoints / n).is_file() for n in names):
        return f"checkpoint not present ({checkpoints / names[-1]})"
    family = dataset.rsplit("_", 1)[0]
    sub = get_dataset(f"{family}_valid_sub", data_root)
    if sub.status() != "present":
        return f"dataset not present ({sub.status()})"
    return "not enabled in params.yaml (runs:)"


def _run_row(variant: str, key: str, run: Mapping[str, Any], results: Path, published: Any) -> Row:
    metrics = _read_optional(results / key / "metrics.json")
    fps = _read_optional(results / key / "speed.json")
    reproduced = _pct(metrics["stats"]) if metrics else None
    tol = dict(published.tolerance) if published is not None else {}
    pub = dict(published.metrics) if published is not None else {}
    ci = None
    if metrics and metrics.get("bootstrap"):
        b = metrics["bootstrap"]
        ci = (100.0 * b["p2_5"], 100.0 * b["p97_5"])
    per_cat = {}
    if metrics:
        per_cat = {
            c: 100.0 * s["AP"] for c, s in metrics.get("per_category", {}).items() if s.get("AP", -1) >= 0
        }
    return Row(
        variant=variant,
        run=key,
        published_on=published.dataset if published is not None else "-",
        split=split_label(str(run["dataset"])),
        verdicts=verify(pub, reproduced, tol),
        reason=None if metrics else "run configured but not evaluated yet (run 'dvc repro')",
        ci=ci,
        fps=fps,
        source=published.source if published is not None else "",
        per_category=per_cat,
    )


def collect_rows(
    runs: Mapping[str, Mapping[str, Any]],
    results: str | Path,
    *,
    checkpoints: str | Path = "checkpoints",
    data_root: str | Path | None = None,
) -> tuple[list[Row], list[Row]]:
    """``(seed rows, other runs)``: one row per primary published result of every method variant
    (reproduced where a run of it exists), and one per run of a non-published variant (ToyVIS models,
    the oracle)."""
    results, checkpoints = Path(results), Path(checkpoints)
    root = Path(data_root) if data_root is not None else None
    by_variant: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for key, run in runs.items():
        by_variant.setdefault(str(run["variant"]), []).append((key, run))
    seed_rows: list[Row] = []
    for name in list_variants(kind="method"):
        cfg = get_variant_cfg(name)
        pub_fps = "; ".join(f"{c.fps:g} ({c.protocol}, {c.device or 'GPU not stated'})" for c in cfg.fps)
        for pub in (p for p in cfg.published if p.primary):
            mine = by_variant.get(name, [])
            if mine:
                for key, run in mine:
                    row = _run_row(name, key, run, results, pub)
                    row.published_fps = pub_fps
                    seed_rows.append(row)
                continue
            seed_rows.append(
                Row(
                    variant=name,
                    run=None,
                    published_on=pub.dataset,
                    split="-",
                    verdicts=verify(pub.metrics, None, pub.tolerance),
                    reason=_not_run_reason(name, checkpoints, root, pub.dataset),
                    published_fps=pub_fps,
                    source=pub.source,
                )
            )
    published_names = {r.variant for r in seed_rows}
    others = []
    for key, run in runs.items():
        name = str(run["variant"])
        if name in published_names:
            continue
        row = _run_row(name, key, run, results, None)
        row.kind = get_variant_cfg(name).kind
        others.append(row)
    return seed_rows, others


@dataclass
class RetrainRow:
    """A small model's reference weights, and (when ``retrain:`` ran it) its retraining.

    Attributes:
        variant: Registry name.
        run: The run scoring the reference weights (``runs:`` key), or ``None``.
        reference_ap: AP of that run (percent) and its bootstrap interval.
        record: The reference weights' record (``weights/toyvis/<variant>.json``): how they were
            trained (steps, precision, threads, wall time, CPU) and the seed trials.
        retrain: The ``retrain:`` key, or ``None`` when retraining is off.
        retrained_ap: AP of the retrained model (percent) and its interval.
        summary: The retraining's ``train_summary.json``.
    """

    variant: str
    run: str | None
    reference_ap: tuple[float, tuple[float, float] | None] | None
    record: dict[str, Any]
    retrain: str | None = None
    retrained_ap: tuple[float, tuple[float, float] | None] | None = None
    summary: dict[str, Any] | None = None

    @property
    def delta(self) -> float | None:
        if self.reference_ap is None or self.retrained_ap is None:
            return None
        return self.retrained_ap[0] - self.reference_ap[0]

    @property
    def seed_aps(self) -> list[float]:
        """AP (percent) of every recorded seed trial of the reference recipe."""
        return [float(t["AP"]) for t in self.record.get("seed_trials", []) if "AP" in t]


def _ap_of(results: Path, key: str) -> tuple[float, tuple[float, float] | None] | None:
    metrics = _read_optional(results / key / "metrics.json")
    if not metrics or "AP" not in metrics.get("stats", {}):
        return None
    b = metrics.get("bootstrap")
    ci = (100.0 * b["p2_5"], 100.0 * b["p97_5"]) if b else None
    return 100.0 * float(metrics["stats"]["AP"]), ci


def collect_retraining(
    params: Mapping[str, Any], results: str | Path, weights: str | Path | None = None
) -> list[RetrainRow]:
    """One row per small model whose reference weights the repository ships and a run scores, with
    its retraining beside it when ``retrain:`` has an entry whose ``compare`` names that run."""
    from benchmark.variant_cfg import SHIPPED_WEIGHTS

    results = Path(results)
    root = Path(weights) if weights is not None else SHIPPED_WEIGHTS / "toyvis"
    runs = params.get("runs") or {}
    retrain = params.get("retrain") or {}
    rows: list[RetrainRow] = []
    for key, run in runs.items():
        record_path = root / f"{run.get('variant')}.json"
        if not record_path.is_file():
            continue
        row = RetrainRow(
            variant=str(run["variant"]),
            run=key,
            reference_ap=_ap_of(results, key),
            record=read_json(record_path, what="reference weights record"),
        )
        for rkey, entry in retrain.items():
            if isinstance(entry, Mapping) and entry.get("compare") == key:
                row.retrain = rkey
                row.retrained_ap = _ap_of(results, rkey)
                row.summary = _read_optional(results / rkey / "model" / "train_summary.json")
        rows.append(row)
    return rows
