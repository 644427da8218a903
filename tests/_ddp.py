"""Shared check of the training tests: DDP on two gloo ranks equals one process with micro-batches."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

from benchmark.train import FINAL_MODEL, configure, run

REPO = Path(__file__).resolve().parent.parent


def final_state(out: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(out / FINAL_MODEL, map_location="cpu", weights_only=True)
    return state


def assert_ddp_equals_micro_batches(variant: str, train_json: Path, tmp_path: Path, width: int) -> None:
    """DDP averages the two ranks' gradients: the same as one process whose batch of 2 clips is
    split into 2 micro-batches with their losses averaged (rank r's sample = micro-batch r).
    BatchNorm buffers are not compared: DDP broadcasts rank 0's, accumulation saw both."""
    common = ["--variant", variant, "--dataset", str(train_json), "--no-progress", "--threads", "1",
              "--opt", f"width={width}", "--max-steps", "2", "--lr", "0.002", "--save-every", "0", "--precision", "fp32"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "benchmark.train", *common, "--batch-size", "1", "--out", str(ddp)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = tmp_path / "single"
    p = argparse.ArgumentParser()
    configure(p)
    assert run(p.parse_args([*common, "--batch-size", "2", "--accumulate", "2", "--out", str(single)])) == 0
    a, b = final_state(ddp), final_state(single)
    moved = 0
    for k in a:
        if k.endswith("num_batches_tracked") or "running_" in k:
            continue
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), k
        moved += 1
    assert moved > 50
