"""CI's retraining profile: rewrite params.yaml so retraining is on, every recipe shortened to N steps.

The default ``dvc repro`` scores the shipped reference weights and trains nothing; CI also checks
the training stages end to end, with short trainings: this switches ``retrain:`` on with the
recipes of ``training:`` (what ``retrain: *training`` does), each with ``max-steps``, and CI gates
them loosely against the baseline that the same profile wrote (``results/baseline_ci.json``).

    python .ci/short_params.py params.yaml --max-steps 300 --steps cico_tiny_retrained=800

``--steps NAME=N`` gives one recipe its own length (the small CiCo scores AP 0.0 after 300 steps,
which would make its check meaningless). ``--max-steps 0`` keeps the recipes' full schedules.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("params", type=Path)
    p.add_argument("--max-steps", type=int, required=True)
    p.add_argument("--steps", action="append", default=[], metavar="NAME=N", help="one entry's length")
    a = p.parse_args(argv)
    if a.max_steps < 0:
        p.error("--max-steps must be >= 0")
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
    train = params.get("training") if isinstance(params, dict) else None
    if not isinstance(train, dict) or not train:
        print(f"{a.params}: no 'training:' recipes to switch on", file=sys.stderr)
        return 2
    unknown = sorted(set(own) - set(train))
    if unknown:
        print(
            f"{a.params}: --steps names {unknown} are not 'training:' recipes ({sorted(train)})",
            file=sys.stderr,
        )
        return 2
    retrain = copy.deepcopy(train)
    for name, entry in retrain.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("args", {}), dict):
            print(f"{a.params}: training.{name} needs a mapping 'args'", file=sys.stderr)
            return 2
        steps = own.get(name, a.max_steps)
        if steps:
            entry.setdefault("args", {})["max-steps"] = steps
    params["retrain"] = retrain
    a.params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    lengths = ", ".join(f"{n} {e['args'].get('max-steps', 'full')}" for n, e in retrain.items())
    print(f"{a.params}: retraining on: {lengths} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
