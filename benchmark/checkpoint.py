"""Official checkpoints: read safely, rename by ordered rules, load strictly, record digests.

A VIS checkpoint that loads "mostly" is the classic silent failure: a head left at random init
still produces masks, just worse ones. So loading here is strict by default:

1. :func:`read_checkpoint` verifies the sha256 when it is known and reads with
   ``torch.load(weights_only=True)`` (never unpickles arbitrary objects); detectron2's
   ``{"model": ...}`` and the common ``{"state_dict": ...}`` wrappers are unwrapped.
2. :func:`convert_state_dict` applies the method's **drop rules** (train-only tensors, each with a
   reason) and then its ordered **rename rules** (regexes applied in order, detectron2
   ``c2_model_loading`` style), and asserts the mapping is one-to-one.
3. :func:`load_strict` compares with the model's ``state_dict()``: missing keys, unexpected keys
   and shape mismatches make an :class:`~benchmark.errors.InputError` naming the keys; the
   :class:`LoadReport` says what was converted, dropped (and why), missing and unexpected.

``visrepro checkpoints verify --variant V --checkpoint FILE`` computes a file's sha256 and records
it in ``benchmark/checkpoints.lock.json`` (which the registry reads), or checks it against the
recorded digest. ``visrepro checkpoints inspect`` prints the load report without failing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark._io import atomic_write_json, read_json
from benchmark.errors import InputError, Problem

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "LOCK_PATH",
    "ConversionError",
    "DropRule",
    "LoadReport",
    "RenameRule",
    "configure",
    "convert_state_dict",
    "load_strict",
    "read_checkpoint",
    "read_lock",
    "record_checkpoint",
    "run",
    "sha256_file",
]

log = logging.getLogger(__name__)

#: The lock file of known checkpoint digests (``$VISREPRO_CHECKPOINTS_LOCK`` overrides it).
LOCK_PATH = Path(__file__).with_name("checkpoints.lock.json")
_MAX_KEYS_SHOWN = 12


class ConversionError(ValueError):
    """The rename rules are not one-to-one (a bug in a method's conversion table)."""


@dataclass(frozen=True)
class RenameRule:
    """``re.sub(pattern, repl, key)``; rules apply in order, each to the previous one's output."""

    pattern: str
    repl: str

    def apply(self, key: str) -> str:
        return re.sub(self.pattern, self.repl, key)


@dataclass(frozen=True)
class DropRule:
    """Official keys matching ``pattern`` (``re.search``) are discarded, for ``reason``."""

    pattern: str
    reason: str

    def matches(self, key: str) -> bool:
        return re.search(self.pattern, key) is not None


@dataclass(frozen=True)
class LoadReport:
    """What loading an official checkpoint did.

    Attributes:
        converted: ``(official key, model key)`` for every loaded tensor, in checkpoint order.
        dropped: ``(official key, reason)`` for every deliberately discarded tensor.
        missing: Model keys the checkpoint did not fill.
        unexpected: Converted keys the model does not have.
        shape_mismatch: ``(model key, checkpoint shape, model shape)``.
        file: The checkpoint file (``None`` for an in-memory state dict).
        sha256: Its digest.
    """

    converted: tuple[tuple[str, str], ...] = ()
    dropped: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    shape_mismatch: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    file: str | None = None
    sha256: str | None = None

    @property
    def complete(self) -> bool:
        """Every model tensor filled, nothing left over, all shapes equal."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def summary(self) -> str:
        return (
            f"converted {len(self.converted)}, dropped {len(self.dropped)}, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape mismatches {len(self.shape_mismatch)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "complete": self.complete,
            "converted": [list(p) for p in self.converted],
            "dropped": [list(p) for p in self.dropped],
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "shape_mismatch": [[k, list(a), list(b)] for k, a, b in self.shape_mismatch],
        }


@dataclass
class Converted:
    """Output of :func:`convert_state_dict`."""

    state: dict[str, Any]
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_checkpoint(
    path: str | Path, *, expected_sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Read an official checkpoint's tensors (on CPU), verifying its digest when known.

    Returns:
        ``(state dict, sha256)``; non-tensor entries of the state dict are left out.

    Raises:
        InputError: Missing/unreadable file, digest mismatch, or a file that needs arbitrary
            unpickling (``weights_only=True`` refuses it).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file does not exist", file=path)
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise InputError(
            f"sha256 mismatch: the file has {digest}, the variant expects {expected_sha256} "
            "(a different or corrupt download)",
            file=path,
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"torch.load(weights_only=True) refused the file: it holds objects other than tensors ({exc})",
            file=path,
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise InputError(f"not a readable PyTorch checkpoint ({exc})", file=path) from None
    for wrapper in ("model", "state_dict", "net"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise InputError(f"checkpoint holds a {type(obj).__name__}, not a state dict", file=path)
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError("checkpoint holds no tensors", file=path)
    return state, digest


def convert_state_dict(
    official: Mapping[str, Any],
    renames: Sequence[RenameRule] = (),
    drops: Sequence[DropRule] = (),
) -> Converted:
    """Apply drop rules, then ordered rename rules, to official keys. Pure (no I/O, no copies).

    Raises:
        ConversionError: Two official keys map to the same new key.
    """
    out = Converted({})
    source: dict[str, str] = {}
    for key, value in official.items():
        rule = next((d for d in drops if d.matches(key)), None)
        if rule is not None:
            out.dropped.append((key, rule.reason))
            continue
        new = key
        for r in renames:
            new = r.apply(new)
        if new in source:
            raise ConversionError(f"rename rules map both {source[new]!r} and {key!r} to {new!r}")
        source[new] = key
        out.state[new] = value
        out.renamed.append((key, new))
    for old, new in out.renamed:
        if old != new:
            log.debug("checkpoint key %s -> %s", old, new)
    return out


def _shown(keys: Iterable[str]) -> str:
    keys = list(keys)
    s = ", ".join(keys[:_MAX_KEYS_SHOWN])
    return s + (f", ... ({len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else "")


def load_strict(
    model: nn.Module,
    converted: Converted,
    *,
    strict: bool = True,
    file: str | Path | None = None,
    sha256: str | None = None,
) -> LoadReport:
    """Load converted tensors into ``model``; with ``strict``, anything incomplete is an error.

    Raises:
        InputError: (strict) missing keys, unexpected keys or shape mismatches, each named.
    """
    own = model.state_dict()
    state = converted.state
    mismatch = tuple(
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    )
    report = LoadReport(
        converted=tuple((o, n) for o, n in converted.renamed if n in own),
        dropped=tuple(converted.dropped),
        missing=tuple(k for k in own if k not in state),
        unexpected=tuple(k for k in state if k not in own),
        shape_mismatch=mismatch,
        file=str(file) if file is not None else None,
        sha256=sha256,
    )
    if strict and not report.complete:
        f = str(file) if file is not None else None
        problems = []
        if report.missing:
            problems.append(Problem(f, "missing", f"{len(report.missing)} model key(s) not in the "
                                    f"checkpoint: {_shown(report.missing)}"))  # fmt: skip
        if report.unexpected:
            problems.append(Problem(f, "unexpected", f"{len(report.unexpected)} checkpoint key(s) the "
                                    f"model does not have: {_shown(report.unexpected)}"))  # fmt: skip
        for k, a, b in mismatch[:_MAX_KEYS_SHOWN]:
            problems.append(Problem(f, k, f"shape {list(a)} in the checkpoint, {list(b)} in the model"))
        problems.append(Problem(f, None, "the checkpoint does not load completely (strict loading); "
                                "check the variant, or pass strict=False to inspect"))  # fmt: skip
        raise InputError(problems)
    loadable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(loadable, strict=False)
    log.info("loaded %s: %s", file or "state dict", report.summary())
    return report


# ---- the lock file ------------------------------------------------------------------------------
def _lock_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get("VISREPRO_CHECKPOINTS_LOCK") or LOCK_PATH)


def read_lock(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """``{variant: {"sha256", "file", "size", "recorded_at"}}`` from the lock file (empty if absent)."""
    p = _lock_path(path)
    if not p.is_file():
        return {}
    data = read_json(p, what="checkpoint lock file")
    recs = data.get("checkpoints") if isinstance(data, dict) else None
    if not isinstance(recs, dict):
        raise InputError("expected {'format': 1, 'checkpoints': {variant: {...}}}", file=p)
    return {str(k): dict(v) for k, v in recs.items() if isinstance(v, dict)}


def record_checkpoint(variant: str, file: str | Path, sha256: str, path: str | Path | None = None) -> Path:
    """Record ``variant``'s checkpoint digest in the lock file (atomically); returns the lock path."""
    p = _lock_path(path)
    recs = read_lock(p)
    recs[variant] = {
        "sha256": sha256,
        "file": Path(file).name,
        "size": Path(file).stat().st_size,
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(p, {"format": 1, "checkpoints": dict(sorted(recs.items()))}, indent=2)
    return p


# ---- visrepro checkpoints -----------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="compute a checkpoint's sha256; record it (or check the recorded one)")
    i = sub.add_parser("inspect", help="load a checkpoint into the variant's model and print the report")
    for p in (v, i):
        p.add_argument("--variant", required=True, help="variant name (see 'visrepro list')")
        p.add_argument("--checkpoint", required=True, type=Path, help="the official checkpoint file")
        p.add_argument("--lock", type=Path, help=f"lock file (default: {LOCK_PATH.name} in the package)")
    i.add_argument("--json", action="store_true", help="print the full report as JSON")


def run(args: argparse.Namespace) -> int:
    old = os.environ.get("VISREPRO_CHECKPOINTS_LOCK")
    if args.lock is not None:
        os.environ["VISREPRO_CHECKPOINTS_LOCK"] = str(args.lock)
    try:
        return _run(args)
    finally:
        if old is None:
            os.environ.pop("VISREPRO_CHECKPOINTS_LOCK", None)
        else:
            os.environ["VISREPRO_CHECKPOINTS_LOCK"] = old


def _run(args: argparse.Namespace) -> int:
    from benchmark.registry import create_adapter, get_variant_cfg

    cfg = get_variant_cfg(args.variant)
    if args.action == "verify":
        if not args.checkpoint.is_file():
            raise InputError("checkpoint file does not exist", file=args.checkpoint)
        digest = sha256_file(args.checkpoint)
        if cfg.checkpoint_sha256:
            if digest != cfg.checkpoint_sha256:
                raise InputError(
                    f"sha256 {digest} differs from the recorded {cfg.checkpoint_sha256} of {cfg.name}",
                    file=args.checkpoint,
                )
            print(f"{args.checkpoint}: sha256 {digest} OK ({cfg.name})")
            return 0
        lock = record_checkpoint(cfg.name, args.checkpoint, digest, args.lock)
        print(f"{args.checkpoint}: sha256 {digest} recorded for {cfg.name} in {lock}")
        return 0
    adapter = create_adapter(cfg.name)
    report = adapter.load_official_checkpoint(args.checkpoint, strict=False)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{cfg.name} <- {args.checkpoint}: {report.summary()}")
        for k, why in report.dropped:
            print(f"  dropped    {k}  ({why})")
        for k in report.missing:
            print(f"  missing    {k}")
        for k in report.unexpected:
            print(f"  unexpected {k}")
        for k, a, b in report.shape_mismatch:
            print(f"  shape      {k}: {list(a)} vs {list(b)}")
    return 0 if report.complete else 1
