"""CrossVIS variants and their published numbers (metadata only: importable without torch).

Primary numbers: the released-checkpoint rows of the official README (``hustvl/CrossVIS@378f4f3``,
the seed copy ``seeds/crossvis-README.md``). The paper's own numbers differ and are kept as
alternates with their source. Speed: the paper's FPS counts the network only (the maintainer in
hustvl/CrossVIS#6: "the time costs of data loading and tracking ... are ignored"); the GPU is not
stated in any accessible source, so those figures are not comparable with a measurement on a
known GPU. A user's end-to-end re-measurement on an RTX 2080Ti is kept as well.
"""

from __future__ import annotations

from benchmark.variant_cfg import FpsClaim, InputSize, PublishedResult, VariantCfg, shipped_weights_url

__all__ = ["VARIANTS"]

_REPO = "https://github.com/hustvl/CrossVIS"
_COMMIT = "378f4f3"
_README = f"hustvl/CrossVIS@{_COMMIT} README.md, 'Main Results on YouTube-VIS 2019'"
_PAPER_SRC = (
    "CrossVIS paper (ICCV 2021) as cited by the IDOL and SeqFormer tables: wjf5203/VNext@db33833 "
    "assets/IDOL/ytvis2019_results.png; assets/SeqFormer/ytvis2019_results.png"
)
_ISSUE6 = "hustvl/CrossVIS#6"
_INPUT = InputSize(min_size=360, max_size=640, pad_divisor=32)
_DRIVE_NOTE = (
    "The README gives two Google Drive links per row for 'checkpoints and codalab server submissions' "
    "without saying which is which; both are listed. A Baidu mirror exists ({baidu}, keycode {key})."
)


def _metrics(ap: float, ap50: float, ap75: float, ar1: float, ar10: float) -> dict[str, float]:
    return {"AP": ap, "AP50": ap50, "AP75": ap75, "AR1": ar1, "AR10": ar10}


def _variant(
    depth: int,
    readme: dict[str, float],
    paper: dict[str, float],
    fps: float,
    user_fps: float,
    urls: tuple[str, ...],
    baidu: str,
    key: str,
) -> VariantCfg:
    bb = f"r{depth}"
    return VariantCfg(
        name=f"crossvis_{bb}.ytvis2019",
        method="crossvis",
        backbone=bb,
        train_dataset="ytvis2019",
        eval_dataset="ytvis2019_valid",
        num_classes=40,
        official_repo=_REPO,
        official_commit=_COMMIT,
        paper="arXiv:2104.05970 (ICCV 2021)",
        config=f"configs/CrossVIS/R_{depth}_1x.yaml",
        checkpoint_urls=urls,
        checkpoint_file=None,
        checkpoint_sha256=None,
        manifest=f"crossvis_R_{depth}_1x.json",
        input_size=_INPUT,
        clip_length=1,
        clip_overlap=0,
        published=(
            PublishedResult(
                "ytvis2019_valid", readme, f"{_README} (CrossVIS_R_{depth}_1x row)", kind="readme"
            ),
            PublishedResult(
                "ytvis2019_valid",
                paper,
                _PAPER_SRC,
                kind="paper",
                primary=False,
                note="paper numbers, not the released checkpoint",
            ),
        ),
        fps=(
            FpsClaim(
                fps,
                "model",
                None,
                f"CrossVIS paper as cited by IDOL/SeqFormer tables; protocol per {_ISSUE6}",
                note="network only (no data loading, no tracking); GPU not stated",
            ),
            FpsClaim(
                user_fps,
                "e2e",
                "RTX 2080Ti + i9-9960X",
                f"{_ISSUE6} (user report)",
                note="tools/test_vis.py including data loading and tracking",
            ),
        ),
        notes=(_DRIVE_NOTE.format(baidu=baidu, key=key),),
    )


VARIANTS: tuple[VariantCfg, ...] = (
    _variant(
        50,
        _metrics(35.5, 55.1, 39.0, 35.4, 42.2),
        _metrics(36.3, 56.8, 38.9, 35.6, 40.7),
        39.8,
        25.6,
        (
            "https://drive.google.com/file/d/1qDFf-Fk2R67iyzwR1_WbZ3IfwYgAR5vu/view?usp=sharing",
            "https://drive.google.com/file/d/1zuBu4XpPlbCjh9jM00jPb5phk5jdl4la/view?usp=sharing",
        ),
        "https://pan.baidu.com/s/10ccx2RrA-TCJr8ZNXmlm2w",
        "a0j0",
    ),
    _variant(
        101,
        _metrics(36.9, 57.8, 41.4, 36.2, 43.9),
        _metrics(36.6, 57.3, 39.7, 36.0, 42.0),
        35.6,
        23.3,
        (
            "https://drive.google.com/file/d/11BRxiLDdqreEI66Lp0EwPvnHZn8msraa/view?usp=sharing",
            "https://drive.google.com/file/d/1GGwUkqs6HhM4GHRkxQPXppun6QyvR8oh/view?usp=sharing",
        ),
        "https://pan.baidu.com/s/1orXUtSQC_1ZvsOa6XcFteA",
        "iwwo",
    ),
)

SMALL_VARIANTS: tuple[VariantCfg, ...] = (
    VariantCfg(
        name="crossvis_tiny.toyvis",
        method="crossvis",
        backbone="tiny",
        train_dataset="toyvis",
        eval_dataset="toyvis_valid",
        num_classes=6,
        official_repo=_REPO,
        official_commit=_COMMIT,
        paper="arXiv:2104.05970 (ICCV 2021)",
        # the pipeline's ToyVIS frames (192x320, params.yaml); at 96x160 the stride-8 mask branch is too coarse
        input_size=InputSize(min_size=192, max_size=320, pad_divisor=32),
        clip_length=1,
        clip_overlap=0,
        # the reference weights the repository ships (trained once: weights/toyvis/crossvis_tiny.toyvis.json)
        checkpoint_urls=(shipped_weights_url("toyvis/crossvis_tiny.toyvis.pth"),),
        checkpoint_file="crossvis_tiny.toyvis.pth",
        notes=(
            "Not an official variant: CrossVIS's FCOS/CondInst heads, losses, crossover and tracker "
            "with a narrow ResNet-like backbone and 64-channel FPN/heads, trained from scratch on ToyVIS.",
        ),
    ),
)
