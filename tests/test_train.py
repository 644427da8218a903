"""The training loop (benchmark/train.py): schedule, checkpoints, bit-exact resume, DDP (2 gloo
processes) == one process with the same per-micro-batch loss normalisation, the final model
loadable by ``visrepro predict``, CLI errors."""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import pytest
import torch

from benchmark.data.toyvis import generate_toyvis
from benchmark.errors import InputError, UsageError
from benchmark.registry import create_adapter
from benchmark.train import FINAL_MODEL, LAST_STATE, STATE_FORMAT, SampleStream, Schedule, configure, run
from tests._ddp import assert_ddp_equals_micro_batches, final_state

TINY = "cico_yolact_tiny.toyvis"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    generate_toyvis(root, num_train_videos=2, num_valid_videos=1, frames=(5, 6), progress=False)
    return root


def _argv(toy: Path, out: Path, *extra: str) -> list[str]:
    """The ``visrepro train`` options of a short run of the small CiCo at width 16 (fp32 unless
    ``extra`` names a precision: the default, auto, would differ between CPUs)."""
    precision = [] if "--precision" in extra else ["--precision", "fp32"]
    return [
        "--variant", TINY, "--dataset", str(toy / "annotations/train.json"), "--out", str(out),
        "--no-progress", "--threads", "1", "--opt", "width=16", *precision, *extra,
    ]  # fmt: skip


def _args(toy: Path, out: Path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    configure(p)
    return p.parse_args(_argv(toy, out, *extra))


_final = final_state


def test_schedule_warmup_decay_and_overrides() -> None:
    s = Schedule(lr=1e-3, max_steps=120, warmup_steps=10, warmup_init_lr=1e-4, decay_steps=(90,))
    assert s.lr_at(0) == pytest.approx(1e-4)
    assert s.lr_at(5) == pytest.approx(5.5e-4)
    assert s.lr_at(10) == pytest.approx(1e-3) and s.lr_at(89) == pytest.approx(1e-3)
    assert s.lr_at(90) == pytest.approx(1e-4)
    o = s.overridden(lr=1e-2, max_steps=12)
    assert o.warmup_init_lr == pytest.approx(1e-3) and o.decay_steps == (9,) and o.warmup_steps == 10
    # cosine: the same warm-up, then a half cosine from lr to gamma * lr at max_steps
    c = Schedule(lr=1e-3, max_steps=110, warmup_steps=10, warmup_init_lr=1e-4, decay="cosine")
    assert c.lr_at(5) == pytest.approx(5.5e-4) and c.lr_at(10) == pytest.approx(1e-3)
    assert c.lr_at(60) == pytest.approx(0.55e-3) and c.lr_at(110) == pytest.approx(1e-4)
    assert c.lr_at(500) == pytest.approx(1e-4)
    lrs = [c.lr_at(k) for k in range(10, 111)]
    assert all(a > b for a, b in itertools.pairwise(lrs))
    with pytest.raises(UsageError, match="linear"):
        Schedule(lr=1e-3, max_steps=10, decay="linear")


def test_schedule_builds_sgd_or_adamw_with_norm_weight_decay_groups() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    net[2].weight.requires_grad_(False)  # frozen parameters are left out
    sgd = Schedule(lr=0.1, max_steps=10).build_optimizer(net)
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["weight_decay"] == 1e-4 and len(sgd.param_groups[0]["params"]) == 5
    adamw = Schedule(lr=0.1, max_steps=10, optimizer="adamw", weight_decay=0.05, norm_weight_decay=0.0)
    opt = adamw.build_optimizer(net)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.999)
    plain, norm = opt.param_groups
    assert {id(p) for p in norm["params"]} == {id(net[1].weight), id(net[1].bias)}
    assert norm["weight_decay"] == 0.0 and plain["weight_decay"] == 0.05 and len(plain["params"]) == 3
    assert (
        Schedule(lr=0.1, max_steps=10).overridden(optimizer="adamw", weight_decay=0.01).optimizer == "adamw"
    )
    with pytest.raises(UsageError, match="unknown optimizer 'adam'"):
        Schedule(lr=0.1, max_steps=10, optimizer="adam")


def test_sample_stream_is_a_function_of_seed_and_position() -> None:
    a, b = SampleStream(5, 2, 7), SampleStream(5, 2, 7)
    seq = [a.index(p) for p in range(15)]
    assert sorted(seq[:5]) == list(range(5)) and sorted(seq[5:10]) == list(range(5))
    assert [b.index(p) for p in reversed(range(15))] == seq[::-1]
    assert a.rng(3).random() == b.rng(3).random()


def test_resume_is_bit_exact_and_the_final_model_loads_in_predict(toy: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ("--max-steps", "4", "--batch-size", "2", "--lr", "0.002", "--save-every", "0")
    assert run(_args(toy, straight, *common)) == 0
    assert run(_args(toy, split, *common, "--stop-at", "2")) == 0
    assert not (split / FINAL_MODEL).exists()
    st = torch.load(split / LAST_STATE, map_location="cpu", weights_only=False)
    assert st["format"] == STATE_FORMAT and st["step"] == 2 and st["variant"] == TINY
    assert {"model", "optimizer", "schedule", "rng", "config", "batch"} <= set(st)
    assert run(_args(toy, split, *common, "--resume")) == 0
    a, b = _final(straight), _final(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-6), k
    log_lines = (split / "train_log.jsonl").read_text().splitlines()
    assert len(log_lines) == 4 and '"M_bce"' in log_lines[0]

    # the default-width model (what the registered variant builds) loads strictly into predict
    full = tmp_path / "full"
    p = argparse.ArgumentParser()
    configure(p)
    args = p.parse_args(
        ["--variant", TINY, "--dataset", str(toy / "annotations/train.json"), "--out", str(full),
         "--no-progress", "--max-steps", "0"]
    )  # fmt: skip
    assert run(args) == 0
    adapter = create_adapter(TINY)
    report = adapter.load_official_checkpoint(full / FINAL_MODEL)
    assert report.complete


def test_prefetched_batches_are_the_loop_s_batches(toy: Path, tmp_path: Path) -> None:
    """The background loading (``--prefetch``) trains exactly as loading in the loop (default),
    with micro-batches too, and stops cleanly at ``--stop-at``."""
    common = ("--max-steps", "3", "--batch-size", "2", "--accumulate", "2", "--save-every", "0")
    assert run(_args(toy, tmp_path / "ahead", *common, "--prefetch")) == 0
    assert run(_args(toy, tmp_path / "loop", *common)) == 0
    a, b = _final(tmp_path / "ahead"), _final(tmp_path / "loop")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert run(_args(toy, tmp_path / "stop", *common, "--prefetch", "--stop-at", "1")) == 0
    assert len((tmp_path / "stop" / "train_log.jsonl").read_text().splitlines()) == 1


def test_bf16_autocast_trains_with_fp32_weights(toy: Path, tmp_path: Path) -> None:
    """``--precision bf16`` runs the forward pass and the losses under bf16 autocast (other weights
    than fp32 after a step, finite losses) and keeps the weights fp32; recorded in the summary."""
    import json

    common = ("--max-steps", "2", "--batch-size", "2", "--save-every", "0")
    assert run(_args(toy, tmp_path / "bf16", *common, "--precision", "bf16")) == 0
    assert run(_args(toy, tmp_path / "fp32", *common, "--precision", "fp32")) == 0
    a, b = _final(tmp_path / "bf16"), _final(tmp_path / "fp32")
    assert all(v.dtype != torch.bfloat16 for v in a.values())
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    summary = json.loads((tmp_path / "bf16" / "train_summary.json").read_text())
    assert summary["precision"] == "bf16" and all(math.isfinite(v) for v in summary["last_losses"].values())
    assert summary["precision_requested"] == "bf16" and summary["threads"] >= 1 and summary["cpu"]
    with pytest.raises(SystemExit) as exc:
        _args(toy, tmp_path / "x", "--precision", "fp16")
    assert exc.value.code == 2


def test_precision_auto_is_bf16_only_with_native_bf16(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--precision auto`` (the default) trains in bf16 only where the CPU has native bf16, else
    in fp32 (bf16 emulated on AVX2 is 4-8x slower); the summary records what was asked and what ran."""
    import json
    import subprocess
    import sys

    import benchmark.train as tr
    from benchmark.errors import UsageError

    cpu = torch.device("cpu")
    monkeypatch.setattr(tr, "native_bf16", lambda d: (False, "no AMX / AVX-512 BF16"))
    assert tr.resolve_precision("auto", cpu) == ("fp32", "auto: no native bf16 (no AMX / AVX-512 BF16)")
    assert tr.resolve_precision("bf16", cpu)[0] == "bf16"  # asked for: honoured (with a warning)
    monkeypatch.setattr(tr, "native_bf16", lambda d: (True, "AMX"))
    assert tr.resolve_precision("auto", cpu) == ("bf16", "auto: native bf16 (AMX)")
    assert tr.resolve_precision("fp32", cpu)[0] == "fp32"
    with pytest.raises(UsageError, match="fp16"):
        tr.resolve_precision("fp16", cpu)
    monkeypatch.undo()
    # oneDNN held to AVX2 (what an AVX2-only CPU has): no native bf16, whatever this CPU is
    code = "import torch; from benchmark.train import native_bf16; print(native_bf16(torch.device('cpu')))"
    env = {**__import__("os").environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("(False,"), done.stdout
    # auto is the default; a run records it and what it resolved to here
    p = argparse.ArgumentParser()
    configure(p)
    assert p.parse_args(["--variant", TINY, "--out", "x"]).precision == "auto"
    auto = ("--max-steps", "1", "--batch-size", "1", "--save-every", "0", "--precision", "auto")
    assert run(_args(toy, tmp_path / "auto", *auto)) == 0
    summary = json.loads((tmp_path / "auto" / "train_summary.json").read_text())
    assert summary["precision_requested"] == "auto"
    assert summary["precision"] == tr.resolve_precision("auto", cpu)[0]
    assert summary["precision_reason"].startswith("auto: ")


def test_prefetch_raises_a_loading_error_at_its_step() -> None:
    from benchmark.train import _ahead

    def load(step: int, k: int) -> int:
        if step == 2:
            raise InputError(f"frame of step {step} unreadable", file="f.jpg")
        return step

    gen = _ahead(load, iter([(0, 0), (1, 0), (2, 0), (3, 0)]))
    assert next(gen) == 0 and next(gen) == 1
    with pytest.raises(InputError, match="step 2 unreadable"):
        next(gen)
    assert list(_ahead(load, iter([]))) == []


def test_a_non_finite_loss_stops_before_the_update_and_keeps_the_last_good_state(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NaN loss (or gradient) at step 3 updates nothing: the state after step 2 is saved, and the
    CLI says so with exit status 1, no traceback."""
    from benchmark.cli import main
    from methods.cico.train import CiCoTrainer

    real = CiCoTrainer.losses
    calls = {"n": 0}

    def poisoned(self: CiCoTrainer, *a: object, **k: object) -> dict[str, torch.Tensor]:
        out = real(self, *a, **k)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 3:
            out["M_bce"] = out["M_bce"] * float("nan")
        return out

    common = ("--max-steps", "5", "--batch-size", "1", "--save-every", "0")
    ref = tmp_path / "ref"
    assert run(_args(toy, ref, *common, "--stop-at", "2")) == 0
    monkeypatch.setattr(CiCoTrainer, "losses", poisoned)
    out = tmp_path / "nan"
    assert main(["train", *_argv(toy, out, *common)]) == 1
    err = capsys.readouterr().err
    assert "non-finite loss or gradient at step 3" in err and "Traceback" not in err
    assert str(out / LAST_STATE) in err
    st = torch.load(out / LAST_STATE, map_location="cpu", weights_only=False)
    good = torch.load(ref / LAST_STATE, map_location="cpu", weights_only=False)
    assert st["step"] == 2
    for k, v in good["model"].items():
        assert torch.equal(st["model"][k], v), k
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    assert not (out / FINAL_MODEL).exists()


def test_resume_refuses_another_variant_or_batch(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert run(_args(toy, out, "--max-steps", "2", "--stop-at", "1", "--batch-size", "1")) == 0
    with pytest.raises(InputError, match="global batch"):
        run(_args(toy, out, "--max-steps", "2", "--batch-size", "2", "--resume"))
    with pytest.raises(InputError, match="--precision fp32, not bf16"):
        run(_args(toy, out, "--max-steps", "2", "--batch-size", "1", "--precision", "bf16", "--resume"))
    with pytest.raises(InputError, match=r"other trainer options.*expand: False then, True now"):
        run(_args(toy, out, "--max-steps", "2", "--batch-size", "1", "--opt", "expand=1", "--resume"))
    # a nested entry (the loss weights) is named by itself, not as the whole loss configuration
    with pytest.raises(
        InputError, match=r"other trainer options.*: loss\.class_alpha: 10\.0 then, 5\.0 now \("
    ):
        run(_args(toy, out, "--max-steps", "2", "--batch-size", "1", "--opt", "class_alpha=5", "--resume"))
    with pytest.raises(InputError, match="no training state"):
        run(_args(toy, tmp_path / "none", "--resume"))
    with pytest.raises(UsageError, match="multiple of --accumulate"):
        run(_args(toy, out, "--batch-size", "3", "--accumulate", "2"))
    with pytest.raises(InputError, match="unknown CiCo training option"):
        run(_args(toy, out, "--opt", "colour=red"))


@pytest.mark.numeric  # DDP vs one process with micro-batches at rtol 1e-4
def test_ddp_two_gloo_processes_equal_one_process_with_two_micro_batches(toy: Path, tmp_path: Path) -> None:
    assert_ddp_equals_micro_batches(TINY, toy / "annotations/train.json", tmp_path, width=16)
