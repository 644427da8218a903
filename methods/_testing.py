"""TEST FIXTURE: a tiny conv net with trivial thresholding (variants ``test_tiny.toy`` and
``test_tiny_clip.toy``). Not a VIS method: it exists so the runner, the FPS harness and the
checkpoint loader are tested with a real ``nn.Module`` in milliseconds.

The net (:class:`TinyNet`) maps ``[T, 3, H, W]`` frames to ``[T, C, H/2, W/2]`` class logits.
Per emitted frame and class ``c``, the instance mask is ``logit_c > mean(logit_c)`` (so it is never
empty), its track id is ``c`` (identity "tracking"), its score the mean sigmoid inside the mask,
and its category the dataset's ``c``-th category id (sorted). Weights come from a fixed seed, so
every process builds the same model.

The conversion rules mimic an official checkpoint's layout (``backbone.conv.*`` -> ``stem.*``,
``cls_head.*`` -> ``head.*``; ``reid_classifier.*`` dropped as train-only) so that checkpoint
loading is tested end to end. Test hooks: ``calls_file`` (append each video id on reset) and
``crash_after`` (``os._exit(3)`` when starting video number ``crash_after + 1``), to test resuming;
also read from ``$VISREPRO_TEST_CALLS_FILE`` / ``$VISREPRO_TEST_CRASH_AFTER``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.adapter import Clip, InstanceOutput, MethodAdapter, masks_to_rles
from benchmark.checkpoint import DropRule, RenameRule
from benchmark.data.frames import VideoSample
from benchmark.variant_cfg import VariantCfg

__all__ = ["TinyAdapter", "TinyNet", "build_tiny"]


class TinyNet(nn.Module):
    """``[T, 3, H, W]`` float frames -> ``[T, num_classes, ceil(H/2), ceil(W/2)]`` logits."""

    def __init__(self, num_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.bn(self.stem(x))))


class TinyAdapter(MethodAdapter):
    """The test fixture's adapter (see the module docstring)."""

    renames = (RenameRule(r"^backbone\.conv\.", "stem."), RenameRule(r"^backbone\.norm\.", "bn."),
               RenameRule(r"^cls_head\.", "head."))  # fmt: skip
    drops = (DropRule(r"^reid_classifier\.", "train-only re-id classifier"),)

    def __init__(
        self,
        cfg: VariantCfg,
        model: TinyNet,
        *,
        device: str = "cpu",
        input_size: int | None = None,
        calls_file: str | None = None,
        crash_after: int | None = None,
    ) -> None:
        super().__init__(cfg, model, device=device)
        self.input_size = input_size
        self.calls_file = Path(calls_file) if calls_file else None
        self.crash_after = crash_after
        self._videos_started = 0

    def reset(self, video: VideoSample) -> None:
        if self.crash_after is not None and self._videos_started >= self.crash_after:
            os._exit(3)  # simulate a killed run (no cleanup, no finally blocks)
        self._videos_started += 1
        if self.calls_file is not None:
            with open(self.calls_file, "a") as fh:
                fh.write(f"{video.video_id}\n")

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> torch.Tensor:
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        if self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.to_input(x)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        return self.model(inputs)

    def track(self, raw: torch.Tensor, clip: Clip, video: VideoSample) -> torch.Tensor:
        """Logits of the emitted frames only: ``[len(emit), C, h, w]`` (float32)."""
        pos = [f - clip.frame_ids[0] for f in clip.emit]
        return raw[pos].float()

    def postprocess(self, tracked: torch.Tensor, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        logits = F.interpolate(
            tracked, size=(video.height, video.width), mode="bilinear", align_corners=False
        )
        masks = logits > logits.mean(dim=(2, 3), keepdim=True)  # [F, C, H, W]
        probs = torch.sigmoid(logits)
        outs = []
        for c in range(masks.shape[1]):
            cat = self.category_ids[c] if c < len(self.category_ids) else c + 1
            m = masks[:, c]
            score = float((probs[:, c] * m).sum() / m.sum().clamp(min=1))
            outs.append(InstanceOutput(c, cat, score, tuple(clip.emit), tuple(masks_to_rles(m))))
        return outs

    def checkpoint_num_classes(self, state: Mapping[str, torch.Tensor]) -> int | None:
        w = state.get("head.weight")
        return int(w.shape[0]) if w is not None else None


def build_tiny(
    cfg: VariantCfg,
    *,
    device: str = "cpu",
    num_classes: int = 2,
    width: int = 8,
    seed: int = 0,
    **kwargs: Any,
) -> TinyAdapter:
    """Builder of the test variants; the weights depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyNet(int(num_classes), int(width))
    # test hooks may come from the environment, so they stay out of the run's identity (options)
    if "calls_file" not in kwargs and os.environ.get("VISREPRO_TEST_CALLS_FILE"):
        kwargs["calls_file"] = os.environ["VISREPRO_TEST_CALLS_FILE"]
    if "crash_after" not in kwargs and os.environ.get("VISREPRO_TEST_CRASH_AFTER"):
        kwargs["crash_after"] = int(os.environ["VISREPRO_TEST_CRASH_AFTER"])
    return TinyAdapter(cfg, model, device=device, **kwargs)
