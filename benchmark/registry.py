"""The variant registry: metadata of every variant, builders of the implemented ones, plugins.

Two tables, kept apart on purpose:

* **variants** (:class:`~benchmark.variant_cfg.VariantCfg`, importable without torch): every
  variant the suite knows of, implemented or not, with its published numbers. ``visrepro list``
  shows them all.
* **builders**: ``builder(cfg, *, device, **kwargs) -> MethodAdapter``, keyed by a variant name or
  by its arch (the part before the dot: a builder for ``crossvis_r50`` builds every
  ``crossvis_r50.*`` variant). A builder may be given as ``"module:function"`` and is imported
  only when an adapter is created, so listing never imports torch or the model code.

Registering a name twice raises :class:`RegistryError` (torchvision's rule; timm only warns),
unless the second registration is identical (re-running a plugin's register function is harmless).

Where registrations come from (:func:`ensure_loaded`, once per process):

1. the built-in methods (:func:`methods.register`);
2. Python entry points of the group ``visrepro.methods``: each names a module (registering on
   import) or a callable (called with no arguments) of another installed package;
3. ``--adapter-module my_pkg.my_adapter`` (or ``my_pkg.mod:register``) on the command line
   (:func:`load_adapter_module`).

Checkpoint digests recorded by ``visrepro checkpoints verify`` (``benchmark/checkpoints.lock.json``)
are merged into the configs :func:`get_variant_cfg` returns.

Also the ``visrepro list [PATTERN] [--json]`` subcommand.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import fnmatch
import importlib
import importlib.metadata
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from benchmark.errors import InputError
from benchmark.variant_cfg import VariantCfg

if TYPE_CHECKING:
    from benchmark.adapter import MethodAdapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Builder",
    "RegistryError",
    "configure",
    "create_adapter",
    "ensure_loaded",
    "get_variant_cfg",
    "is_implemented",
    "list_variants",
    "load_adapter_module",
    "plugin_errors",
    "register_builder",
    "register_variant",
    "run",
    "status_of",
]

log = logging.getLogger(__name__)

#: Entry-point group through which other packages register variants.
ENTRY_POINT_GROUP = "visrepro.methods"

Builder = Callable[..., "MethodAdapter"]

_VARIANTS: dict[str, VariantCfg] = {}
_BUILDERS: dict[str, Builder | str] = {}
_ORIGIN: dict[str, str] = {}  # name -> module that registered it (for error messages)
_PLUGIN_ERRORS: dict[str, str] = {}
_LOADED = False


class RegistryError(ValueError):
    """A registration conflict (duplicate name, malformed name): a bug in a method package."""


def _caller_module() -> str:
    frame = sys._getframe(2)
    while frame and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    return str(frame.f_globals.get("__name__", "?")) if frame else "?"


def _check_name(name: str) -> None:
    arch, dot, tag = name.partition(".")
    if not dot or not arch or not tag or any(c.isspace() for c in name) or "/" in name:
        raise RegistryError(f"variant name {name!r} must look like 'method_backbone.dataset'")


def register_variant(cfg: VariantCfg, builder: Builder | str | None = None) -> VariantCfg:
    """Register a variant's metadata (and optionally its builder).

    Raises:
        RegistryError: ``cfg.name`` is malformed or already registered with different metadata.
    """
    _check_name(cfg.name)
    old = _VARIANTS.get(cfg.name)
    if old is not None and old != cfg:
        raise RegistryError(
            f"variant {cfg.name!r} registered twice with different metadata "
            f"(first by {_ORIGIN.get(cfg.name, '?')}, again by {_caller_module()})"
        )
    if old is None:
        _VARIANTS[cfg.name] = cfg
        _ORIGIN[cfg.name] = _caller_module()
    if builder is not None:
        register_builder(cfg.name, builder)
    return cfg


def register_builder(names: str | Iterable[str], builder: Builder | str) -> None:
    """Register ``builder`` for variant names or archs (``crossvis_r50`` covers ``crossvis_r50.*``).

    ``builder`` is a callable ``(cfg: VariantCfg, *, device: str, **kwargs) -> MethodAdapter`` or
    ``"module:function"`` naming one (imported on first use).

    Raises:
        RegistryError: A different builder is already registered under one of the names.
    """
    if isinstance(names, str):
        names = [names]
    if isinstance(builder, str) and ":" not in builder:
        raise RegistryError(f"builder reference {builder!r} must be 'module:function'")
    for name in names:
        old = _BUILDERS.get(name)
        if old is not None and old != builder:
            raise RegistryError(f"a builder for {name!r} is already registered ({old!r})")
        _BUILDERS[name] = builder


def _resolve(ref: Builder | str) -> Builder:
    if not isinstance(ref, str):
        return ref
    mod, _, fn = ref.partition(":")
    obj = importlib.import_module(mod)
    for part in fn.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[return-value]


def _builder_of(name: str) -> Builder | str | None:
    return _BUILDERS.get(name) or _BUILDERS.get(name.split(".", 1)[0])


def ensure_loaded() -> None:
    """Register the built-in variants and those of installed plugins (once per process)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import methods

    methods.register()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as exc:  # a broken plugin must not break the suite
            _PLUGIN_ERRORS[f"{ep.name} = {ep.value}"] = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s (%s) failed to register: %s", ep.name, ep.value, exc)


def plugin_errors() -> dict[str, str]:
    """Entry points that failed to load: ``{"name = value": "error"}``."""
    return dict(_PLUGIN_ERRORS)


def load_adapter_module(spec: str) -> None:
    """Import ``my_pkg.my_adapter`` (registering on import) or call ``my_pkg.mod:register``.

    Raises:
        InputError: The module cannot be imported or the function does not exist.
    """
    ensure_loaded()
    mod_name, _, fn = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputError(f"cannot import adapter module: {exc}", entry=f"--adapter-module {spec}") from None
    if fn:
        func = getattr(mod, fn, None)
        if not callable(func):
            raise InputError(f"module {mod_name} has no function {fn!r}", entry=f"--adapter-module {spec}")
        func()


def _lock() -> dict[str, dict[str, Any]]:
    from benchmark.checkpoint import read_lock

    return read_lock()


def get_variant_cfg(name: str) -> VariantCfg:
    """The metadata of ``name``, with the sha256 recorded in the lock file merged in.

    Raises:
        InputError: Unknown name (the message suggests close names).
    """
    ensure_loaded()
    cfg = _VARIANTS.get(name)
    if cfg is None:
        close = difflib.get_close_matches(name, list(_VARIANTS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see 'visrepro list'"
        extra = f" ({len(_PLUGIN_ERRORS)} plugin(s) failed to load)" if _PLUGIN_ERRORS else ""
        raise InputError(f"unknown variant {name!r}{hint}{extra}", entry="--variant")
    if cfg.checkpoint_sha256 is None:
        rec = _lock().get(name)
        if rec and rec.get("sha256"):
            # the digest is of the file recorded with it: its name is the variant's published file
            file = cfg.checkpoint_file or (str(rec["file"]) if rec.get("file") else None)
            cfg = dataclasses.replace(cfg, checkpoint_sha256=str(rec["sha256"]), checkpoint_file=file)
    return cfg


def is_implemented(name: str) -> bool:
    """Whether a builder is registered for ``name`` (or its arch)."""
    ensure_loaded()
    return _builder_of(name) is not None


def status_of(name: str) -> str:
    """``implemented``, ``not implemented yet``, ``oracle`` or ``test fixture``."""
    cfg = get_variant_cfg(name)
    if cfg.kind == "test":
        return "test fixture"
    if not is_implemented(name):
        return "not implemented yet"
    return "oracle" if cfg.kind == "oracle" else "implemented"


def list_variants(
    include: str | Sequence[str] = "*",
    exclude: str | Sequence[str] = (),
    *,
    method: str | None = None,
    kind: str | None = None,
    implemented: bool | None = None,
) -> list[str]:
    """Variant names matching fnmatch patterns, sorted.

    Args:
        include: Pattern(s) a name must match (any).
        exclude: Pattern(s) that remove a name.
        method: Keep only this method.
        kind: Keep only this kind (``method``, ``oracle``, ``test``).
        implemented: ``True``/``False`` keeps only (not) implemented variants; ``None`` all.
    """
    ensure_loaded()
    inc = [include] if isinstance(include, str) else list(include)
    exc = [exclude] if isinstance(exclude, str) else list(exclude)
    out = []
    for name, cfg in _VARIANTS.items():
        if not any(fnmatch.fnmatchcase(name, p) for p in inc):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in exc):
            continue
        if method is not None and cfg.method != method:
            continue
        if kind is not None and cfg.kind != kind:
            continue
        if implemented is not None and (_builder_of(name) is not None) != implemented:
            continue
        out.append(name)
    return sorted(out)


def create_adapter(name: str, *, device: str = "cpu", **kwargs: Any) -> MethodAdapter:
    """Build the adapter of variant ``name`` (random or built-in weights; load a checkpoint after).

    Args:
        name: Variant name.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        **kwargs: Passed to the builder (method options, e.g. the oracle's perturbations).

    Raises:
        InputError: Unknown variant, or a variant whose method is not implemented yet, or options
            the builder does not take.
    """
    cfg = get_variant_cfg(name)
    ref = _builder_of(name)
    if ref is None:
        raise InputError(
            f"variant {name!r} is listed (published numbers) but its method {cfg.method!r} is not "
            "implemented yet",
            entry="--variant",
        )
    fn = _resolve(ref)
    try:
        return fn(cfg, device=device, **kwargs)
    except TypeError as exc:
        if kwargs and "argument" in str(exc):
            raise InputError(f"bad adapter option(s) {sorted(kwargs)}: {exc}", entry=name) from None
        raise


# ---- visrepro list ------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON (full metadata) instead of a table")
    parser.add_argument("--method", help="only this method")
    parser.add_argument("--adapter-module", action="append", default=[], help="also load this module")


def _row(cfg: VariantCfg) -> list[str]:
    prim = cfg.primary_result()
    ap = f"{prim.metrics['AP']:.1f}" if prim else "-"
    fps = "/".join(f"{f.fps:g}" for f in cfg.fps if f.protocol == "model") or "-"
    if cfg.checkpoint_sha256:
        ck = "sha256 " + cfg.checkpoint_sha256[:8]
    else:
        ck = "link" if cfg.checkpoint_urls else "-"
    clip = "online" if cfg.clip_length == 1 else f"clip {cfg.clip_length}/{cfg.clip_overlap}"
    size = f"{cfg.input_size.min_size}/{cfg.input_size.max_size}" if cfg.input_size else "-"
    return [cfg.name, status_of(cfg.name), cfg.eval_dataset or "-", ap, fps, ck, size, clip]


def run(args: argparse.Namespace) -> int:
    for spec in args.adapter_module:
        load_adapter_module(spec)
    names = list_variants(args.pattern, method=args.method)
    if args.json:
        out = [dict(get_variant_cfg(n).to_dict(), status=status_of(n)) for n in names]
        print(json.dumps(out, indent=2))
        return 0
    if not names:
        print(f"no variant matches {args.pattern!r}", file=sys.stderr)
        return 1
    head = ["variant", "status", "published on", "AP", "FPS", "checkpoint", "input", "mode"]
    rows = [head] + [_row(get_variant_cfg(n)) for n in names]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
