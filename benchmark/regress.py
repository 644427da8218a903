"""``visrepro regress``: the regression gate CI runs on every change.

Accuracy: ToyVIS runs are deterministic on CPU, so each run's 12 statistics must equal the committed
baseline within a tight tolerance (default 1e-6); any drop fails with a readable diff. A rise is
reported (update the baseline with ``--update`` if it is intended) but does not fail.

Speed: on shared, noisy machines wall time means little, so the gate compares the ``model``
protocol's median ms/frame *normalised by a calibration workload* timed in the same process, on
one thread: ``ratio = model_ms / calibration_ms``. The gate fails only when the ratio exceeds the
baseline's by more than ``--speed-limit`` (default 40%) on a first measurement **and** on one re-run.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark._io import atomic_write_json, read_json
from benchmark.errors import InputError

__all__ = ["STAT_NAMES", "Finding", "calibration_ms", "check_accuracy", "check_speed", "configure", "run"]

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class Finding:
    """One comparison: ``level`` is ``fail``, ``warn`` or ``ok``."""

    level: str
    what: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():4s} {self.what}: {self.message}"


def _stats(results: Path, run: str) -> dict[str, float] | None:
    path = results / run / "metrics.json"
    if not path.is_file():
        return None
    data = read_json(path, what="metrics file")
    stats = data.get("stats") if isinstance(data, dict) else None
    if not isinstance(stats, dict):
        raise InputError("no 'stats' object (not written by visrepro evaluate?)", file=path)
    return {k: float(v) for k, v in stats.items() if k in STAT_NAMES}


def check_accuracy(baseline: Mapping[str, Mapping[str, float]], results: Path, tol: float) -> list[Finding]:
    """Compare every baseline run's statistics with ``results/<run>/metrics.json``."""
    out: list[Finding] = []
    for run, base in sorted(baseline.items()):
        cur = _stats(results, run)
        if cur is None:
            out.append(Finding("fail", run, f"no {results / run / 'metrics.json'} (the run did not happen)"))
            continue
        drops, rises = [], []
        for name in STAT_NAMES:
            if name not in base:
                continue
            b, c = float(base[name]), cur.get(name)
            if c is None:
                drops.append(f"{name} missing")
            elif c < b - tol:
                drops.append(f"{name} {100 * b:.4f} -> {100 * c:.4f} ({100 * (c - b):+.4f})")
            elif c > b + tol:
                rises.append(f"{name} {100 * b:.4f} -> {100 * c:.4f} ({100 * (c - b):+.4f})")
        if drops:
            out.append(Finding("fail", run, "dropped: " + "; ".join(drops)))
        if rises:
            out.append(Finding("warn", run, "rose (update the baseline if intended): " + "; ".join(rises)))
        if not drops and not rises:
            out.append(Finding("ok", run, f"AP {100 * cur.get('AP', -1):.4f} as in the baseline"))
    return out


def calibration_ms(reps: int = 15) -> float:
    """Median ms of a fixed convolutional workload on the current torch thread setting."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 16, 1),
    )  # fmt: skip
    for p in net.parameters():
        p.data = torch.randn(p.shape, generator=gen) * 0.05
    x = torch.randn(1, 3, 96, 160, generator=gen)
    times = []
    with torch.inference_mode():
        for i in range(reps + 3):
            t0 = time.perf_counter()
            net(x)
            if i >= 3:
                times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def _measure(
    variant: str, dataset: str, frames: int, adapter_args: Sequence[str], frames_root: str | None = None
) -> dict[str, float]:
    import torch

    from benchmark.predict import open_input, parse_adapter_args
    from benchmark.registry import create_adapter
    from benchmark.speed import measure_fps

    adapter = create_adapter(variant, **parse_adapter_args(list(adapter_args)))
    ds, jobs, _ = open_input(
        dataset=dataset,
        video=None,
        video_id=1,
        frames_root=frames_root,
        data_root=None,
        needs_frames=adapter.needs_frames,
    )
    adapter.set_dataset(ds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calib = calibration_ms()
        res = measure_fps(adapter, jobs, protocol="model", warmup=20, frames=frames, dataset=dataset)
        calib = (calib + calibration_ms()) / 2  # before and after: load drift hits both
    finally:
        torch.set_num_threads(threads)
    return {
        "model_ms": res.latency_ms_median,
        "calibration_ms": calib,
        "ratio": res.latency_ms_median / calib,
    }


def check_speed(
    baseline: Mapping[str, Mapping[str, Any]], limit: float, frames: int = 150
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Measure every baseline speed entry; fail beyond ``limit`` only if a re-run is also beyond."""
    out: list[Finding] = []
    measured: dict[str, dict[str, Any]] = {}
    for variant, base in sorted(baseline.items()):
        args = list(base.get("adapter_args", []))
        root = base.get("frames_root")
        m = _measure(variant, str(base["dataset"]), frames, args, root)
        allowed = float(base["ratio"]) * (1 + limit)
        if m["ratio"] > allowed:
            log.info("%s: ratio %.3f over %.3f; measuring once more", variant, m["ratio"], allowed)
            m = _measure(variant, str(base["dataset"]), frames, args, root)
        measured[variant] = {**base, **m}
        text = (
            f"model {m['model_ms']:.2f} ms/frame, calibration {m['calibration_ms']:.2f} ms, "
            f"ratio {m['ratio']:.3f} vs baseline {float(base['ratio']):.3f} (limit +{100 * limit:.0f}%)"
        )
        out.append(Finding("fail" if m["ratio"] > allowed else "ok", f"speed {variant}", text))
    return out, measured


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True, help="committed baseline JSON")
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="directory of <run>/metrics.json"
    )
    parser.add_argument("--ap-tol", type=float, default=1e-6, help="allowed change of a statistic (fraction)")
    parser.add_argument(
        "--speed-limit", type=float, default=0.4, help="allowed slow-down of the ratio (0.4 = 40%%)"
    )
    parser.add_argument("--speed-frames", type=int, default=150, help="frames timed per speed entry")
    parser.add_argument("--no-speed", action="store_true", help="only the accuracy gate")
    parser.add_argument("--update", action="store_true", help="write the current numbers as the new baseline")


def run(args: argparse.Namespace) -> int:
    base = read_json(args.baseline, what="baseline file")
    if not isinstance(base, dict) or not isinstance(base.get("accuracy"), dict):
        raise InputError("a baseline needs an 'accuracy' object {run: {stat: value}}", file=args.baseline)
    speed_base = base.get("speed") or {}
    findings = check_accuracy(base["accuracy"], args.results, args.ap_tol)
    measured: dict[str, dict[str, Any]] = {}
    if not args.no_speed and speed_base:
        speed_findings, measured = check_speed(speed_base, args.speed_limit, args.speed_frames)
        findings += speed_findings
    for f in findings:
        print(f)
    if args.update:
        new_acc = {run: _stats(args.results, run) or base["accuracy"][run] for run in base["accuracy"]}
        atomic_write_json(args.baseline, {"accuracy": new_acc, "speed": measured or speed_base}, indent=1)
        print(f"updated {args.baseline}")
        return 0
    failed = [f for f in findings if f.level == "fail"]
    print(
        f"regression gate: {'FAIL' if failed else 'PASS'} ({len(failed)} failing of {len(findings)} checks)"
    )
    return 1 if failed else 0
