"""visrepro: a reproducibility benchmark suite for video instance segmentation."""

from __future__ import annotations

__version__ = "0.1.0"
