"""Method adapters (CrossVIS, CiCo, the oracle and test fixtures), registered with :mod:`benchmark.registry`.

:func:`register` registers the metadata of every built-in variant and the builders of those that
are implemented. Builders are given as ``"module:function"`` strings, so registering (and
``visrepro list``) imports neither torch nor model code. Method packages add their builders here
when they land (e.g. ``register_builder("crossvis_r50", "methods.crossvis.adapter:build")``).
"""

from __future__ import annotations

from benchmark.registry import register_builder, register_variant
from benchmark.variant_cfg import VariantCfg

__all__ = ["BUILTIN_EXTRA", "register"]

#: The oracle and the test fixtures (not methods; no published numbers).
BUILTIN_EXTRA: tuple[tuple[VariantCfg, str], ...] = (
    (
        VariantCfg(
            name="oracle.gt",
            method="oracle",
            kind="oracle",
            train_dataset="any",
            notes=("Returns the dataset's GT tracks, optionally perturbed (see methods/oracle.py).",),
        ),
        "methods.oracle:build",
    ),
    (
        VariantCfg(
            name="test_tiny.toy",
            method="test_tiny",
            kind="test",
            train_dataset="any",
            notes=("Test fixture: a tiny conv net with thresholding (methods/_testing.py).",),
        ),
        "methods._testing:build_tiny",
    ),
    (
        VariantCfg(
            name="test_tiny_clip.toy",
            method="test_tiny",
            kind="test",
            train_dataset="any",
            clip_length=3,
            clip_overlap=1,
            notes=("Test fixture: the tiny net on 3-frame clips with overlap 1 (CiCo's schedule).",),
        ),
        "methods._testing:build_tiny",
    ),
)


def register() -> None:
    """Register every built-in variant (idempotent)."""
    from methods import cico, crossvis

    for cfg in crossvis.VARIANTS + cico.VARIANTS:
        register_variant(cfg)
    register_builder([c.name for c in cico.VARIANTS], "methods.cico.adapter:build")
    for cfg in cico.variants.SMALL_VARIANTS:
        register_variant(cfg, "methods.cico.small:build")
    register_builder([c.name for c in crossvis.VARIANTS], "methods.crossvis.adapter:build")
    register_variant(crossvis.variants.SMALL_VARIANTS[0], "methods.crossvis.small:build")
    for cfg, builder in BUILTIN_EXTRA:
        register_variant(cfg)
        register_builder(cfg.name, builder)
