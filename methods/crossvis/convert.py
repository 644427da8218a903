"""Official CrossVIS checkpoint -> :class:`~methods.crossvis.model.CrossVISNet` state dict.

Our modules carry the official names, so there is nothing to rename. One group is dropped:
the re-id classifier ``cls.*`` (``Linear(256, 3774)`` over the YouTube-VIS-2019 train
identities) is used only by the training re-id loss.
"""

from __future__ import annotations

from benchmark.checkpoint import DropRule, RenameRule

__all__ = ["DROPS", "RENAMES"]

RENAMES: tuple[RenameRule, ...] = ()
DROPS: tuple[DropRule, ...] = (
    DropRule(
        r"^cls\.",
        "training-only re-id classifier (Linear 256 -> 3774 train identities; used only by the "
        "re-id loss, not at inference)",
    ),
)
