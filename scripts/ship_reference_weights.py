"""Ship a trained small model as the repository's reference weights (done once per recipe change).

    python scripts/ship_reference_weights.py --variant crossvis_tiny.toyvis --model DIR \
        --recipe crossvis_tiny_retrained [--seed-trial seed=1,threads=1,precision=bf16,AP=38.4] ...

``DIR`` is a ``visrepro train --out`` directory of a finished run (``model_final.pth``,
``train_summary.json``). This copies the weights to ``weights/toyvis/<variant>.pth``, records their
sha256 in ``benchmark/checkpoints.lock.json`` (the fetch stage verifies it) and writes the record
``weights/toyvis/<variant>.json``: the recipe (``params.yaml`` ``training:`` entry), the training
summary (steps, precision, threads, CPU, wall time) and the seed trials of the same recipe the
report shows beside a retrained model. Then ``dvc repro`` scores them and
``visrepro regress --update`` writes the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmark._io import atomic_write_json
from benchmark.checkpoint import record_checkpoint
from benchmark.errors import InputError
from benchmark.fetch import sha256_file
from benchmark.variant_cfg import SHIPPED_WEIGHTS


def _trial(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(
                f"--seed-trial {text!r}: expected KEY=VALUE,... (seed=1,AP=38.4)"
            )
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    if not isinstance(out.get("AP"), (int, float)):
        raise argparse.ArgumentTypeError(f"--seed-trial {text!r}: needs a numeric AP (percent)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", required=True)
    p.add_argument("--model", type=Path, required=True, help="a finished 'visrepro train --out' directory")
    p.add_argument("--recipe", required=True, help="its entry of params.yaml's training:")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--seed-trial", type=_trial, action="append", default=[], help="seed=S,threads=T,AP=x,...")
    p.add_argument("--note", help="anything a reader of the record should know (e.g. a contended run time)")
    a = p.parse_args(argv)
    try:
        summary = json.loads((a.model / "train_summary.json").read_text())
        if not summary.get("finished") or summary.get("variant") != a.variant:
            raise InputError(f"not a finished training of {a.variant}", file=a.model / "train_summary.json")
        recipe = (yaml.safe_load(a.params.read_text()) or {}).get("training", {}).get(a.recipe)
        if not isinstance(recipe, dict) or recipe.get("variant") != a.variant:
            raise InputError(f"no training recipe {a.recipe!r} of {a.variant}", file=a.params)
        dest = SHIPPED_WEIGHTS / "toyvis" / f"{a.variant}.pth"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a.model / "model_final.pth", dest)
        digest = sha256_file(dest)
        record_checkpoint(a.variant, dest, digest)
        record = {
            "variant": a.variant,
            "file": dest.name,
            "sha256": digest,
            "size": dest.stat().st_size,
            "recipe": {a.recipe: recipe},
            "train_summary": summary,
            "seed_trials": a.seed_trial,
            **({"note": a.note} if a.note else {}),
        }
        atomic_write_json(dest.with_suffix(".json"), record, indent=2)
    except (OSError, json.JSONDecodeError, InputError) as exc:
        print(f"ship_reference_weights: error: {exc}", file=sys.stderr)
        return 2
    print(f"{digest}  {dest} ({record['size']} bytes); record {dest.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
