"""The adapter base class: clip schedule, streaming loop, track assembly, strict checkpoint loading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchmark.adapter import Clip, InstanceOutput, MethodAdapter, clip_schedule
from benchmark.checkpoint import ConversionError, DropRule, RenameRule, convert_state_dict, read_checkpoint
from benchmark.data.frames import FrameSource, VideoSample
from benchmark.data.ytvis import YTVISDataset
from benchmark.errors import InputError
from benchmark.masks import decode_rle, encode_mask
from benchmark.registry import create_adapter
from benchmark.variant_cfg import VariantCfg


class CountingFrames(FrameSource):
    """Synthetic frames that count decodes and track how many are alive at once."""

    def __init__(self, n: int, h: int = 12, w: int = 16) -> None:
        self.n, self.h, self.w = n, h, w
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.n

    def read(self, index: int) -> np.ndarray:
        self.reads.append(index)
        return np.full((self.h, self.w, 3), index, np.uint8)


class EchoAdapter(MethodAdapter):
    """Emits, per emitted frame, one instance whose mask row ``frame % h`` is set; track = frame % 2."""

    def __init__(self, clip_length: int, overlap: int) -> None:
        super().__init__(
            VariantCfg(name="echo.t", method="echo", clip_length=clip_length, clip_overlap=overlap)
        )
        self.seen: list[tuple[int, ...]] = []
        self.resets = 0

    def reset(self, video: VideoSample) -> None:
        self.resets += 1

    def preprocess(self, frames: Sequence[np.ndarray], clip: Clip, video: VideoSample) -> Any:
        assert len(frames) == self.clip_length
        self.seen.append(tuple(int(f[0, 0, 0]) for f in frames))
        return clip

    def forward(self, inputs: Any) -> Any:
        return inputs

    def postprocess(self, tracked: Clip, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
        outs = []
        for f in clip.emit:
            m = np.zeros((video.height, video.width), np.uint8)
            m[f % video.height] = 1
            outs.append(InstanceOutput(f % 2, 1 + (f == 0), 0.1 * (f % 2 + 1), (f,), (encode_mask(m),)))
        return outs


def test_clip_schedule_matches_cico_eval() -> None:
    clips = clip_schedule(7, 3, 1)
    assert [c.frame_ids for c in clips] == [(0, 1, 2), (2, 3, 4), (4, 5, 6), (6,)]
    assert [c.padded_ids for c in clips][-1] == (6, 6, 6)
    assert [c.emit for c in clips] == [(0, 1), (2, 3), (4, 5), (6,)]
    assert clip_schedule(4, 3, 0)[-1].padded_ids == (3, 3, 3)
    assert clip_schedule(5, 3, 0)[-1].padded_ids == (3, 4, 3)
    assert [c.emit for c in clip_schedule(3, 1, 0)] == [(0,), (1,), (2,)]
    with pytest.raises(ValueError):
        clip_schedule(3, 2, 2)


@given(st.integers(1, 40), st.integers(1, 5), st.data())
def test_clip_schedule_emits_every_frame_once(n: int, length: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, length - 1))
    clips = clip_schedule(n, length, overlap)
    emitted = [f for c in clips for f in c.emit]
    assert emitted == list(range(n))
    for c in clips:
        assert len(c.padded_ids) == length and c.emit == c.frame_ids[: len(c.emit)]


def test_streaming_decodes_each_frame_once_and_assembles_tracks() -> None:
    frames = CountingFrames(7)
    video = VideoSample(5, 12, 16, frames)
    ad = EchoAdapter(3, 1)
    preds = ad.predict_video(video)
    assert sorted(frames.reads) == list(range(7))  # overlapped frames come from the cache
    assert ad.seen == [(0, 1, 2), (2, 3, 4), (4, 5, 6), (6, 6, 6)]
    assert ad.resets == 1
    assert [p.video_id for p in preds] == [5, 5]
    even, odd = preds  # first appearance order: frame 0 -> track 0
    assert [s is not None for s in even.segmentations] == [True, False, True, False, True, False, True]
    assert decode_rle(even.segmentations[2])[2].all()  # type: ignore[arg-type]
    assert even.category_id == 1  # majority of (2, 1, 1, 1)
    assert even.score == pytest.approx(0.1) and odd.score == pytest.approx(0.2)

    class FirstVote(EchoAdapter):
        category_vote = "first"

    first = FirstVote(1, 0).predict_video(VideoSample(5, 12, 16, CountingFrames(3)))
    assert first[0].category_id == 2


def test_adapter_bug_is_reported() -> None:
    class Twice(EchoAdapter):
        def postprocess(self, tracked: Clip, clip: Clip, video: VideoSample) -> list[InstanceOutput]:
            outs = super().postprocess(tracked, clip, video)
            return outs + outs

    with pytest.raises(ValueError, match="emitted twice"):
        Twice(1, 0).predict_video(VideoSample(1, 12, 16, CountingFrames(2)))


def test_tiny_adapter_output_contract(tiny_dataset: Path) -> None:
    ds = YTVISDataset.load(tiny_dataset, tiny_dataset.parent / "JPEGImages")
    for name in ("test_tiny.toy", "test_tiny_clip.toy"):
        ad = create_adapter(name)
        ad.set_dataset(ds)
        preds = ad.predict_video(ds.video_sample(1))
        assert len(preds) == 2
        for p in preds:
            assert p.category_id in ds.categories and 0 <= p.score <= 1
            assert len(p.segmentations) == 4
            assert all(s is not None and s["size"] == [24, 32] for s in p.segmentations)


# ---- checkpoints ------------------------------------------------------------------------------
def _official_state(num_classes: int = 2) -> dict[str, torch.Tensor]:
    """A state dict in the tiny fixture's 'official' layout (from its own random weights)."""
    own = create_adapter("test_tiny.toy", num_classes=num_classes).model.state_dict()  # type: ignore[union-attr]
    back = {"stem.": "backbone.conv.", "bn.": "backbone.norm.", "head.": "cls_head."}
    out = {}
    for k, v in own.items():
        pre = next(p for p in back if k.startswith(p))
        out[back[pre] + k[len(pre) :]] = v + 1 if v.is_floating_point() else v
    out["reid_classifier.weight"] = torch.zeros(3, 3)
    return out


def test_rename_rules_are_ordered_and_one_to_one() -> None:
    conv = convert_state_dict(
        {"a.x": 1, "a.y": 2, "drop.me": 3},
        [RenameRule(r"^a\.", "b."), RenameRule(r"^b\.x$", "c")],
        [DropRule(r"^drop\.", "train only")],
    )
    assert conv.state == {"c": 1, "b.y": 2}
    assert conv.dropped == [("drop.me", "train only")]
    with pytest.raises(ConversionError, match="map both"):
        convert_state_dict({"a.x": 1, "b.x": 2}, [RenameRule(r"^a\.", "b.")])


def test_official_checkpoint_loads_strictly(tmp_path: Path) -> None:
    state = _official_state()
    ck = tmp_path / "official.pth"
    torch.save({"model": state, "iteration": 10}, ck)  # detectron2-style wrapper
    ad = create_adapter("test_tiny.toy")
    report = ad.load_official_checkpoint(ck)
    assert report.complete and report.dropped == (("reid_classifier.weight", "train-only re-id classifier"),)
    assert len(report.converted) == len(state) - 1
    assert torch.equal(ad.model.state_dict()["head.weight"], state["cls_head.weight"])  # type: ignore[union-attr]
    assert ad.checkpoint_sha256 == report.sha256 and report.sha256 is not None


def test_incomplete_checkpoint_is_an_input_error_naming_keys(tmp_path: Path) -> None:
    state = _official_state()
    del state["backbone.conv.weight"]
    state["extra.thing"] = torch.zeros(1)
    ck = tmp_path / "partial.pth"
    torch.save(state, ck)
    with pytest.raises(InputError) as exc:
        create_adapter("test_tiny.toy").load_official_checkpoint(ck)
    msg = str(exc.value)
    assert "stem.weight" in msg and "extra.thing" in msg and str(ck) in msg
    report = create_adapter("test_tiny.toy").load_official_checkpoint(ck, strict=False)
    assert report.missing == ("stem.weight",) and report.unexpected == ("extra.thing",)


def test_class_count_mismatch_is_an_error_with_hint(tmp_path: Path, tiny_dataset: Path) -> None:
    ck = tmp_path / "five.pth"
    torch.save(_official_state(num_classes=5), ck)
    with pytest.raises(InputError, match="checkpoint has 5 classes"):
        create_adapter("test_tiny.toy").load_official_checkpoint(ck)
    # a 40-class variant on a 2-category dataset
    ad = create_adapter("oracle.gt")
    object.__setattr__(ad, "cfg", VariantCfg(name="x_r50.ytvis2019", method="x", num_classes=40))
    with pytest.raises(InputError, match=r"40 classes but the dataset has 2 categories.*hint"):
        MethodAdapter.set_dataset(ad, YTVISDataset.load(tiny_dataset))


def test_sha256_is_verified_and_unsafe_pickles_refused(tmp_path: Path) -> None:
    ck = tmp_path / "c.pth"
    torch.save({"w": torch.zeros(1)}, ck)
    with pytest.raises(InputError, match="sha256 mismatch"):
        read_checkpoint(ck, expected_sha256="0" * 64)
    bad = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, bad)
    with pytest.raises(InputError, match="weights_only"):
        read_checkpoint(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")


def test_checkpoints_cli_verify_records_then_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    import benchmark.cli

    monkeypatch.setitem(benchmark.cli.COMMANDS, "checkpoints", ("benchmark.checkpoint", "checkpoints"))
    monkeypatch.delenv("VISREPRO_CHECKPOINTS_LOCK", raising=False)
    lock = tmp_path / "lock.json"
    ck = tmp_path / "c.pth"
    torch.save(_official_state(), ck)
    rc, out, _ = cli(
        "checkpoints", "verify", "--variant", "test_tiny.toy", "--checkpoint", ck, "--lock", lock
    )
    assert rc == 0 and "recorded" in out
    rc, out, _ = cli(
        "checkpoints", "verify", "--variant", "test_tiny.toy", "--checkpoint", ck, "--lock", lock
    )
    assert rc == 0 and "OK" in out
    torch.save({"w": torch.zeros(2)}, ck)
    rc, _, err = cli(
        "checkpoints", "verify", "--variant", "test_tiny.toy", "--checkpoint", ck, "--lock", lock
    )
    assert rc == 2 and "differs from the recorded" in err
    rc, out, _ = cli(
        "checkpoints", "inspect", "--variant", "test_tiny.toy", "--checkpoint", ck, "--lock", lock
    )
    assert rc == 2  # the lock now pins another digest
    import os

    assert "VISREPRO_CHECKPOINTS_LOCK" not in os.environ  # --lock does not leak
    torch.save(_official_state(), ck)
    rc, out, _ = cli("checkpoints", "inspect", "--variant", "test_tiny.toy", "--checkpoint", ck)
    assert rc == 0 and "dropped    reid_classifier.weight" in out


def test_recorded_sha256_is_checked_on_the_published_file_only(tmp_path: Path) -> None:
    """A variant's recorded digest is its published file's: a file of that name with other bytes
    is refused; other weights of the architecture (a retrained model) load, digest reported."""
    from benchmark.train import FINAL_MODEL

    cfg = create_adapter("crossvis_tiny.toyvis").cfg
    assert cfg.checkpoint_sha256 is not None and cfg.checkpoint_file == "crossvis_tiny.toyvis.pth"
    model = create_adapter("crossvis_tiny.toyvis").model
    assert model is not None
    for name in ("crossvis_tiny.toyvis.pth", FINAL_MODEL):
        ck = tmp_path / name
        torch.save({"model": model.state_dict()}, ck)
        if name == FINAL_MODEL:
            report = create_adapter("crossvis_tiny.toyvis").load_official_checkpoint(ck)
            assert report.complete and report.sha256 != cfg.checkpoint_sha256
        else:
            with pytest.raises(InputError, match="sha256 mismatch"):
                create_adapter("crossvis_tiny.toyvis").load_official_checkpoint(ck)
