"""Every CiCo variant loads its official state-dict layout strictly (all 18 manifests).

Networks are built on the meta device and checkpoints are zero tensors of the manifest's shapes
(also on meta), so the 18 x 3 layouts check in seconds. Layouts: the released plain ``CoreNet``
state dict; the older ones the official loader renames (``module.`` prefix, top-level
``mask_refine``/``proto_net``/``proto_conv``, ``prediction_layers.0.``); and the pre-2022-03-08 one
with a 3-D ``proto_conv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.checkpoint import load_strict
from benchmark.errors import InputError
from benchmark.registry import ensure_loaded, get_variant_cfg
from methods.cico.adapter import CiCoAdapter, config_of
from methods.cico.model import CiCoNet

MANIFESTS = Path(__file__).resolve().parent / "fixtures" / "parity" / "cico_manifests"
NAMES = sorted(p.stem for p in MANIFESTS.glob("cico_*_f3.json"))
_DS = {"yt19": "ytvis2019", "yt21": "ytvis2021", "ovis": "ovis"}


def _variant(stem: str) -> str:
    _, head, bb, ds, _ = stem.split("_")
    return f"cico_{head}_{bb}.{_DS[ds]}"


def _adapter(stem: str) -> CiCoAdapter:
    ensure_loaded()
    cfg = get_variant_cfg(_variant(stem))
    with torch.device("meta"):
        model = CiCoNet(config_of(cfg))
    return CiCoAdapter(cfg, model, device="meta")


def _checkpoint(stem: str) -> dict[str, torch.Tensor]:
    manifest = json.loads((MANIFESTS / f"{stem}.json").read_text())
    return {k: torch.zeros(v, device="meta") for k, v in manifest.items()}


def _old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        k = k.replace("ProtoNet.", "", 1) if k.startswith("ProtoNet.") else k
        k = k.replace("prediction_layers.", "prediction_layers.0.", 1)
        out["module." + k] = v
    return out


def test_eighteen_manifests() -> None:
    assert len(NAMES) == 18


@pytest.mark.parametrize("stem", NAMES)
def test_loads_plain_state_dict(stem: str) -> None:
    ad = _adapter(stem)
    state = _checkpoint(stem)
    report = load_strict(ad.model, ad.convert_state_dict(state))  # type: ignore[arg-type]
    assert report.complete and len(report.converted) == len(state)
    assert list(ad.model.state_dict()) and set(ad.model.state_dict()) == set(state)
    n = ad.checkpoint_num_classes(state)
    assert n == ad.num_classes == (25 if "_ovis_" in stem else 40)
    conf = state["prediction_layers.conf_layer.weight"].shape[0]
    assert conf == 3 * (26 if "_ovis_" in stem else 40)  # OVIS: softmax with a background class
    assert ad.net.cfg.focal == ("_ovis_" not in stem)


@pytest.mark.parametrize("stem", NAMES)
def test_loads_older_layouts(stem: str) -> None:
    ad = _adapter(stem)
    old = _old_layout(_checkpoint(stem))
    assert any(k.startswith("module.proto_conv.") for k in old)
    report = load_strict(ad.model, ad.convert_state_dict(old))  # type: ignore[arg-type]
    assert report.complete and len(report.converted) == len(old)


@pytest.mark.parametrize("stem", NAMES)
def test_loads_3d_proto_conv_layout(stem: str) -> None:
    ad = _adapter(stem)
    state = _checkpoint(stem)
    p = state["ProtoNet.proto_conv.0.weight"].shape
    d = state["ProtoNet.proto_conv.3.weight"].shape[0]
    state["ProtoNet.proto_conv.0.weight"] = torch.zeros(*p[:2], 3, *p[2:], device="meta")
    state["ProtoNet.proto_conv.3.weight"] = torch.zeros(d, p[0], 1, 1, 1, device="meta")
    report = load_strict(ad.model, ad.convert_state_dict(state))  # type: ignore[arg-type]
    assert report.complete
    assert ad.net.cfg.legacy_3d_proto_conv
    assert ad.model.state_dict()["ProtoNet.proto_conv.0.weight"].dim() == 5  # type: ignore[union-attr]


def test_wrong_checkpoint_is_an_input_error() -> None:
    ad = _adapter("cico_condinst_r50_yt19_f3")
    state = _checkpoint("cico_yolact_r50_yt19_f3")  # mask_layer 96 != 483, proto_conv.3 32 != 8
    with pytest.raises(InputError) as exc:
        load_strict(ad.model, ad.convert_state_dict(state))  # type: ignore[arg-type]
    assert "prediction_layers.mask_layer.weight" in str(exc.value)
    state = _checkpoint("cico_condinst_r50_yt19_f3")
    state["extra.weight"] = torch.zeros(1, device="meta")
    del state["fpn.lat_layers.0.bias"]
    with pytest.raises(InputError) as exc:
        load_strict(ad.model, ad.convert_state_dict(state))  # type: ignore[arg-type]
    assert "extra.weight" in str(exc.value) and "fpn.lat_layers.0.bias" in str(exc.value)


def test_train_only_and_unbuilt_modules_are_dropped_with_a_reason() -> None:
    ad = _adapter("cico_yolact_r50_yt19_f3")
    state = _checkpoint("cico_yolact_r50_yt19_f3")
    state["T2S_Head.TemporalFusionNet.0.weight"] = torch.zeros(1, device="meta")
    state["fpn.downsample_layers.2.weight"] = torch.zeros(1, device="meta")
    report = load_strict(ad.model, ad.convert_state_dict(state))  # type: ignore[arg-type]
    assert report.complete and len(report.dropped) == 2 and all(r for _, r in report.dropped)


def test_ovis_class_count_mismatch(tmp_path: Path) -> None:
    """A 40-class YouTube-VIS checkpoint on a 25-class OVIS variant is reported as such."""
    ad = _adapter("cico_yolact_r50_ovis_f3")
    yt = _checkpoint("cico_yolact_r50_yt19_f3")
    assert ad.checkpoint_num_classes(yt) == 39  # 120 / 3 - background: not 25
    small = {k: torch.zeros(v.shape) for k, v in yt.items() if k.startswith("prediction_layers.conf")}
    f = tmp_path / "yt.pth"
    torch.save(small, f)
    with pytest.raises(InputError, match="classes"):
        ad.load_official_checkpoint(f)
