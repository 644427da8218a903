"""``visrepro predict``: run a variant over a dataset (or one video) and write ``results.json``.

Usage::

    visrepro predict --variant V [--checkpoint CK] --dataset NAME|ANN.json [--frames-root DIR]
                     --out results.json [--resume] [--device cpu|cuda] [--max-videos N]
    visrepro predict --variant V --video FRAMES_DIR|file.mp4 [--video-id N] --out results.json
    torchrun --nproc-per-node 4 -m benchmark.predict --variant V --dataset NAME --out results.json

Frames are streamed (see :mod:`benchmark.adapter`). Each finished video is written atomically to
``<out>.shards/<video_id>.json``, holding its result entries and the run's identity (variant,
adapter options, checkpoint sha256, dataset sha256), so an interrupted run continues with
``--resume`` without losing or redoing finished videos; resuming with a different identity is an
error. At the end the shards are merged in dataset order (then the adapter's track order) into
``results.json`` and ``results.zip`` (``results.json`` at its root; fixed timestamps, so the zip is
reproducible too), both written atomically. The log goes to ``<out>.log`` as well.

Under ``torchrun`` videos are dealt round-robin in dataset order, each rank writes its shards and
rank 0 merges after all ranks finished: the output is byte-identical to a single process's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark._io import atomic_write_bytes, atomic_write_json, read_json
from benchmark.adapter import MethodAdapter
from benchmark.data.frames import FrameSource, VideoSample
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError, UsageError

__all__ = ["VideoJob", "configure", "open_input", "parse_adapter_args", "predict", "run", "shard_dir_of"]

log = logging.getLogger(__name__)

SHARD_FORMAT = 1


@dataclass(frozen=True)
class VideoJob:
    """One video to predict: its identity and how to open it (frames stay on disk until then)."""

    video_id: int
    length: int
    height: int
    width: int
    open: Callable[[], VideoSample]


class _NoFrames(FrameSource):
    """Stands for frames an adapter never reads (the oracle on a GT file without images)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def read(self, index: int) -> np.ndarray:
        raise InputError("this run has no frames (no image root)", entry=f"frame {index}")


def shard_dir_of(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def parse_adapter_args(items: Sequence[str]) -> dict[str, Any]:
    """``["drop=0.3", "jitter_mode=shift"]`` -> ``{"drop": 0.3, "jitter_mode": "shift"}`` (JSON values
    where they parse, else strings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(f"--adapter-arg expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def open_input(
    *,
    dataset: str | None,
    video: str | Path | None,
    video_id: int = 1,
    frames_root: str | Path | None = None,
    data_root: str | Path | None = None,
    needs_frames: bool = True,
) -> tuple[YTVISDataset | None, list[VideoJob], str]:
    """The dataset (``None`` for a single plain video), its videos in order, and its sha256.

    Raises:
        InputError: unknown dataset, unreadable annotation file, no frames for an adapter that
            needs them, or an unreadable video.
    """
    if (dataset is None) == (video is None):
        raise UsageError("give exactly one of --dataset and --video")
    if video is not None:
        sample = VideoSample.from_path(video, video_id)
        key = f"video:{Path(video).resolve()}:{sample.length}:{sample.height}x{sample.width}"
        job = VideoJob(video_id, sample.length, sample.height, sample.width, lambda: sample)
        return None, [job], hashlib.sha256(key.encode()).hexdigest()
    assert dataset is not None
    if dataset.endswith(".json") or Path(dataset).is_file():
        ds = YTVISDataset.load(dataset, frames_root)
    else:
        from benchmark.data.catalog import get_dataset

        ds = get_dataset(dataset, data_root).load()
        if frames_root is not None:
            ds.image_root = Path(frames_root)
    if needs_frames and (ds.image_root is None or not ds.image_root.is_dir()):
        raise InputError(
            f"frames not found (image root {ds.image_root}); pass --frames-root", file=ds.ann_file
        )
    with_frames = needs_frames or ds.image_root is not None
    jobs = [
        VideoJob(v.id, v.length, v.height, v.width, _opener(ds, v.id, with_frames))
        for v in ds.videos.values()
    ]
    return ds, jobs, ds.sha256 or ""


def _opener(ds: YTVISDataset, video_id: int, with_frames: bool) -> Callable[[], VideoSample]:
    def open_video() -> VideoSample:
        if with_frames:
            return ds.video_sample(video_id)
        v = ds.videos[video_id]
        return VideoSample(v.id, v.height, v.width, _NoFrames(v.length), v.file_names, v.name)

    return open_video


def _identity(adapter: MethodAdapter, options: dict[str, Any], dataset_sha: str) -> dict[str, Any]:
    out = {
        "variant": adapter.cfg.name,
        "options": options,
        "checkpoint_sha256": adapter.checkpoint_sha256,
        "dataset_sha256": dataset_sha,
    }
    settings = adapter.settings()
    if settings:  # the effective test-time settings (a default may change between versions)
        out["settings"] = settings
    return out


def _check_identity(found: Any, identity: dict[str, Any], file: Path) -> None:
    if not isinstance(found, dict):
        raise InputError("not a shard of this suite", file=file)
    diff = [k for k in identity if found.get(k) != identity[k]]
    if diff:
        what = "; ".join(f"{k}: {found.get(k)!r} there, {identity[k]!r} now" for k in diff)
        raise InputError(f"belongs to a different run ({what}); use another --out or --overwrite", file=file)


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(n) for n in ("benchmark", "methods")]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()


def _write_zip(path: Path, json_bytes: bytes) -> None:
    info = zipfile.ZipInfo("results.json", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, json_bytes)
    atomic_write_bytes(path, buf.getvalue())


def predict(
    adapter: MethodAdapter,
    jobs: Sequence[VideoJob],
    out: str | Path,
    *,
    dataset: YTVISDataset | None,
    dataset_sha256: str,
    options: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path | None:
    """Predict ``jobs`` with ``adapter``, shard by shard; merge into ``out`` (on rank 0).

    Returns:
        ``out`` on the merging process, ``None`` on the other ranks.

    Raises:
        InputError: existing shards of another run (or any shards without ``resume``/``overwrite``),
            or bad input met while predicting (on any rank: every rank then raises).
    """
    from tqdm import tqdm

    from benchmark.distributed import agree, init_distributed, shard

    out = Path(out)
    info, _ = init_distributed(str(adapter.device))
    shards = shard_dir_of(out)
    identity = _identity(adapter, options or {}, dataset_sha256)
    existing = sorted(shards.glob("*.json")) if shards.is_dir() else []
    if existing and not (resume or overwrite):
        raise InputError(
            f"{len(existing)} finished video(s) of an earlier run are there: pass --resume to continue "
            "it or --overwrite to start again",
            file=shards,
        )
    if resume and (shards / "run.json").is_file():
        _check_identity(read_json(shards / "run.json", what="run file"), identity, shards / "run.json")
    if not agree(True, info):
        raise InputError("another rank failed before predicting")
    if info.is_main:
        if overwrite and shards.exists():
            shutil.rmtree(shards)
        atomic_write_json(shards / "run.json", identity, indent=2)
    agree(True, info)
    mine = shard(list(jobs), info)
    done = {j.video_id for j in mine if (shards / f"{j.video_id}.json").is_file()} if resume else set()
    todo = [j for j in mine if j.video_id not in done]
    log.info(
        "%s: %d video(s) for this rank, %d already done, %d to predict",
        adapter.cfg.name, len(mine), len(done), len(todo),
    )  # fmt: skip
    ok = False
    try:
        bar = tqdm(
            total=sum(j.length for j in todo),
            unit="frame",
            disable=None if progress and info.is_main else True,
        )
        with bar:
            for j in todo:
                video = j.open()
                preds = adapter.predict_video(video, on_clip=lambda clip: bar.update(len(clip.emit)))
                shard_data = dict(identity, format=SHARD_FORMAT, video_id=j.video_id, num_frames=j.length)
                shard_data["results"] = [p.to_json() for p in preds]
                atomic_write_json(shards / f"{j.video_id}.json", shard_data)
                log.info("video %d: %d frames, %d track(s)", j.video_id, j.length, len(preds))
        ok = True
    finally:
        all_ok = agree(ok, info)
    if not all_ok:
        raise InputError("another rank failed while predicting (see its log)", file=out)
    if not info.is_main:
        return None
    return _merge(jobs, shards, identity, out, dataset)


def _merge(
    jobs: Sequence[VideoJob], shards: Path, identity: dict[str, Any], out: Path, dataset: YTVISDataset | None
) -> Path:
    from benchmark.data.results import validate_results

    entries: list[dict[str, Any]] = []
    for j in jobs:
        path = shards / f"{j.video_id}.json"
        data = read_json(path, what="video shard")
        _check_identity(data, identity, path)
        entries.extend(data["results"])
    videos = {j.video_id: (j.length, j.height, j.width) for j in jobs}
    cats = set(dataset.categories) if dataset is not None else None
    validate_results(entries, videos, cats, file=out)
    payload = json.dumps(entries, separators=(",", ":"), allow_nan=False).encode()
    atomic_write_bytes(out, payload)
    _write_zip(out.with_suffix(".zip"), payload)
    log.info("wrote %s (%d tracks, %d videos) and %s", out, len(entries), len(jobs), out.with_suffix(".zip"))
    return out


# ---- visrepro predict ---------------------------------------------------------------------------
def add_input_options(parser: argparse.ArgumentParser) -> None:
    """The options ``predict`` and ``speed`` share: the variant, its weights, and the input videos."""
    parser.add_argument("--variant", required=True, help="variant name (see 'visrepro list')")
    parser.add_argument("--checkpoint", type=Path, help="official checkpoint of the variant")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="catalog name (ytvis2019_valid_sub) or an annotation JSON file")
    src.add_argument("--video", type=Path, help="one plain video: a frames directory or a video file")
    parser.add_argument("--video-id", type=int, default=1, help="video id of --video (default 1)")
    parser.add_argument("--frames-root", type=Path, help="image root of the dataset's frames")
    parser.add_argument("--data-root", type=Path, help="data root of the catalog (default: ./datasets)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--adapter-module", action="append", default=[], help="module registering variants")
    parser.add_argument(
        "--adapter-arg", action="append", default=[], metavar="KEY=VALUE", help="builder option (repeatable)"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_input_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="results.json to write")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run (same --out)")
    mode.add_argument("--overwrite", action="store_true", help="discard an earlier run's shards")
    parser.add_argument("--max-videos", type=int, help="only the first N videos (dataset order)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the random weights of a run without --checkpoint (default: unseeded)",
    )


def run(args: argparse.Namespace) -> int:
    from benchmark.distributed import init_distributed, shutdown
    from benchmark.registry import create_adapter, load_adapter_module

    for spec in args.adapter_module:
        load_adapter_module(spec)
    options = parse_adapter_args(args.adapter_arg)
    seed = args.seed
    if seed is not None:
        if args.checkpoint is not None:
            raise UsageError("--seed seeds random weights: it does not apply with --checkpoint")
        import torch

        torch.manual_seed(seed)
    info, device = init_distributed(args.device)
    try:
        adapter = create_adapter(args.variant, device=device, **options)
        if args.checkpoint is not None:
            adapter.load_official_checkpoint(args.checkpoint)
        elif adapter.model is not None and adapter.cfg.kind == "method":
            log.warning(
                "no --checkpoint: %s runs with random weights (%s)", args.variant,
                "unseeded" if seed is None else f"seed {seed}",
            )  # fmt: skip
        ds, jobs, sha = open_input(
            dataset=args.dataset, video=args.video, video_id=args.video_id, frames_root=args.frames_root,
            data_root=args.data_root, needs_frames=adapter.needs_frames,
        )  # fmt: skip
        adapter.set_dataset(ds)
        if args.max_videos is not None:
            jobs = jobs[: max(args.max_videos, 0)]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".log" if info.is_main else f".log.rank{info.rank}"
        with _log_to(args.out.with_name(args.out.name + suffix)):
            predict(
                adapter, jobs, args.out, dataset=ds, dataset_sha256=sha, options=options,
                resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
            )  # fmt: skip
    finally:
        shutdown(info)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmark.predict`` (what ``torchrun -m`` runs)."""
    import sys

    import benchmark.cli

    # until the lead registers the subcommand in benchmark/cli.py
    benchmark.cli.COMMANDS.setdefault("predict", ("benchmark.predict", "predict"))
    return benchmark.cli.main(["predict", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
