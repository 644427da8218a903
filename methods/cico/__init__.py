"""CiCo (Li and Zhang, ECCV 2022): clip-in clip-out (3-frame clips, overlap 1), linked across clips.

Variant metadata: :mod:`methods.cico.variants` (importable without torch). The plain-PyTorch
re-implementation: :mod:`~methods.cico.model` (backbone, FPN, clip head, clip ProtoNet),
:mod:`~methods.cico.detect`, :mod:`~methods.cico.track` and the adapter
(:func:`methods.cico.adapter.build`, registered for all 18 variants in :mod:`methods`).
"""

from methods.cico.variants import VARIANTS

__all__ = ["VARIANTS"]
