"""``visrepro regress``: the regression gate CI runs on every change.

Accuracy of the shipped weights (baseline ``accuracy``): the default pipeline scores the small
models' reference weights (and the oracle), so only inference numerics differ between platforms.
On the baseline's platform (torch build, CPU model and the CPU code path torch and oneDNN take:
``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA`` change it) each run's 12 statistics must equal the
baseline within ``--ap-tol`` (default 1e-6); on another they may drop by ``--cross-platform-tol``
(default 0.003, i.e. 0.3 points: the spread measured between the AVX-512/AMX and AVX2 paths was
far below it, see the README). Any drop beyond fails with a readable diff.

Training (baseline ``training``: runs of ``retrain:``, whose ``results/<run>/model`` holds the
retrained model): the trained weights depend on the CPU, threads and precision as a new seed
would, so these are checked loosely everywhere: a statistic fails only when it drops by more than
``--training-tol`` (default 0.08, i.e. 8 points; the small models' seed trials spread by ~3-5 AP
and their bootstrap 95% intervals are +-4 to +-6 points). A rise is reported (update the baseline
with ``--update`` if it is intended) but does not fail. A baseline run absent from the results
fails, except that when none of the baseline's training runs is there (retraining off), training is
reported as not checked.

Speed: on shared, noisy machines wall time means little, so the gate compares the ``model``
protocol's median ms/frame *normalised by a calibration workload* timed in the same process on the
same threads: ``ratio = model_ms / calibration_ms``. Both come from the pipeline's speed stage
(``results/<run>/speed.json``, ``visrepro speed``). The gate fails only when the ratio exceeds the
baseline's by more than ``--speed-limit`` (default 10%) in that file **and** in the best of up to
three re-measurements made here (``benchmarks/bench_speed_gate.py``: five unchanged re-runs pass,
a model made 20% slower fails).

The speed baseline is per platform (the ratio moves between CPUs and code paths by more than the
limit): ``speed`` is the baseline platform's, ``speed_other_platforms`` holds others recorded with
``--update-speed``; on a platform with none, speed is reported as not compared.

``--update`` rewrites the baseline from every run under ``--results`` (``metrics.json``: accuracy,
or training where ``model/train_summary.json`` is beside it; ``speed.json``: speed), so run it
right after ``dvc repro`` on the default params.
"""

from __future__ import annotations

import argparse
import logging
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark._io import atomic_write_json, read_json
from benchmark.errors import InputError

__all__ = [
    "STAT_NAMES",
    "Finding",
    "check_accuracy",
    "check_speed",
    "configure",
    "platform_fingerprint",
    "run",
]

log = logging.getLogger(__name__)

#: Re-measurements of a run whose speed ratio is over the limit before it fails (best one counts).
REMEASURE = 3

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class Finding:
    """One comparison: ``level`` is ``fail``, ``warn`` or ``ok``."""

    level: str
    what: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():4s} {self.what}: {self.message}"


def platform_fingerprint() -> dict[str, str]:
    """What the numbers depend on besides the code: torch build, CPU model, arch, and the CPU code
    path (ATen's vector capability; oneDNN's ISA cap, when set: ``ONEDNN_MAX_CPU_ISA``)."""
    import os

    import torch

    from benchmark.speed import cpu_name

    fp = {"torch": torch.__version__, "cpu": cpu_name(), "machine": platform.machine()}
    fp["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        fp["onednn_max_cpu_isa"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    return fp


def _describe(fp: Mapping[str, Any] | None) -> str:
    if not fp:
        return "not recorded"
    path = fp.get("cpu_capability", "?") + (
        f", oneDNN <= {fp['onednn_max_cpu_isa']}" if fp.get("onednn_max_cpu_isa") else ""
    )
    return f"torch {fp.get('torch')} on {fp.get('cpu')} ({fp.get('machine')}, {path})"


def _stats(results: Path, run: str) -> dict[str, float] | None:
    path = results / run / "metrics.json"
    if not path.is_file():
        return None
    data = read_json(path, what="metrics file")
    stats = data.get("stats") if isinstance(data, dict) else None
    if not isinstance(stats, dict):
        raise InputError("no 'stats' object (not written by visrepro evaluate?)", file=path)
    return {k: float(v) for k, v in stats.items() if k in STAT_NAMES}


def check_accuracy(
    baseline: Mapping[str, Mapping[str, float]], results: Path, tol: float, *, what: str = ""
) -> list[Finding]:
    """Compare every baseline run's statistics with ``results/<run>/metrics.json``."""
    out: list[Finding] = []
    for run_key, base in sorted(baseline.items()):
        run = what + run_key
        cur = _stats(results, run_key)
        if cur is None:
            out.append(
                Finding("fail", run, f"no {results / run_key / 'metrics.json'} (the run did not happen)")
            )
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
            how = "as in the baseline" if tol <= 1e-6 else f"within -{100 * tol:.1f} points of the baseline"
            out.append(Finding("ok", run, f"AP {100 * cur.get('AP', -1):.4f} {how}"))
    return out


def _speed(results: Path, run: str) -> dict[str, Any] | None:
    """``results/<run>/speed.json`` (written by the pipeline's speed stage), or ``None`` if absent."""
    path = results / run / "speed.json"
    if not path.is_file():
        return None
    data = read_json(path, what="speed file")
    need = ("variant", "dataset", "latency_ms_median", "calibration_ms")
    if not isinstance(data, dict) or any(not isinstance(data.get(k), (str, int, float)) for k in need):
        raise InputError(
            f"a speed file needs {', '.join(need)} (written by 'visrepro speed' of this version)", file=path
        )
    if not float(data["calibration_ms"]) > 0:
        raise InputError(f"calibration_ms must be > 0, got {data['calibration_ms']!r}", file=path)
    return data


def _ratio(speed: Mapping[str, Any]) -> dict[str, float]:
    model, calib = float(speed["latency_ms_median"]), float(speed["calibration_ms"])
    return {"model_ms": model, "calibration_ms": calib, "ratio": model / calib}


#: The command that re-measures a run: ``visrepro speed`` in a fresh interpreter (as the pipeline's
#: speed stage does; measurements repeated in one process drift: the 2nd to 5th of five ran
#: 1.2-1.3x slower than the 1st, relative to the calibration, ``benchmarks/bench_speed_gate.py``).
SPEED_COMMAND: tuple[str, ...] = (sys.executable, "-m", "benchmark", "speed")


def _measure(speed: Mapping[str, Any]) -> dict[str, float]:
    """Repeat the measurement of a ``speed.json`` in a fresh process (same variant, weights, input,
    threads, warm-up and frames)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speed.json"
        cmd = [
            *SPEED_COMMAND, "--variant", str(speed["variant"]), "--dataset", str(speed["dataset"]),
            "--protocol", "model", "--threads", str(int(speed.get("threads") or 1)),
            "--warmup", str(int(speed.get("warmup_frames", 20))), "--frames", str(int(speed.get("frames", 150))),
            "--out", str(out),
        ]  # fmt: skip
        if speed.get("checkpoint"):
            cmd += ["--checkpoint", str(speed["checkpoint"])]
        for item in speed.get("adapter_args") or []:
            cmd += ["--adapter-arg", str(item)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InputError(f"re-measuring failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        return _ratio(read_json(out, what="speed file"))


def check_speed(
    baseline: Mapping[str, Mapping[str, Any]], results: Path, limit: float
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Compare each baseline run's ``results/<run>/speed.json`` with its normalised speed; a run beyond
    ``limit`` is measured again here (up to :data:`REMEASURE` times, the best counts), and fails only if
    it stays beyond it."""
    out: list[Finding] = []
    measured: dict[str, dict[str, Any]] = {}
    for run, base in sorted(baseline.items()):
        speed = _speed(results, run)
        if speed is None:
            out.append(
                Finding(
                    "fail", f"speed {run}", f"no {results / run / 'speed.json'} (the speed stage did not run)"
                )
            )
            continue
        m = _ratio(speed)
        allowed = float(base["ratio"]) * (1 + limit)
        again = ""
        if m["ratio"] > allowed:
            # Noise on a shared machine only ever slows a measurement down, so the best of a few
            # re-measurements estimates the real cost; a real slow-down stays over in all of them.
            first, tries = m["ratio"], 0
            while m["ratio"] > allowed and tries < REMEASURE:
                log.info("%s: ratio %.3f over %.3f; measuring again", run, m["ratio"], allowed)
                again_m = _measure(speed)
                m = again_m if again_m["ratio"] < m["ratio"] else m
                tries += 1
            again = f" (the pipeline's measurement gave {first:.3f}; measured again here, best of {tries})"
        measured[run] = m
        text = (
            f"model {m['model_ms']:.2f} ms/frame, calibration {m['calibration_ms']:.2f} ms, "
            f"ratio {m['ratio']:.3f} vs baseline {float(base['ratio']):.3f} (limit +{100 * limit:.0f}%){again}"
        )
        out.append(Finding("fail" if m["ratio"] > allowed else "ok", f"speed {run}", text))
    return out, measured


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True, help="committed baseline JSON")
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="directory of <run>/metrics.json, speed.json"
    )
    parser.add_argument(
        "--ap-tol",
        type=float,
        default=1e-6,
        help="allowed drop of a statistic on the baseline's platform (fraction)",
    )
    parser.add_argument(
        "--cross-platform-tol",
        type=float,
        default=0.003,
        help="allowed drop of a statistic of the shipped weights on another platform (torch build, CPU "
        "model or code path; default 0.003 = 0.3 points)",
    )
    parser.add_argument(
        "--training-tol",
        type=float,
        default=0.08,
        help="allowed drop of a statistic of a retrained model (baseline 'training'; default 0.08)",
    )
    parser.add_argument(
        "--speed-limit", type=float, default=0.1, help="allowed slow-down of the ratio (0.1 = 10%%)"
    )
    parser.add_argument("--no-speed", action="store_true", help="only the accuracy gate")
    parser.add_argument(
        "--update", action="store_true", help="write every run under --results as the new baseline"
    )
    parser.add_argument(
        "--update-speed",
        action="store_true",
        help="record the speed of the runs under --results as this platform's (the rest stays)",
    )


def _current(
    results: Path,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Accuracy, training and speed of every run directory under ``results`` (for ``--update``)."""
    acc: dict[str, dict[str, float]] = {}
    training: dict[str, dict[str, float]] = {}
    speed: dict[str, dict[str, Any]] = {}
    for d in sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []:
        if (stats := _stats(results, d.name)) is not None:
            (training if (d / "model" / "train_summary.json").is_file() else acc)[d.name] = stats
        if (sp := _speed(results, d.name)) is not None:
            speed[d.name] = {"variant": sp["variant"], "dataset": sp["dataset"], **_ratio(sp)}
    return acc, training, speed


def _speed_entries(speed: Any, baseline: Path, where: str) -> dict[str, dict[str, Any]]:
    speed = speed or {}
    if not isinstance(speed, dict):
        raise InputError("'speed' must map run -> {ratio, ...}", file=baseline, entry=where)
    for key, entry in speed.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("ratio"), (int, float)):
            raise InputError("a speed entry needs a numeric 'ratio'", file=baseline, entry=f"{where}.{key}")
    return speed


def _update_speed(args: argparse.Namespace) -> int:
    """Record this platform's speed (``speed_other_platforms``; ``speed`` on the baseline's own)."""
    base = read_json(args.baseline, what="baseline file")
    if not isinstance(base, dict) or not isinstance(base.get("accuracy"), dict):
        raise InputError("a baseline needs an 'accuracy' object {run: {stat: value}}", file=args.baseline)
    speed = _current(args.results)[2]
    if not speed:
        raise InputError("no <run>/speed.json under it: run 'dvc repro' first", file=args.results)
    here = platform_fingerprint()
    if base.get("platform") == here:
        base["speed"] = speed
    else:
        others = [e for e in base.get("speed_other_platforms") or [] if e.get("platform") != here]
        base["speed_other_platforms"] = [*others, {"platform": here, "speed": speed}]
    atomic_write_json(args.baseline, base, indent=1)
    print(f"updated {args.baseline}: speed of {len(speed)} run(s) on {_describe(here)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.update_speed:
        return _update_speed(args)
    if args.update:
        acc, training, speed = _current(args.results)
        if not acc and not training:
            raise InputError("no <run>/metrics.json under it: run 'dvc repro' first", file=args.results)
        payload = {"platform": platform_fingerprint(), "accuracy": acc, "training": training, "speed": speed}
        old = read_json(args.baseline, what="baseline file") if args.baseline.is_file() else {}
        if isinstance(old, dict) and old.get("speed_other_platforms"):
            payload["speed_other_platforms"] = [
                e for e in old["speed_other_platforms"] if e.get("platform") != payload["platform"]
            ]
        atomic_write_json(args.baseline, payload, indent=1)
        print(
            f"updated {args.baseline}: {len(acc)} run(s) of accuracy, {len(training)} of training, "
            f"{len(speed)} of speed"
        )
        return 0
    base = read_json(args.baseline, what="baseline file")
    if not isinstance(base, dict) or not isinstance(base.get("accuracy"), dict):
        raise InputError("a baseline needs an 'accuracy' object {run: {stat: value}}", file=args.baseline)
    speed_base = _speed_entries(base.get("speed"), args.baseline, "speed")
    here, recorded = platform_fingerprint(), base.get("platform")
    if recorded is not None and not isinstance(recorded, dict):
        raise InputError(
            "'platform' must be an object {torch, cpu, machine} (written by --update)",
            file=args.baseline,
            entry="platform",
        )
    findings: list[Finding] = []
    tol = args.ap_tol
    if recorded != here:
        tol = max(args.ap_tol, args.cross_platform_tol)
        findings.append(
            Finding(
                "warn",
                "platform",
                f"the baseline's is {_describe(recorded)}, this one {_describe(here)}: float sums differ, "
                f"so statistics of the shipped weights are compared within -{100 * tol:.1f} points, "
                "not exactly",
            )
        )
    findings += check_accuracy(base["accuracy"], args.results, tol)
    training = base.get("training") or {}
    if not isinstance(training, dict):
        raise InputError("'training' must map run -> {stat: value}", file=args.baseline, entry="training")
    if training and not any((args.results / k / "metrics.json").is_file() for k in training):
        findings.append(
            Finding(
                "warn",
                "training",
                f"not checked: none of the baseline's retrained runs ({', '.join(sorted(training))}) is "
                f"under {args.results} (retraining is off: params.yaml 'retrain:')",
            )
        )
    elif training:
        findings += check_accuracy(training, args.results, args.training_tol, what="training ")
    if not args.no_speed and speed_base:
        if recorded != here:
            speed_base = {}
            for entry in base.get("speed_other_platforms") or []:
                if isinstance(entry, dict) and entry.get("platform") == here:
                    speed_base = _speed_entries(entry.get("speed"), args.baseline, "speed_other_platforms")
        if speed_base:
            findings += check_speed(speed_base, args.results, args.speed_limit)[0]
        else:
            findings.append(
                Finding(
                    "warn",
                    "speed",
                    "not compared: the baseline has no speed of this platform (the calibrated ratio "
                    "differs between CPUs and code paths by more than the limit); record it with "
                    f"'visrepro regress --baseline {args.baseline} --results {args.results} --update-speed'",
                )
            )
    for f in findings:
        print(f)
    failed = [f for f in findings if f.level == "fail"]
    print(
        f"regression gate: {'FAIL' if failed else 'PASS'} ({len(failed)} failing of {len(findings)} checks)"
    )
    return 1 if failed else 0
