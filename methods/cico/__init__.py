"""CiCo (Li and Zhang, ECCV 2022): clip-in clip-out (3-frame clips, overlap 1), linked across clips.

Only the variant metadata lives here so far (:mod:`methods.cico.variants`); the model and its
adapter come with the method's own issue and register a builder for these variants.
"""

from methods.cico.variants import VARIANTS

__all__ = ["VARIANTS"]
