"""CI's short profile of the pipeline: rewrite params.yaml so every ``train:`` entry runs N steps.

The full ``dvc repro`` (the README's main job) trains each small model for 8-10 minutes on 2 CPU
cores; CI checks the same stages end to end with short trainings, against the baseline that the
same profile wrote (``results/baseline_ci.json``). ``VISREPRO_CI_FULL=1 .ci/run`` runs the full
pipeline against ``results/baseline.json`` instead.

    python .ci/short_params.py params.yaml --max-steps 300 --steps cico_tiny=800

``--steps NAME=N`` gives one entry its own length (the small CiCo scores AP 0.0 after 300 steps,
which would make its accuracy gate meaningless).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("params", type=Path)
    p.add_argument("--max-steps", type=int, required=True)
    p.add_argument("--steps", action="append", default=[], metavar="NAME=N", help="one entry's length")
    a = p.parse_args(argv)
    if a.max_steps < 1:
        p.error("--max-steps must be >= 1")
    own: dict[str, int] = {}
    for item in a.steps:
        name, sep, n = item.partition("=")
        if not sep or not n.isdigit() or int(n) < 1:
            p.error(f"--steps {item!r}: expected NAME=N with N >= 1")
        own[name] = int(n)
    try:
        params = yaml.safe_load(a.params.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"{a.params}: cannot read: {exc}", file=sys.stderr)
        return 2
    train = params.get("train") if isinstance(params, dict) else None
    if not isinstance(train, dict) or not train:
        print(f"{a.params}: no 'train:' entries to shorten", file=sys.stderr)
        return 2
    unknown = sorted(set(own) - set(train))
    if unknown:
        print(
            f"{a.params}: --steps names {unknown} are not 'train:' entries ({sorted(train)})", file=sys.stderr
        )
        return 2
    for name, entry in train.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("args", {}), dict):
            print(f"{a.params}: train.{name} needs a mapping 'args'", file=sys.stderr)
            return 2
        entry.setdefault("args", {})["max-steps"] = own.get(name, a.max_steps)
    a.params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    lengths = ", ".join(f"{n} {e['args']['max-steps']}" for n, e in train.items())
    print(f"{a.params}: {len(train)} training(s) shortened: {lengths} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
