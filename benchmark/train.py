"""``visrepro train``: a method-agnostic training loop (single process or ``torchrun`` DDP).

A method provides a :class:`MethodTrainer` in ``methods/<method>/train.py`` (``build_trainer(cfg,
**options)``; or ``--trainer module:function``): the network, a dataset of training samples, the
collate function, the loss dict, the official schedule and initialisation. The loop adds:

* determinism: the model is built after ``torch.manual_seed(seed)``; the sample stream is a pure
  function of ``(seed, step)`` (one permutation of the dataset per epoch, ``seed`` and the epoch
  seeding it) and every sample's augmentation draws from its own generator seeded with ``(seed,
  position in the stream)``, so neither the number of processes nor a resume changes the data;
* DDP under ``torchrun`` (gloo on CPU, NCCL on CUDA): the global batch of a step is
  ``world_size x --batch-size`` consecutive samples of the stream, rank ``r`` taking the ``r``-th
  slice; gradients are averaged over ranks. ``--accumulate K`` splits a process's batch into ``K``
  micro-batches whose losses are averaged (the same gradient as ``K`` DDP ranks);
* the schedule: SGD (or AdamW), linear warm-up, step decay, optional gradient clipping (``--lr``,
  ``--max-steps`` override it; a shorter run scales the decay steps with it);
* ``--prefetch``: the next batch loaded in a background thread during the step (the same batches;
  off by default: with 2 CPU cores busy training, the extra thread slows the step);
* ``--precision``: ``bf16`` is bf16 autocast of the forward pass and the losses (fp32 weights);
  ``auto`` (the default) is bf16 where the device computes bf16 natively (:func:`native_bf16`: AMX
  or AVX-512 BF16 on x86, a CUDA device with bf16) and fp32 elsewhere, where bf16 is emulated and
  4-8x slower (AVX2-only CPUs); the summary records what was asked and what ran;
* logging of every loss term (``--log-every``; ``train_log.jsonl`` in ``--out``) and a tqdm bar;
* checkpoints in ``--out``: ``last.pth`` (our format, see :func:`save_state`) every
  ``--save-every`` steps and at the end, written atomically; ``model_final.pth`` = the variant's
  official checkpoint layout (loadable by ``visrepro predict --checkpoint``);
* ``--resume`` continues from ``last.pth`` (or a given file) bit-exactly: model, optimizer,
  schedule position, step and RNG states; a state of another variant, global batch, precision or
  set of trainer options (``--opt``) is refused, naming what differs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from benchmark.errors import InputError, TrainingError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from benchmark.data.ytvis import YTVISDataset

__all__ = [
    "PRECISIONS",
    "STATE_FORMAT",
    "MethodTrainer",
    "SampleStream",
    "Schedule",
    "TrainDataset",
    "configure",
    "get_trainer",
    "load_state",
    "run",
    "save_state",
    "train",
]

log = logging.getLogger(__name__)

STATE_FORMAT = "visrepro-train/1"
HELP = "train a variant (single process or torchrun DDP); save/resume checkpoints"
FINAL_MODEL = "model_final.pth"
LAST_STATE = "last.pth"


@dataclass(frozen=True)
class Schedule:
    """SGD with linear warm-up and step decay; ``lr_at(step)`` is a pure function of the step.

    Warm-up (official Yolact/CiCo): for ``step <= warmup_steps``,
    ``lr = (lr - warmup_init_lr) * step / warmup_steps + warmup_init_lr``; afterwards
    ``lr * gamma ** #{decay steps <= step}``.

    ``optimizer`` is ``"sgd"`` (every official schedule: momentum, L2 ``weight_decay``) or
    ``"adamw"`` (``betas = (momentum, 0.999)``, decoupled ``weight_decay``), which the small
    variants trained from scratch on CPU use. ``norm_weight_decay`` is the decay of normalisation
    layers' weights and biases (``None``: ``weight_decay``, as the official schedules).
    ``decay="cosine"`` (not in any official schedule) replaces the step decay after the warm-up by a
    half cosine from ``lr`` at the end of the warm-up to ``gamma * lr`` at ``max_steps``
    (``decay_steps`` unused).
    """

    lr: float
    max_steps: int
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    warmup_init_lr: float = 0.0
    decay_steps: tuple[int, ...] = ()
    gamma: float = 0.1
    grad_clip: float | None = None
    optimizer: str = "sgd"
    norm_weight_decay: float | None = None
    decay: str = "step"

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise UsageError(f"unknown optimizer {self.optimizer!r}: sgd or adamw")
        if self.decay not in ("step", "cosine"):
            raise UsageError(f"unknown lr decay {self.decay!r}: step or cosine")

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over ``model``'s trainable parameters (two groups when norm layers
        have their own weight decay)."""
        import torch
        from torch import nn

        params = [p for p in model.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": params}]
        if self.norm_weight_decay is not None:
            # the normalisation layers detectron2's WEIGHT_DECAY_NORM covers
            norm_types = (
                nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
                nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
            )  # fmt: skip
            norm_ids = {
                id(p)
                for m in model.modules()
                if isinstance(m, norm_types)
                for p in m.parameters(recurse=False)
            }
            groups = [
                {"params": [p for p in params if id(p) not in norm_ids]},
                {"params": [p for p in params if id(p) in norm_ids], "weight_decay": self.norm_weight_decay},
            ]
        if self.optimizer == "adamw":
            return torch.optim.AdamW(
                groups, lr=self.lr_at(0), betas=(self.momentum, 0.999), weight_decay=self.weight_decay
            )
        return torch.optim.SGD(
            groups, lr=self.lr_at(0), momentum=self.momentum, weight_decay=self.weight_decay
        )

    def lr_at(self, step: int) -> float:
        if self.warmup_steps > 0 and step <= self.warmup_steps:
            return (self.lr - self.warmup_init_lr) * step / self.warmup_steps + self.warmup_init_lr
        if self.decay == "cosine":
            span = max(self.max_steps - self.warmup_steps, 1)
            frac = min(max(step - self.warmup_steps, 0) / span, 1.0)
            return self.gamma * self.lr + (1 - self.gamma) * self.lr * 0.5 * (1 + math.cos(math.pi * frac))
        return self.lr * self.gamma ** sum(1 for s in self.decay_steps if s <= step)

    def overridden(
        self,
        *,
        lr: float | None = None,
        max_steps: int | None = None,
        optimizer: str | None = None,
        weight_decay: float | None = None,
    ) -> Schedule:
        """``--lr`` scales the warm-up start with it; ``--max-steps`` scales the decay steps;
        ``--optimizer`` and ``--weight-decay`` replace the schedule's."""
        s = self
        if optimizer is not None:
            s = replace(s, optimizer=optimizer)
        if weight_decay is not None:
            s = replace(s, weight_decay=weight_decay)
        if lr is not None:
            ratio = self.warmup_init_lr / self.lr if self.lr else 0.0
            s = replace(s, lr=lr, warmup_init_lr=lr * ratio)
        if max_steps is not None and max_steps != s.max_steps:
            f = max_steps / s.max_steps if s.max_steps else 1.0
            s = replace(
                s,
                max_steps=max_steps,
                decay_steps=tuple(round(d * f) for d in s.decay_steps),
                warmup_steps=min(s.warmup_steps, max_steps),
            )
        return s


class TrainDataset(Protocol):
    def __len__(self) -> int: ...

    def get(self, index: int, rng: np.random.Generator) -> Any:
        """Sample ``index`` with its augmentation drawn from ``rng``."""


class MethodTrainer(Protocol):
    """What a method provides to :func:`train`."""

    def build_model(self) -> nn.Module:
        """The network with the official pre-training initialisation (called after seeding)."""

    def init_from(self, model: nn.Module, path: Path) -> dict[str, Any]:
        """Load official initial weights (``--init``); returns a JSON-able report."""

    def set_train_mode(self, model: nn.Module, clips_per_process: int) -> None:
        """``model.train()`` plus the method's frozen parts."""

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The state dict in the variant's official checkpoint layout."""

    def dataset(self, ds: YTVISDataset) -> TrainDataset: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def losses(self, model: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        """The loss terms of a batch (summed for the gradient); ``model`` may be DDP-wrapped."""

    def default_batch_size(self) -> int: ...

    def schedule(self, num_samples: int, global_batch: int) -> Schedule: ...

    def config(self) -> dict[str, Any]: ...


def get_trainer(variant: str, options: Mapping[str, Any], trainer_ref: str | None = None) -> tuple[Any, Any]:
    """``(VariantCfg, trainer)``: ``methods.<method>.train:build_trainer`` unless ``trainer_ref``."""
    from benchmark.registry import get_variant_cfg

    cfg = get_variant_cfg(variant)
    ref = trainer_ref or f"methods.{cfg.method}.train:build_trainer"
    mod_name, _, fn = ref.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and mod_name.startswith(exc.name):
            raise InputError(f"variant {variant}: no training support ({mod_name} does not exist)") from None
        raise
    return cfg, getattr(mod, fn or "build_trainer")(cfg, **options)


class SampleStream:
    """Step -> the dataset indices of its global batch, and each sample's generator."""

    def __init__(self, n: int, global_batch: int, seed: int) -> None:
        self.n, self.gb, self.seed = n, global_batch, seed
        self._perms: dict[int, Any] = {}

    def _perm(self, epoch: int) -> Any:
        import numpy as np

        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perms[epoch]

    def positions(self, step: int) -> range:
        return range(step * self.gb, (step + 1) * self.gb)

    def index(self, position: int) -> int:
        return int(self._perm(position // self.n)[position % self.n])

    def rng(self, position: int) -> np.random.Generator:
        import numpy as np

        return np.random.default_rng([self.seed, 1 << 20, position])


# ---- checkpoints ---------------------------------------------------------------------------------
def _rng_states() -> dict[str, Any]:
    import numpy as np
    import torch

    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The entries of two trainer configurations that differ, nested dicts entry by entry
    (``loss.class_alpha``), in name order."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted({*old, *new}, key=str):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", a, b))
    return out


def _set_rng_states(st: Mapping[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_state(path: Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` through a temporary file renamed over ``path`` (never a half-written file).

    Our training state: ``{"format", "variant", "step", "model", "optimizer", "schedule", "rng",
    "config", "seed", "batch": {...}}``."""
    import torch

    from benchmark._io import atomic_open

    with atomic_open(path, "wb") as fh:
        torch.save(dict(payload), fh)


def load_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError("no training state to resume from", file=path) from None
    except Exception as exc:  # torch raises many types for broken files
        raise InputError(f"not a readable training state ({exc})", file=path) from None
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise InputError(f"not a visrepro training state (format {STATE_FORMAT!r})", file=path)
    return st


# ---- the loop ------------------------------------------------------------------------------------
@dataclass
class TrainArgs:
    variant: str
    out: Path
    ann: Path | None = None
    dataset: str | None = None
    frames_root: Path | None = None
    data_root: Path | None = None
    device: str = "cpu"
    batch_size: int | None = None
    accumulate: int = 1
    lr: float | None = None
    max_steps: int | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    stop_at: int | None = None
    seed: int = 0
    init: Path | None = None
    resume: Path | None = None
    save_every: int = 0
    log_every: int = 20
    threads: int | None = None
    progress: bool = True
    options: dict[str, Any] | None = None
    trainer: str | None = None
    prefetch: bool = False
    precision: str = "auto"


#: ``--precision`` choices (``auto``: :func:`resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and what says so (for the summary and the log).

    On x86 CPUs both must hold: the CPU has AMX or AVX-512 BF16 instructions, and oneDNN may use
    them (``ONEDNN_MAX_CPU_ISA=AVX2`` holds it to the AVX2 path, where bf16 is emulated). AVX-512
    without BF16 (Skylake) converts in software: not native. Elsewhere on a CPU, oneDNN's own bf16
    check decides; on CUDA, ``torch.cuda.is_bf16_supported()``.
    """
    import platform

    import torch

    if device.type == "cuda":
        ok = bool(torch.cuda.is_bf16_supported())
        return ok, f"CUDA bf16 {'supported' if ok else 'not supported'}"
    if device.type != "cpu":
        return False, f"device {device.type}"
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return onednn, f"oneDNN bf16 {'supported' if onednn else 'not supported'}"
    cpu = getattr(torch, "cpu", None)
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    isa = "AMX" if amx else "AVX-512 BF16" if avx512_bf16 else "no AMX / AVX-512 BF16"
    ok = onednn and (amx or avx512_bf16)
    why = isa if onednn else f"{isa}, oneDNN limited to a non-bf16 ISA (ONEDNN_MAX_CPU_ISA)"
    return ok, why


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """``(precision that runs, why)`` for ``--precision requested`` on ``device``."""
    if requested not in PRECISIONS:
        raise UsageError(f"--precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    native, why = native_bf16(device)
    if requested == "auto":
        return ("bf16" if native else "fp32"), f"auto: {'native' if native else 'no native'} bf16 ({why})"
    if requested == "bf16" and not native:
        log.warning("--precision bf16: no native bf16 here (%s); training will be 4-8x slower than fp32", why)
    return requested, f"asked for; {'native' if native else 'no native'} bf16 ({why})"


def _open_dataset(a: TrainArgs) -> YTVISDataset:
    from benchmark.data.ytvis import YTVISDataset

    if a.ann is not None:
        # default: the YouTube-VIS layout ROOT/annotations/<split>.json -> ROOT/<split>/JPEGImages
        root = a.frames_root if a.frames_root is not None else a.ann.parent.parent / a.ann.stem / "JPEGImages"
        return YTVISDataset.load(a.ann, root)
    if a.dataset is None:
        raise UsageError("give --dataset NAME (catalog) or an annotation file")
    from benchmark.data.catalog import get_dataset

    spec = get_dataset(a.dataset, a.data_root)
    ds = spec.load()
    if a.frames_root is not None:
        ds.image_root = a.frames_root
    return ds


def _bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, file=sys.stderr)


def train(a: TrainArgs) -> dict[str, Any]:
    """Run (or resume) a training; returns the summary written to ``--out/train_summary.json``."""
    import numpy as np
    import torch

    from benchmark._io import atomic_write_json
    from benchmark.distributed import init_distributed, shutdown
    from benchmark.speed import cpu_name

    if a.threads:
        torch.set_num_threads(a.threads)
    info, device_name = init_distributed(a.device)
    device = torch.device(device_name)
    try:
        cfg, trainer = get_trainer(a.variant, a.options or {}, a.trainer)
        ds = _open_dataset(a)
        data = trainer.dataset(ds)
        bs = a.batch_size or trainer.default_batch_size()
        if a.accumulate < 1 or bs % a.accumulate:
            raise UsageError(f"--batch-size {bs} is not a multiple of --accumulate {a.accumulate}")
        gb = bs * info.world_size
        sched: Schedule = trainer.schedule(len(data), gb).overridden(
            lr=a.lr, max_steps=a.max_steps, optimizer=a.optimizer, weight_decay=a.weight_decay
        )

        random.seed(a.seed)
        np.random.seed(a.seed)
        torch.manual_seed(a.seed)
        model = trainer.build_model()
        init_report = trainer.init_from(model, a.init) if a.init is not None else None
        model.to(device)
        trainer.set_train_mode(model, bs // a.accumulate)
        precision, precision_why = resolve_precision(a.precision, device)
        log.info("precision %s (%s)", precision, precision_why)
        step = 0
        st = None
        if a.resume is not None:
            path = a.resume / LAST_STATE if a.resume.is_dir() else a.resume
            st = load_state(path)
            if st["variant"] != cfg.name:
                raise InputError(f"the state is of variant {st['variant']}, not {cfg.name}", file=path)
            if st["batch"]["global"] != gb:
                raise InputError(
                    f"the state was trained with global batch {st['batch']['global']}, not {gb}", file=path
                )
            # the numerics a state was trained with go on unchanged: same precision, same trainer
            # options (network, augmentation, input size); states written before these were
            # recorded are taken as fp32 with unknown options
            was = st.get("precision", "fp32")
            if was != precision:
                raise InputError(
                    f"the state was trained with --precision {was}, not {precision}"
                    + (f" (--precision {a.precision}: {precision_why})" if a.precision != precision else ""),
                    file=path,
                )
            old_cfg, new_cfg = st.get("config"), trainer.config()
            if old_cfg is not None and old_cfg != new_cfg:
                raise InputError(
                    "the state was trained with other trainer options (--opt) or defaults: "
                    + "; ".join(f"{k}: {a!r} then, {b!r} now" for k, a, b in _config_diff(old_cfg, new_cfg))
                    + " (pass the options that give the values it was trained with, or train anew)",
                    file=path,
                )
            model.load_state_dict(st["model"])
            sched = Schedule(**{**st["schedule"], "decay_steps": tuple(st["schedule"]["decay_steps"])})
            step = int(st["step"])
            _set_rng_states(st["rng"])
            init_report = st.get("init")
            log.info("resumed %s at step %d from %s", cfg.name, step, path)
        opt = sched.build_optimizer(model)
        if st is not None:
            opt.load_state_dict(st["optimizer"])
        net: nn.Module = model
        if info.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        stream = SampleStream(len(data), gb, a.seed)
        out = a.out
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)

        def payload() -> dict[str, Any]:
            return {
                "format": STATE_FORMAT, "variant": cfg.name, "step": step, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "schedule": asdict(sched), "rng": _rng_states(),
                "config": trainer.config(), "seed": a.seed, "init": init_report, "precision": precision,
                "batch": {"per_process": bs, "world_size": info.world_size, "global": gb, "accumulate": a.accumulate},
            }  # fmt: skip

        end = sched.max_steps if a.stop_at is None else min(a.stop_at, sched.max_steps)
        bar = _bar(end, step, a.progress and info.is_main)
        logf = open(out / "train_log.jsonl", "a") if info.is_main else None  # noqa: SIM115
        t0, cpu0, first = time.perf_counter(), time.process_time(), step
        last: dict[str, float] = {}
        micro = bs // a.accumulate

        def load(at: int, k: int) -> Any:
            """Micro-batch ``k`` of this process at step ``at`` (a pure function of both)."""
            mine = list(stream.positions(at))[info.rank * bs : (info.rank + 1) * bs]
            pos = mine[k * micro : (k + 1) * micro]
            return trainer.collate([data.get(stream.index(p), stream.rng(p)) for p in pos])

        def autocast() -> contextlib.AbstractContextManager[Any]:
            # bf16: the forward pass and the losses under autocast (convolutions and matrix products
            # in bf16, the rest as autocast decides); weights, gradients and optimizer stay fp32
            if precision == "fp32":
                return contextlib.nullcontext()
            return torch.autocast(device.type, dtype=torch.bfloat16)

        keys = ((s, k) for s in range(step, end) for k in range(a.accumulate))
        batches = _ahead(load, keys) if a.prefetch else (load(*key) for key in keys)
        try:
            while step < end:
                lr = sched.lr_at(step)
                for g in opt.param_groups:
                    g["lr"] = lr
                sums: dict[str, float] = {}
                # the buffers (BatchNorm statistics) as they were, for a step that fails below
                buffers = [b.detach().clone() for b in model.buffers()]
                for k in range(a.accumulate):
                    batch = next(batches)
                    sync = k == a.accumulate - 1 or not info.active
                    ctx = contextlib.nullcontext() if sync else net.no_sync()  # type: ignore[operator]
                    with ctx:
                        with autocast():
                            losses = trainer.losses(net, batch, device)
                        losses = {name: v.float() for name, v in losses.items()}
                        total = sum(losses.values()) / a.accumulate
                        total.backward()
                    for name, v in losses.items():
                        sums[name] = sums.get(name, 0.0) + float(v.detach()) / a.accumulate
                if sched.grad_clip:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), sched.grad_clip)
                else:
                    norm = _grad_norm(model)
                if not (np.isfinite(sum(sums.values())) and bool(torch.isfinite(norm))):
                    # before the update: weights and buffers stay those of the last good step (under
                    # DDP the gradients are all-reduced, so every rank stops here together)
                    with torch.no_grad():
                        for b, saved in zip(model.buffers(), buffers, strict=True):
                            b.copy_(saved)
                    if info.is_main:
                        save_state(out / LAST_STATE, payload())
                    terms = ", ".join(f"{k} {v:.4g}" for k, v in sums.items())
                    raise TrainingError(
                        f"{cfg.name}: non-finite loss or gradient at step {step + 1} (losses: {terms}; "
                        f"gradient norm {float(norm):.4g}); nothing was updated, the state after step {step} "
                        f"is in {out / LAST_STATE}. Try a lower --lr, gradient clipping or fp32 "
                        "(--precision fp32)"
                    )
                opt.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                last = _reduce_logs(sums, info)
                last["total"] = sum(last.values())
                if logf is not None:
                    logf.write(
                        json.dumps({"step": step, "lr": lr, **{k: round(v, 6) for k, v in last.items()}})
                        + "\n"
                    )
                if info.is_main and (step % max(a.log_every, 1) == 0 or step == end):
                    terms = " ".join(f"{k} {v:.3f}" for k, v in last.items())
                    log.info("step %d/%d lr %.2e | %s", step, sched.max_steps, lr, terms)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last['total']:.3f}")
                if info.is_main and a.save_every and step % a.save_every == 0 and step < end:
                    save_state(out / LAST_STATE, payload())
        finally:
            batches.close()  # waits for a batch still being loaded
            if bar is not None:
                bar.close()
            if logf is not None:
                logf.close()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        summary = {
            "variant": cfg.name, "step": step, "max_steps": sched.max_steps, "finished": step >= sched.max_steps,
            "steps_this_run": step - first, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "last_losses": last, "schedule": asdict(sched), "world_size": info.world_size,
            "batch_per_process": bs, "seed": a.seed, "init": init_report, "samples": len(data),
            "precision": precision, "precision_requested": a.precision, "precision_reason": precision_why,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_name(),
        }  # fmt: skip
        if info.is_main:
            save_state(out / LAST_STATE, payload())
            if step >= sched.max_steps:
                save_state(out / FINAL_MODEL, trainer.export_state_dict(model))
            atomic_write_json(out / "train_summary.json", summary, indent=2)
        return summary
    finally:
        shutdown(info)


def _grad_norm(model: nn.Module) -> torch.Tensor:
    """The 2-norm of all gradients (what ``clip_grad_norm_`` computes), for the finite check
    (``torch.nn.utils.get_total_norm`` does this from torch 2.6; the project supports 2.4)."""
    import torch

    norms = [torch.linalg.vector_norm(p.grad.detach()) for p in model.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def _ahead(load: Any, keys: Iterator[tuple[int, int]]) -> Generator[Any, None, None]:
    """``load(*key)`` for each key, one key ahead in a background thread: the next batch is read,
    augmented and collated while the model trains on this one (``--prefetch``; the data loading is
    6-12% of a small model's step on 2 CPU cores, but there the extra thread competes with torch's
    and 100 steps of the small CiCo took 55 s instead of 45). Same batches in the same order as
    loading in the loop (each is a pure function of its key; the dataset's frame cache is only ever
    added to); an error while loading is raised at the step that needs the batch."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="visrepro-data") as pool:
        key = next(keys, None)
        pending = pool.submit(load, *key) if key is not None else None
        while pending is not None:
            batch = pending.result()
            key = next(keys, None)
            pending = pool.submit(load, *key) if key is not None else None
            yield batch


def _reduce_logs(sums: dict[str, float], info: Any) -> dict[str, float]:
    """Mean of the logged loss terms over ranks (for the log only)."""
    if not info.active:
        return sums
    import torch
    import torch.distributed as dist

    names = sorted(sums)
    dev = torch.device("cuda", torch.cuda.current_device()) if info.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([sums[n] for n in names], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return {n: float(v) / info.world_size for n, v in zip(names, t.tolist(), strict=True)}


# ---- CLI -----------------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="variant to train (visrepro list)")
    parser.add_argument(
        "--dataset", help="catalog name (toyvis_train, ytvis2019_train, ...) or an annotation JSON"
    )
    parser.add_argument("--frames-root", type=Path, help="image root of the dataset's frames")
    parser.add_argument("--data-root", type=Path, help="data root of the catalog (default: ./datasets)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (checkpoints, logs)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch-size", type=int, help="clips per process per step (default: the method's)")
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step (default 1)")
    parser.add_argument("--lr", type=float, help="base learning rate (default: the official one)")
    parser.add_argument("--max-steps", type=int, help="schedule length in steps (decay steps scale with it)")
    parser.add_argument(
        "--optimizer", choices=("sgd", "adamw"), help="optimizer (default: the schedule's; official: sgd)"
    )
    parser.add_argument("--weight-decay", type=float, help="weight decay (default: the schedule's)")
    parser.add_argument("--stop-at", type=int, help="stop at this step (state saved; continue with --resume)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, help="official initial weights (e.g. COCO 2-D, inflated)")
    parser.add_argument(
        "--resume", type=Path, nargs="?", const=Path("."), help="continue from --out/last.pth (or this file)"
    )
    parser.add_argument(
        "--save-every", type=int, default=500, help="save last.pth every N steps (0: end only)"
    )
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="trainer option")
    parser.add_argument("--trainer", help="module:function building the trainer (default: the method's)")
    parser.add_argument("--adapter-module", action="append", default=[], help="module registering variants")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="bf16: forward and losses under bf16 autocast (fp32 weights and optimizer); auto (default): "
        "bf16 where the device has native bf16 (AMX / AVX-512 BF16, CUDA), else fp32",
    )
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="load the next batch in a background thread during the step (the same batches); helps "
        "where cores are spare (a GPU run), not on 2 CPU cores, where it slowed a step by 15-20%%",
    )


def _parse_opts(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise UsageError(f"--opt expects KEY=VALUE, got {it!r}")
        out[k.replace("-", "_")] = v
    return out


def run(args: argparse.Namespace) -> int:
    from benchmark.registry import load_adapter_module

    for spec in args.adapter_module:
        load_adapter_module(spec)
    ann = None
    ds_name = args.dataset
    if ds_name is not None and (ds_name.endswith(".json") or os.sep in ds_name):
        ann, ds_name = Path(ds_name), None
    resume = args.resume
    if resume is not None and resume == Path("."):
        resume = args.out / LAST_STATE
    summary = train(
        TrainArgs(
            variant=args.variant, out=args.out, ann=ann, dataset=ds_name, frames_root=args.frames_root,
            data_root=args.data_root, device=args.device, batch_size=args.batch_size,
            accumulate=args.accumulate, lr=args.lr, max_steps=args.max_steps, stop_at=args.stop_at,
            optimizer=args.optimizer, weight_decay=args.weight_decay,
            seed=args.seed, init=args.init, resume=resume, save_every=args.save_every,
            log_every=args.log_every, threads=args.threads, progress=not args.no_progress,
            options=_parse_opts(args.opt), trainer=args.trainer, prefetch=args.prefetch,
            precision=args.precision,
        )
    )  # fmt: skip
    print(
        f"{summary['variant']}: step {summary['step']}/{summary['max_steps']} in {summary['wall_s']} s wall "
        f"({summary['cpu_s']} s CPU) -> {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmark.train ...`` (also ``torchrun -m benchmark.train``): ``visrepro train``
    with the same options, logging and exit statuses, whether or not the CLI lists it yet."""
    from benchmark.cli import COMMANDS
    from benchmark.cli import main as cli_main

    COMMANDS.setdefault("train", (__name__ if __name__ != "__main__" else "benchmark.train", HELP))
    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
