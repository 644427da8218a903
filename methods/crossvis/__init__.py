"""CrossVIS (Yang et al., ICCV 2021): online, frame-in frame-out, CondInst + re-id tracker.

Metadata: :mod:`methods.crossvis.variants` (importable without torch). Implementation, equal to
the official ``hustvl/CrossVIS`` test pipeline: :mod:`~methods.crossvis.backbone` (MSRA ResNet
with FrozenBN + FPN P3-P7), :mod:`~methods.crossvis.head` (FCOS head with the re-id tower,
proposal selection), :mod:`~methods.crossvis.mask` (mask branch, batched dynamic mask head),
:mod:`~methods.crossvis.model`, :mod:`~methods.crossvis.tracker` (``tools/test_vis.py``),
:mod:`~methods.crossvis.convert` (checkpoint mapping), :mod:`~methods.crossvis.adapter`.
"""

from methods.crossvis.variants import VARIANTS

__all__ = ["VARIANTS"]
