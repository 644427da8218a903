"""The FPS harness: protocol arithmetic on a fake clock, fps.json schema, CLI, CUDA path (GPU only)."""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import benchmark.speed as speed
from benchmark.adapter import Clip, InstanceOutput, MethodAdapter
from benchmark.data.frames import FrameSource, VideoSample
from benchmark.predict import VideoJob
from benchmark.variant_cfg import VariantCfg

Cli = Callable[..., tuple[int, str, str]]
# seconds each stage takes on the fake clock, per clip
COST = {"read": 0.004, "preprocess": 0.003, "forward": 0.010, "track": 0.002, "postprocess": 0.005}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


class FakeFrames(FrameSource):
    def __init__(self, n: int, clock: FakeClock) -> None:
        self.n, self.clock = n, clock

    def __len__(self) -> int:
        return self.n

    def read(self, index: int) -> np.ndarray:
        self.clock.t += COST["read"]
        return np.zeros((4, 4, 3), np.uint8)


class Timed(MethodAdapter):
    def __init__(self, clock: FakeClock, clip_length: int = 1, overlap: int = 0) -> None:
        cfg = VariantCfg(name="timed.t", method="timed", clip_length=clip_length, clip_overlap=overlap)
        super().__init__(cfg, torch.nn.Conv2d(3, 1, 1))
        self.clock = clock

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> Any:
        self.clock.t += COST["preprocess"]
        return torch.zeros(len(frames), 3, 4, 4)

    def forward(self, inputs: Any) -> Any:
        self.clock.t += COST["forward"]
        assert self.model is not None
        return self.model(inputs)

    def track(self, raw: Any, clip: Clip, video: VideoSample) -> Any:
        self.clock.t += COST["track"]
        return raw

    def postprocess(self, tracked: Any, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        self.clock.t += COST["postprocess"]
        return []


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(speed, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    return clock


def _jobs(clock: FakeClock, lengths: Sequence[int]) -> list[VideoJob]:
    return [
        VideoJob(i + 1, n, 4, 4, lambda n=n: VideoSample(1, 4, 4, FakeFrames(n, clock)))
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("protocol", ["model", "model+track", "e2e"])
def test_protocol_arithmetic_online(fake_clock: FakeClock, protocol: str) -> None:
    res = speed.measure_fps(
        Timed(fake_clock), _jobs(fake_clock, [5, 5]), protocol=protocol, warmup=3, frames=6
    )  # type: ignore[arg-type]
    per_frame = sum(COST[s] for s in speed.PROTOCOL_STAGES[protocol])
    assert res.frames == 6 and res.clips == 6 and res.videos == 2 and res.warmup_frames == 3
    assert res.fps == pytest.approx(1 / per_frame)
    assert res.latency_ms_median == pytest.approx(per_frame * 1e3)
    assert res.latency_ms_p99 == pytest.approx(per_frame * 1e3)
    assert res.stage_ms == pytest.approx({s: c * 1e3 for s, c in COST.items()})
    assert res.params == 4 and res.flops_per_forward == 2 * 3 * 16 and res.input_shape == [1, 3, 4, 4]


def test_clip_time_is_shared_by_emitted_frames(fake_clock: FakeClock) -> None:
    # 7 frames, clips of 3 with overlap 1: [0,1,2] [2,3,4] [4,5,6] [6,6,6] emit 2, 2, 2, 1 frames
    res = speed.measure_fps(
        Timed(fake_clock, 3, 1), _jobs(fake_clock, [7]), protocol="model", warmup=0, frames=7
    )
    assert res.frames == 7 and res.clips == 4 and res.batch == 3
    assert res.fps == pytest.approx(7 / (4 * COST["forward"]))
    assert res.latency_ms_mean == pytest.approx(4 * COST["forward"] / 7 * 1e3)
    assert 5.0 < res.latency_ms_p99 <= COST["forward"] * 1e3  # the 1-frame last clip is the slowest
    assert res.latency_ms_median == pytest.approx(COST["forward"] / 2 * 1e3)
    assert res.flops_per_frame == pytest.approx(res.flops_per_forward / 2)  # type: ignore[operator]


def test_not_enough_frames_is_a_usage_error(fake_clock: FakeClock) -> None:
    with pytest.raises(speed.UsageError, match="no frames measured"):
        speed.measure_fps(Timed(fake_clock), _jobs(fake_clock, [3]), warmup=3, frames=5)


NUM = (int, float)
OPT_NUM = (int, float, type(None))
#: The fps.json schema (frozen: changing FpsResult must change this table, deliberately).
SCHEMA: dict[str, tuple[type, ...]] = {
    "variant": (str,), "protocol": (str,), "fps": NUM, "latency_ms_mean": NUM, "latency_ms_median": NUM,
    "latency_ms_p90": NUM, "latency_ms_p99": NUM, "stage_ms": (dict,), "frames": (int,), "clips": (int,),
    "videos": (int,), "warmup_frames": (int,), "batch": (int,), "input_shape": (list, type(None)),
    "flops_per_forward": OPT_NUM, "flops_per_frame": OPT_NUM, "params": (int,), "peak_gpu_mem_mib": OPT_NUM,
    "peak_rss_mib": NUM, "device": (str,), "device_name": (str,), "precision": (str,),
    "channels_last": (bool,), "compiled": (bool,), "threads": (int,), "torch_version": (str,),
    "cuda_version": (str, type(None)), "cudnn_version": (int, type(None)), "python_version": (str,),
    "platform": (str,), "dataset": (str,), "checkpoint_sha256": (str, type(None)),
    "published_fps": (list,), "timestamp": (str,), "checkpoint": (str, type(None)), "adapter_args": (list,),
    "calibration_ms": OPT_NUM,
}  # fmt: skip


def _check_schema(data: dict[str, Any]) -> None:
    assert list(data) == [f.name for f in dataclasses.fields(speed.FpsResult)] == list(SCHEMA)
    for name, types_ in SCHEMA.items():
        assert isinstance(data[name], types_), (name, data[name])
    assert data["protocol"] in speed.PROTOCOL_STAGES and data["precision"] in ("fp32", "fp16", "bf16")
    assert set(data["stage_ms"]) == {"read", "preprocess", "forward", "track", "postprocess"}
    assert 0 < data["latency_ms_median"] <= data["latency_ms_p90"] <= data["latency_ms_p99"]


def test_cli_speed_writes_a_valid_fps_json(
    monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_dataset: Path, tmp_path: Path
) -> None:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "speed", ("benchmark.speed", "speed"))
    out = tmp_path / "fps.json"
    rc, _, err = cli("speed", "--variant", "test_tiny_clip.toy", "--dataset", tiny_dataset, "--frames-root",
                     tiny_dataset.parent / "JPEGImages", "--protocol", "e2e", "--warmup", "2", "--frames", "4",
                     "--out", out)  # fmt: skip
    assert rc == 0, err
    data = json.loads(out.read_text())
    _check_schema(data)
    assert data["protocol"] == "e2e" and data["frames"] == 4 and data["precision"] == "fp32"
    assert data["fps"] > 0 and data["peak_gpu_mem_mib"] is None and data["peak_rss_mib"] > 0
    assert data["input_shape"] == [3, 3, 24, 32] and data["params"] > 0
    # 3 frames of 24x32: stem 2*(8*12*16)*(3*9) + head 2*(2*12*16)*8 FLOPs per frame
    assert data["flops_per_forward"] == 3 * (2 * 8 * 12 * 16 * 27 + 2 * 2 * 12 * 16 * 8)
    # the CLI times the calibration workload (the speed gate's denominator) and records how it ran
    assert data["calibration_ms"] > 0 and data["checkpoint"] is None and data["adapter_args"] == []
    rc, _, err = cli("speed", "--variant", "test_tiny.toy", "--dataset", tiny_dataset, "--frames-root",
                     tiny_dataset.parent / "JPEGImages", "--warmup", "100", "--out", out)  # fmt: skip
    assert rc == 2 and "no frames measured" in err


def test_input_shape_of_structured_inputs() -> None:
    @dataclasses.dataclass
    class FrameInput:
        image: torch.Tensor
        hw: tuple[int, int]

    x = torch.zeros(1, 3, 8, 16)
    assert speed._input_shape(x) == [1, 3, 8, 16]
    assert speed._input_shape(FrameInput(x, (8, 16))) == [1, 3, 8, 16]
    assert speed._input_shape(((8, 16), x)) == [1, 3, 8, 16]
    assert speed._input_shape({"image": x}) is None


def test_fps_json_for_a_crossvis_variant_carries_published_claims() -> None:
    from benchmark.registry import get_variant_cfg

    claims = [f.to_dict() for f in get_variant_cfg("crossvis_r50.ytvis2019").fps]
    assert {"fps": 39.8, "protocol": "model", "device": None}.items() <= claims[0].items()


@pytest.mark.gpu
def test_cuda_path(monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_dataset: Path, tmp_path: Path) -> None:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "speed", ("benchmark.speed", "speed"))
    for precision in ("fp32", "fp16", "bf16"):
        out = tmp_path / f"fps_{precision}.json"
        rc, _, err = cli("speed", "--variant", "test_tiny.toy", "--dataset", tiny_dataset, "--frames-root",
                         tiny_dataset.parent / "JPEGImages", "--protocol", "model", "--warmup", "2",
                         "--frames", "6", "--device", "cuda", "--precision", precision, "--channels-last",
                         "--out", out)  # fmt: skip
        assert rc == 0, err
        data = json.loads(out.read_text())
        _check_schema(data)
        assert data["device"].startswith("cuda") and data["peak_gpu_mem_mib"] > 0
        assert data["cuda_version"] and data["precision"] == precision and data["channels_last"]
