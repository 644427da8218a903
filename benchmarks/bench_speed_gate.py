"""The speed gate's power: five unchanged re-runs pass, a model made 20% slower fails.

    python benchmarks/bench_speed_gate.py [--results results] [--baseline results/baseline.json]
        [--runs crossvis_tiny_toyvis cico_tiny_toyvis] [--reruns 5] [--slowdown 0.2]

For each run, one "re-run" is what CI does: a fresh ``visrepro speed`` process, as the pipeline's
speed stage runs it (the same variant, weights, input, threads, warm-up and frames as
``results/<run>/speed.json``), then ``visrepro regress``'s speed check against the baseline (with
its re-measurements, each a fresh process too, when over the limit). The slowed model is the same
adapter whose forward pass busy-waits for ``slowdown`` times its own duration after each call (CPU
work, not a sleep: the core stays busy as with a slower kernel). Prints every ratio and verdict, and exits 1 unless all unchanged re-runs pass and
every slowed run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark import registry, regress
from benchmark.regress import _measure, check_speed


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@contextmanager
def slowed(factor: float) -> Iterator[None]:
    """Every adapter created meanwhile runs its forward pass ``1 + factor`` times as long."""
    create = registry.create_adapter

    def create_slow(*args: Any, **kw: Any) -> Any:
        adapter = create(*args, **kw)
        forward = adapter.forward

        def slow_forward(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = forward(*a, **k)
            _busy(factor * (time.perf_counter() - t0))
            return out

        adapter.forward = slow_forward  # type: ignore[method-assign]
        return adapter

    registry.create_adapter = create_slow
    try:
        yield
    finally:
        registry.create_adapter = create


@contextmanager
def slowed_processes(factor: float) -> Iterator[None]:
    """``visrepro speed`` processes started meanwhile (by :func:`_measure`) run a slowed model."""
    old = regress.SPEED_COMMAND
    regress.SPEED_COMMAND = (sys.executable, __file__, "--as-slowed-speed", str(factor), "--")
    try:
        yield
    finally:
        regress.SPEED_COMMAND = old


def rerun(speed: dict[str, Any], base: dict[str, Any], run: str, limit: float) -> tuple[float, float, str]:
    """One CI re-run: measure as the speed stage does, then gate. ``(first ratio, gated ratio, level)``."""
    m = _measure(speed)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / run
        d.mkdir()
        fresh = {**speed, "latency_ms_median": m["model_ms"], "calibration_ms": m["calibration_ms"]}
        (d / "speed.json").write_text(json.dumps(fresh))
        findings, measured = check_speed({run: base}, Path(tmp), limit)
    return m["ratio"], measured[run]["ratio"], findings[0].level


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--as-slowed-speed"]:  # a slowed `visrepro speed` (see slowed_processes)
        from benchmark.cli import main as cli_main

        with slowed(float(argv[1])):
            return cli_main(["speed", *argv[3:]])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--baseline", type=Path, default=Path("results/baseline.json"))
    p.add_argument("--runs", nargs="+", default=["crossvis_tiny_toyvis", "cico_tiny_toyvis"])
    p.add_argument("--reruns", type=int, default=5)
    p.add_argument("--slowdown", type=float, default=0.2)
    p.add_argument("--limit", type=float, default=0.1, help="the gate's --speed-limit (default: its default)")
    a = p.parse_args(argv)
    baseline = json.loads(a.baseline.read_text())["speed"]
    ok = True
    for run in a.runs:
        speed = json.loads((a.results / run / "speed.json").read_text())
        base = baseline[run]
        print(f"{run}: baseline ratio {base['ratio']:.3f}, limit +{100 * a.limit:.0f}%")
        for i in range(a.reruns):
            first, gated, level = rerun(speed, base, run, a.limit)
            ok &= level == "ok"
            print(
                f"  unchanged re-run {i + 1}: ratio {first:.3f} ({first / base['ratio']:.3f}x), gate {level}"
            )
        with slowed_processes(a.slowdown):
            first, gated, level = rerun(speed, base, run, a.limit)
        ok &= level == "fail"
        print(
            f"  {100 * a.slowdown:.0f}% slower model: ratio {first:.3f} ({first / base['ratio']:.3f}x), best "
            f"after re-measuring {gated:.3f} ({gated / base['ratio']:.3f}x), gate {level}"
        )
    print("speed gate benchmark:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
