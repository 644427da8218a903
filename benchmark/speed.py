"""``visrepro speed``: frames per second of a variant, under a named protocol, with its environment.

Usage::

    visrepro speed --variant V [--checkpoint CK] --dataset NAME|ANN.json | --video PATH
                   --protocol model|model+track|e2e [--warmup N] [--frames N] [--device cpu|cuda]
                   [--precision fp32|fp16|bf16] [--channels-last] [--compile] --out fps.json

Protocols (what the timed time covers, per frame; the stages are :data:`benchmark.adapter.STAGES`):

* ``model``: the network forward only (``forward``), as CrossVIS's paper counts: no data loading,
  no tracking (hustvl/CrossVIS#6).
* ``model+track``: everything but frame decoding and mask decoding/RLE encoding
  (``preprocess + forward + track``).
* ``e2e``: read, decode, preprocess, model, tracking, masks and RLE (all five stages).

The adapter's real loop runs (batch 1: one frame, or one clip for clip methods); every stage is
timed with ``time.perf_counter`` and, on CUDA, ``torch.cuda.synchronize()`` before each clock
read, so the per-stage means of all protocols are in every ``fps.json`` whatever the protocol
chosen. A clip's time is divided among the frames it emits (each video frame counted once: a
3-frame clip with overlap 1 emits 2 new frames). The first ``--warmup`` frames are excluded.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward (one clip);
published FPS figures of the variant are copied into the result with their (often unknown) GPU,
since an FPS is only comparable on the same class of device.

A calibration workload (:class:`Calibration`: a fixed small CNN on the same thread setting) is
timed interleaved with the measurement: one forward of it after every measured clip, outside the
clip's timed span, so that both see the same machine at the same moments and a drift of the shared
machine's speed cancels in ``latency_ms_median / calibration_ms``, the ratio ``visrepro regress``
compares with its baseline (``benchmarks/bench_speed_gate.py`` measures its spread).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import logging
import platform
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from benchmark._io import atomic_write_json
from benchmark.adapter import STAGES, MethodAdapter
from benchmark.errors import UsageError
from benchmark.predict import VideoJob

__all__ = [
    "PROTOCOL_STAGES",
    "Calibration",
    "FpsResult",
    "configure",
    "cpu_name",
    "measure_fps",
    "run",
]

log = logging.getLogger(__name__)

Protocol = Literal["model", "model+track", "e2e"]
#: The stages each protocol's time covers.
PROTOCOL_STAGES: dict[str, tuple[str, ...]] = {
    "model": ("forward",),
    "model+track": ("preprocess", "forward", "track"),
    "e2e": STAGES,
}


@dataclass(frozen=True)
class FpsResult:
    """One speed measurement (``fps.json``). Times are per frame; sizes in MiB.

    Attributes:
        variant / checkpoint_sha256 / dataset: What ran on what.
        protocol: ``model``, ``model+track`` or ``e2e`` (see the module docstring).
        fps: Measured frames / summed protocol time.
        latency_ms_mean / _median / _p90 / _p99: Per-frame protocol time (clip time / frames it emits).
        stage_ms: Mean per-frame time of every stage (``read`` ... ``postprocess``), all protocols.
        frames / clips / videos / warmup_frames: Counts (warm-up excluded from the statistics).
        batch: Frames per forward (1, or the clip length).
        input_shape: Shape of one preprocessed input tensor (``None`` if not a tensor).
        flops_per_forward / flops_per_frame: FLOPs of one forward (FlopCounterMode), per emitted frame.
        params: Parameters of the network.
        peak_gpu_mem_mib: ``torch.cuda.max_memory_allocated`` after warm-up (``None`` on CPU).
        peak_rss_mib: The process's peak resident set size (whole process lifetime).
        device / device_name / precision / channels_last / compiled / threads: How it ran.
        torch_version / cuda_version / cudnn_version / python_version / platform: Environment
            (``cuda_version`` is torch's build CUDA, also reported on CPU runs).
        published_fps: The variant's published figures (protocol, device, source) for comparison.
        timestamp: UTC time of the measurement.
        checkpoint: The weights file as given (``None``: built-in or random weights).
        adapter_args: The builder options (``--adapter-arg``), as ``KEY=VALUE`` strings.
        calibration_ms: Median ms of the :class:`Calibration` forwards interleaved with the
            measured clips (``None`` when not measured); the speed gate's denominator.
    """

    variant: str
    protocol: Protocol
    fps: float
    latency_ms_mean: float
    latency_ms_median: float
    latency_ms_p90: float
    latency_ms_p99: float
    stage_ms: dict[str, float]
    frames: int
    clips: int
    videos: int
    warmup_frames: int
    batch: int
    input_shape: list[int] | None
    flops_per_forward: float | None
    flops_per_frame: float | None
    params: int
    peak_gpu_mem_mib: float | None
    peak_rss_mib: float
    device: str
    device_name: str
    precision: str
    channels_last: bool
    compiled: bool
    threads: int
    torch_version: str
    cuda_version: str | None
    cudnn_version: int | None
    python_version: str
    platform: str
    dataset: str
    checkpoint_sha256: str | None
    published_fps: list[dict[str, Any]] = field(default_factory=list)
    timestamp: str = ""
    checkpoint: str | None = None
    adapter_args: list[str] = field(default_factory=list)
    calibration_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Clock:
    """Stage timer: synchronises CUDA around each section; records the current clip's stages."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.current: dict[str, float] = {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def _section(self, name: str) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - t0

    def section(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self._section(name)


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class Calibration:
    """A fixed convolutional workload on the current torch thread setting (3 warm-up forwards)."""

    def __init__(self) -> None:
        from torch import nn

        gen = torch.Generator().manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 16, 1),
        )  # fmt: skip
        for p in self.net.parameters():
            p.data = torch.randn(p.shape, generator=gen) * 0.05
        self.x = torch.randn(1, 3, 96, 160, generator=gen)
        self.samples: list[float] = []
        for _ in range(3):
            self.once(keep=False)

    def once(self, keep: bool = True) -> float:
        """Time one forward (seconds); kept for :meth:`median_ms` unless ``keep`` is false."""
        with torch.inference_mode():
            t0 = time.perf_counter()
            self.net(self.x)
            dt = time.perf_counter() - t0
        if keep:
            self.samples.append(dt)
        return dt

    def median_ms(self) -> float:
        return 1e3 * float(np.median(self.samples))


#: Calibration forwards at the least in a measurement (a short one has few clips).
MIN_CALIBRATION = 15


def _input_shape(inputs: Any) -> list[int] | None:
    """Shape of the first tensor of an adapter's input (a tensor, a tuple/list or a dataclass of them)."""
    if isinstance(inputs, torch.Tensor):
        return list(inputs.shape)
    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):
        inputs = [getattr(inputs, f.name) for f in dataclasses.fields(inputs)]
    if isinstance(inputs, (tuple, list)):
        for item in inputs:
            if isinstance(item, torch.Tensor):
                return list(item.shape)
    return None


def _count_flops(adapter: MethodAdapter, job: VideoJob) -> tuple[float | None, list[int] | None, int]:
    """FLOPs of one forward on the first clip of ``job``, the input's shape, and the clip's emitted frames."""
    from torch.utils.flop_counter import FlopCounterMode

    video = job.open()
    clip = adapter.iter_clips(video)[0]
    frames = [video.frames[i] for i in clip.padded_ids] if adapter.needs_frames else []
    adapter.reset(video)
    with torch.inference_mode():
        inputs = adapter.preprocess(frames, clip, video)
        shape = _input_shape(inputs)
        if adapter.model is None:
            return None, shape, len(clip.emit)
        counter = FlopCounterMode(display=False)
        with counter, adapter._autocast():
            adapter.forward(inputs)
    return float(counter.get_total_flops()), shape, len(clip.emit)


def measure_fps(
    adapter: MethodAdapter,
    jobs: Sequence[VideoJob],
    *,
    protocol: Protocol = "model",
    warmup: int = 10,
    frames: int = 100,
    dataset: str = "",
    calibrate: bool = False,
    checkpoint: str | None = None,
    adapter_args: Sequence[str] = (),
) -> FpsResult:
    """Run ``adapter`` over ``jobs`` (in order, stopping after ``warmup + frames`` frames) and time it.

    With ``calibrate``, one :class:`Calibration` forward is timed after every measured clip (and
    ``MIN_CALIBRATION`` at least in all); their median is recorded.
    ``checkpoint`` and ``adapter_args`` are recorded as given (so the measurement can be repeated).

    Raises:
        UsageError: Unknown protocol, or no frames left to measure after the warm-up.
    """
    if protocol not in PROTOCOL_STAGES:
        raise UsageError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOL_STAGES)}")
    clock = _Clock(adapter.device)
    cuda = adapter.device.type == "cuda"
    cal = Calibration() if calibrate else None
    records: list[tuple[int, dict[str, float]]] = []
    seen, videos = 0, 0
    for job in jobs:
        if seen >= warmup + frames:
            break
        videos += 1
        for clip, _ in adapter.iter_outputs(job.open(), clock):
            n = len(clip.emit)
            if seen >= warmup:
                records.append((n, dict(clock.current)))
                if cal is not None:
                    cal.once()
            seen += n
            clock.current = {}
            if seen == warmup and cuda:
                torch.cuda.reset_peak_memory_stats(adapter.device)
            if seen >= warmup + frames:
                break
    if not records:
        raise UsageError(f"no frames measured: the input has {seen} frame(s), --warmup is {warmup}")
    calib = None
    if cal is not None:
        while len(cal.samples) < MIN_CALIBRATION:
            cal.once()
        calib = cal.median_ms()
    stages = PROTOCOL_STAGES[protocol]
    n_frames = sum(n for n, _ in records)
    per_frame = np.array([sum(r.get(s, 0.0) for s in stages) / n for n, r in records for _ in range(n)]) * 1e3
    total = sum(sum(r.get(s, 0.0) for s in stages) for _, r in records)
    stage_ms = {s: 1e3 * sum(r.get(s, 0.0) for _, r in records) / n_frames for s in STAGES}
    flops, shape, emitted = _count_flops(adapter, jobs[0])
    cfg = adapter.cfg
    return FpsResult(
        variant=cfg.name,
        protocol=protocol,
        fps=n_frames / total if total > 0 else float("inf"),
        latency_ms_mean=float(per_frame.mean()),
        latency_ms_median=float(np.median(per_frame)),
        latency_ms_p90=float(np.percentile(per_frame, 90)),
        latency_ms_p99=float(np.percentile(per_frame, 99)),
        stage_ms=stage_ms,
        frames=n_frames,
        clips=len(records),
        videos=videos,
        warmup_frames=warmup,
        batch=adapter.clip_length,
        input_shape=shape,
        flops_per_forward=flops,
        flops_per_frame=flops / emitted if flops is not None else None,
        params=adapter.num_parameters(),
        peak_gpu_mem_mib=torch.cuda.max_memory_allocated(adapter.device) / 2**20 if cuda else None,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        device=str(adapter.device),
        device_name=torch.cuda.get_device_name(adapter.device) if cuda else cpu_name(),
        precision=adapter.precision,
        channels_last=adapter.channels_last,
        compiled=hasattr(adapter.model, "_orig_mod"),
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        cudnn_version=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        python_version=platform.python_version(),
        platform=platform.platform(),
        dataset=dataset,
        checkpoint_sha256=adapter.checkpoint_sha256,
        published_fps=[f.to_dict() for f in cfg.fps],
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        checkpoint=checkpoint,
        adapter_args=list(adapter_args),
        calibration_ms=calib,
    )


# ---- visrepro speed -----------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    from benchmark.predict import add_input_options

    add_input_options(parser)
    parser.add_argument("--protocol", choices=list(PROTOCOL_STAGES), default="model", help="what is timed")
    parser.add_argument("--warmup", type=int, default=10, help="frames excluded first (default 10)")
    parser.add_argument("--frames", type=int, default=100, help="frames measured (default 100)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32", help="autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels-last model and inputs")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, required=True, help="fps.json to write")


def run(args: argparse.Namespace) -> int:
    from benchmark.predict import open_input, parse_adapter_args
    from benchmark.registry import create_adapter, load_adapter_module

    if args.warmup < 0 or args.frames < 1:
        raise UsageError("--warmup must be >= 0 and --frames >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.adapter_module:
        load_adapter_module(spec)
    adapter = create_adapter(args.variant, device=args.device, **parse_adapter_args(args.adapter_arg))
    if args.checkpoint is not None:
        adapter.load_official_checkpoint(args.checkpoint)
    ds, jobs, _ = open_input(
        dataset=args.dataset, video=args.video, video_id=args.video_id, frames_root=args.frames_root,
        data_root=args.data_root, needs_frames=adapter.needs_frames,
    )  # fmt: skip
    adapter.set_dataset(ds)
    adapter.set_runtime(precision=args.precision, channels_last=args.channels_last, compile=args.compile)
    label = str(args.dataset if args.dataset is not None else args.video)
    res = measure_fps(
        adapter, jobs, protocol=args.protocol, warmup=args.warmup, frames=args.frames, dataset=label,
        calibrate=True, checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        adapter_args=args.adapter_arg,
    )  # fmt: skip
    atomic_write_json(args.out, res.to_dict(), indent=2)
    log.info(
        "%s %s on %s (%s): %.1f FPS, median %.2f ms/frame, p90 %.2f, p99 %.2f (%d frames) -> %s",
        res.variant, res.protocol, res.device_name, res.precision, res.fps, res.latency_ms_median,
        res.latency_ms_p90, res.latency_ms_p99, res.frames, args.out,
    )  # fmt: skip
    return 0
