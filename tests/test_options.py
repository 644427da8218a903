"""Typed string options (``--opt K=V``, ``--adapter-arg K=V``): a bad value is an input error naming
the option, on the CLI an exit 2, never a ValueError traceback nor a silent default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmark.errors import InputError
from benchmark.options import opt_bool, opt_float, opt_int
from benchmark.registry import get_variant_cfg


def test_opt_bool() -> None:
    for v in (True, "1", "true", "YES", " on "):
        assert opt_bool(v, "k") is True
    for v in (False, "0", "False", "no", "off"):
        assert opt_bool(v, "k") is False
    for bad in ("flase", "", "2", None):
        with pytest.raises(InputError, match=r"option augment=.*expected a boolean"):
            opt_bool(bad, "augment")


def test_opt_int_and_float() -> None:
    assert opt_int("12", "k") == 12 and opt_int(7, "k") == 7 and opt_int(" 3 ", "k", minimum=3) == 3
    assert opt_int(4.0, "k") == 4
    for bad in ("x", "2.5", "", None, True, 2.5, "0x10"):
        with pytest.raises(InputError, match=r"option min_size=.*expected an integer"):
            opt_int(bad, "min_size")
    with pytest.raises(InputError, match=r"warmup='-1': expected an integer >= 0"):
        opt_int("-1", "warmup", minimum=0)
    assert opt_float("0.25", "k", minimum=0, maximum=1) == 0.25 and opt_float(3, "k") == 3.0
    for bad in ("x", "nan", "inf", None, False):
        with pytest.raises(InputError, match=r"option conf=.*expected a (finite )?number"):
            opt_float(bad, "conf")
    with pytest.raises(InputError, match=r"expected a number in \[0, 1\]"):
        opt_float("1.5", "conf", minimum=0, maximum=1)


@pytest.mark.parametrize(
    ("variant", "opts", "message"),
    [
        ("crossvis_tiny.toyvis", {"min_size": "x"}, r"min_size='x': expected an integer"),
        ("crossvis_tiny.toyvis", {"max_size": "0"}, r"max_size='0': expected an integer >= 1"),
        ("crossvis_tiny.toyvis", {"width": "48"}, r"width='48': expected a multiple of 32"),
        ("crossvis_tiny.toyvis", {"augment": "flase"}, r"augment='flase': expected a boolean"),
        ("cico_yolact_tiny.toyvis", {"min_size": "1.5"}, r"min_size='1.5': expected an integer"),
        ("cico_yolact_tiny.toyvis", {"grad_clip": "big"}, r"grad_clip='big': expected a number"),
        ("cico_yolact_tiny.toyvis", {"warmup": "-3"}, r"warmup='-3': expected an integer >= 0"),
        ("cico_yolact_tiny.toyvis", {"cache": "maybe"}, r"cache='maybe': expected a boolean"),
        (
            "cico_yolact_tiny.toyvis",
            {"track_alpha": "-1"},
            r"track_alpha='-1': expected a number in \[0, inf\]",
        ),
        ("cico_yolact_tiny.toyvis", {"class_alpha": "lots"}, r"class_alpha='lots': expected a number"),
        ("cico_yolact_r50.ytvis2019", {"track_alpha": "10"}, r"option track_alpha is for the small"),
    ],
)
def test_trainer_options_are_typed(variant: str, opts: dict[str, str], message: str) -> None:
    from benchmark.train import get_trainer

    with pytest.raises(InputError, match=message):
        get_trainer(variant, opts)


def test_builder_options_are_typed() -> None:
    from methods.cico.small import build as cico_build
    from methods.crossvis.small import build as crossvis_build

    cfg = get_variant_cfg("crossvis_tiny.toyvis")
    with pytest.raises(InputError, match=r"min_size='big': expected an integer"):
        crossvis_build(cfg, min_size="big")
    with pytest.raises(InputError, match=r"width='40': expected a multiple of 32"):
        crossvis_build(cfg, width="40")
    with pytest.raises(InputError, match=r"keep_debug='sure': expected a boolean"):
        crossvis_build(cfg, keep_debug="sure")
    cfg = get_variant_cfg("cico_yolact_tiny.toyvis")
    with pytest.raises(InputError, match=r"conf_thresh='2': expected a number in \[0, 1\]"):
        cico_build(cfg, conf_thresh="2")
    with pytest.raises(InputError, match=r"max_size='x': expected an integer"):
        cico_build(cfg, max_size="x")
    # --adapter-arg values are JSON-decoded when they can be (0.3 -> a float, true -> a bool)
    bad_values: list[object] = ["0.1,0.5,0.5", "a,b,c,d", "0.1,0.5,0.5,-1", "nan,0,0,0", "inf,0,0,0"]
    bad_values += ["0.1,0.5,0.5,0.3,1", 0.3, 1, None, True, [True, 0, 0, 0], {"a": 1}]
    for bad in bad_values:
        with pytest.raises(InputError, match=r"option match_coeff=.*expected four numbers >= 0"):
            cico_build(cfg, match_coeff=bad)
    assert cico_build(cfg, match_coeff=[0.1, 0.5, 0.5, 0]).tracker.cfg.match_coeff == (0.1, 0.5, 0.5, 0.0)


def test_cli_bad_option_exits_2(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """The CLI reports the option and exits 2 before touching the dataset or the output folder."""
    out = tmp_path / "run"
    rc, _, err = cli(
        "train", "--variant", "crossvis_tiny.toyvis", "--dataset", tmp_path / "none.json", "--out", out,
        "--opt", "min_size=x", "--no-progress",
    )  # fmt: skip
    assert rc == 2 and "min_size='x': expected an integer" in err and "Traceback" not in err
    assert not out.exists()


def test_cli_bad_adapter_arg_exits_2(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """A JSON-decodable value of the wrong kind (a number where four are expected) exits 2, not 1."""
    out = tmp_path / "r.json"
    rc, _, err = cli(
        "predict", "--variant", "cico_yolact_tiny.toyvis", "--checkpoint", tmp_path / "none.pth",
        "--dataset", tmp_path / "none.json", "--out", out, "--adapter-arg", "match_coeff=0.3",
    )  # fmt: skip
    assert rc == 2 and "option match_coeff=0.3: expected four numbers" in err and "Traceback" not in err
    assert not out.exists()
