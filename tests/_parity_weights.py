"""Rebuild a parity fixture's weights: manifest + seed + overrides -> state dict.

Our own implementation of the rule the fixtures document (``fixtures/parity/README.md``): for each
``(name, shape)`` of the manifest, in its order, an override if there is one (dtype kept), an
int64 zero for ``*num_batches_tracked``, otherwise float32 draws of one numpy PCG64 stream
(``standard_normal`` in float64, scaled, then cast) with std ``1/sqrt(fan_in)`` for tensors of two
or more dims (fan_in = product of all dims but the first) and 0.02 otherwise. The stream advances
only for drawn tensors; ``drawn_sha256`` hashes the drawn bytes so a test can tell a change of
numpy's stream from a model bug. Generic: used by every method's parity tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["build_state_dict", "fixture_state_dict", "load_manifest", "load_overrides"]


def load_manifest(path: str | Path) -> dict[str, list[int]]:
    with open(path) as fh:
        return dict(json.load(fh))


def load_overrides(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def build_state_dict(
    manifest: Mapping[str, Any], seed: int, overrides: Mapping[str, np.ndarray]
) -> tuple[dict[str, torch.Tensor], str]:
    """``(state dict of CPU tensors in manifest order, sha256 of the drawn bytes)``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    digest = hashlib.sha256()
    state: dict[str, torch.Tensor] = {}
    for name, shape_list in manifest.items():
        shape = tuple(int(s) for s in shape_list)
        if name in overrides:
            arr = np.asarray(overrides[name])
            if tuple(arr.shape) != shape:
                raise ValueError(f"override {name}: shape {arr.shape} != manifest {shape}")
        elif name.endswith("num_batches_tracked"):
            arr = np.zeros(shape, dtype=np.int64)
        else:
            count = int(np.prod(shape)) if shape else 1
            std = 1.0 / np.sqrt(np.prod(shape[1:])) if len(shape) >= 2 else 0.02
            arr = (rng.standard_normal(count) * std).astype(np.float32).reshape(shape)
            digest.update(arr.tobytes())
        state[name] = torch.from_numpy(np.array(arr))
    return state, digest.hexdigest()


def fixture_state_dict(
    fixture_dir: str | Path, manifests_dir: str | Path
) -> tuple[dict[str, torch.Tensor], str]:
    """The weights of a parity fixture directory (its ``meta.json`` names manifest and seed)."""
    fixture_dir = Path(fixture_dir)
    meta = json.loads((fixture_dir / "meta.json").read_text())
    manifest = load_manifest(Path(manifests_dir) / meta["manifest"])
    overrides_file = meta.get("overrides", {}).get("file", "overrides.npz")
    return build_state_dict(manifest, int(meta["seed"]), load_overrides(fixture_dir / overrides_file))
