"""Official CiCo checkpoint layouts -> :class:`~methods.cico.model.CiCoNet` keys.

The released ``.pth`` files are plain ``CoreNet`` state dicts whose keys already equal ours. The
official ``CoreNet.load_weights`` also accepts older layouts, and so do we: a ``module.`` prefix
(DataParallel), top-level ``mask_refine.``/``proto_net.``/``proto_conv.`` (before the ProtoNet
module existed) and ``prediction_layers.0.`` (one prediction module per level). Modules no CiCo
configuration builds are dropped with a reason. Checkpoints of code before 2022-03-08 have a
3-D ``proto_conv`` (``is_legacy_proto_conv``); the adapter then builds that layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmark.checkpoint import DropRule, RenameRule

__all__ = ["DROPS", "RENAMES", "is_legacy_proto_conv"]

RENAMES: tuple[RenameRule, ...] = (
    RenameRule(r"^module\.", ""),
    RenameRule(r"^(mask_refine|proto_net|proto_conv)\.", r"ProtoNet.\1."),
    RenameRule(r"^prediction_layers\.0\.", "prediction_layers."),
)

DROPS: tuple[DropRule, ...] = (
    DropRule(
        r"^(module\.)?(T2S_Head|TemporalNet)\.", "STMask temporal fusion module: not built by any CiCo config"
    ),
    DropRule(r"^(module\.)?track_conv\.", "Gaussian track head (TRACK_BY_GAUSSIAN=False in CiCo)"),
    DropRule(r"^(module\.)?semantic_seg_conv\.", "train-only semantic segmentation head"),
    DropRule(
        r"^(module\.)?fpn\.downsample_layers\.([2-9]|\d\d+)\.",
        "FPN has 2 downsample layers (official loader drops more)",
    ),
)


def is_legacy_proto_conv(state: Mapping[str, Any]) -> bool:
    """Whether a checkpoint (any accepted layout) has the pre-2022-03-08 3-D ``proto_conv``."""
    for k, v in state.items():
        if k.endswith("proto_conv.0.weight") and hasattr(v, "dim"):
            return bool(v.dim() == 5)
    return False
