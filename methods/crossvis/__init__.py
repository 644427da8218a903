"""CrossVIS (Yang et al., ICCV 2021): online, frame-in frame-out, CondInst + re-id tracker.

Only the variant metadata lives here so far (:mod:`methods.crossvis.variants`); the model and its
adapter come with the method's own issue and register a builder for these variants.
"""

from methods.crossvis.variants import VARIANTS

__all__ = ["VARIANTS"]
