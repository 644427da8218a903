"""CiCo variants: {yolact, condinst} x {r50, r101, swint} x {ytvis2019, ytvis2021, ovis}.

Metadata only (importable without torch). Primary AP: the seed copy of the official README
(``seeds/cico-README.md``, which matches the README revision ``6e50278``). The README at HEAD
(``aliushn/CiCo@d835b52``, the same author's repository) and the arXiv abstract disagree on some
cells; those numbers are kept as alternates with their source. Only mAP was published (no AP50,
AR, nor FPS). Checkpoint links are the seed's Google Drive links; a cell without a link in the
seed has none here (the HEAD README lists some more weight files, named in ``notes``).
"""

from __future__ import annotations

from benchmark.variant_cfg import InputSize, PublishedResult, VariantCfg, shipped_weights_url

__all__ = ["VARIANTS"]

_REPO = "https://github.com/MinghanLi/CiCo"
_COMMIT = "d835b52"  # aliushn/CiCo mirror of MinghanLi/CiCo (see reference/cico.md section 0)
_SEED = "MinghanLi/CiCo README.md (seeds/cico-README.md; = README@6e50278), '{table}'"
_HEAD = "aliushn/CiCo@d835b52 README.md (HEAD; reference/published_results.csv)"
_ABSTRACT = "arXiv:2203.06421 abstract"
_INPUT = InputSize(min_size=384, max_size=640, pad_divisor=32, pad_min=(384, 640))
_DS = {
    "ytvis2019": ("yt19", "ytvis2019_valid", 40, "Quantitative Results on YTVIS2019"),
    "ytvis2021": ("yt21", "ytvis2021_valid", 40, "Quantitative Results on YTVIS2021"),
    "ovis": ("ovis", "ovis_valid", 25, "Quantitative Results on OVIS"),
}
_DRIVE = "https://drive.google.com/file/d/{}/view?usp=sharing"

# (head, backbone, dataset) -> (seed AP, seed Drive id | None, seed file name | None,
#                               alternates [(AP, source, note)], HEAD README weight file | None)
_Cell = tuple[float, str | None, str | None, tuple[tuple[float, str, str], ...], str | None]
_CELLS: dict[tuple[str, str, str], _Cell] = {
    ("yolact", "r50", "ytvis2019"): (
        37.1, "1tCxL1FbzhoSH9Dv2nPx2fG2KBb7HUoAB", "cico_yolact_r50_yt19_f3.pth", (), None,
    ),
    ("condinst", "r50", "ytvis2019"): (
        37.3, "1-pPSs4TFsttlOvd1YVX2heCimG0Dcyda", "cico_CondInst_r50_yt19_f3.pth", (), None,
    ),
    ("yolact", "r101", "ytvis2019"): (39.6, None, None, (), None),
    ("condinst", "r101", "ytvis2019"): (
        39.6, "1h-i9LzZ1ThdI_AXQDyWmRyPGS-fMqPW1", "cico_CondInst_r101_yt19_f3.pth", (), None,
    ),
    ("yolact", "swint", "ytvis2019"): (
        41.8, None, None, (),
        None,  # the seed names 'cico_CondInst_yolact_yt19_f3.pth' with an empty link
    ),
    ("condinst", "swint", "ytvis2019"): (
        41.4, "1Z4zy3L4g12TmA5wEJCFCVRcacZCDm3nA", "cico_CondInst_swint_yt19_f3.pth", (), None,
    ),
    ("yolact", "r50", "ytvis2021"): (
        35.2, "1qSxR_otaZ7UczTNEouyb-fFqPZeTTZk2", "cico_yolact_r50_yt21_f3.pth", (), None,
    ),
    ("condinst", "r50", "ytvis2021"): (
        35.4, "1gT_KOXocut3pYuUUiSA-Vqz5PZ23ncms", "cico_CondInst_r50_yt21_f3.pth", (), None,
    ),
    ("yolact", "r101", "ytvis2021"): (36.5, None, None, (), "cico_yolact_r101_yt21_f3.pth"),
    ("condinst", "r101", "ytvis2021"): (
        36.5, None, None, ((36.7, _HEAD, "README HEAD updated the number"),),
        "cico_CondInst_r101_yt21_f3.pth",
    ),
    ("yolact", "swint", "ytvis2021"): (38.0, None, None, (), None),
    ("condinst", "swint", "ytvis2021"): (
        39.1, "1cH2dK7GxmwcrC4bCKSIB0aF0E8fOXV5_", "cico_CondInst_swint_yt21_f3.pth",
        ((38.9, _ABSTRACT, "the abstract's number"),), None,
    ),
    ("yolact", "r50", "ovis"): (
        17.2, None, None, ((17.4, _HEAD, "README HEAD updated the number"),),
        "cico_yolact_r50_ovis_f3.pth",
    ),
    ("condinst", "r50", "ovis"): (18.0, None, None, (), None),
    ("yolact", "r101", "ovis"): (
        18.7, None, None, ((19.1, _HEAD, "README HEAD updated the number"),),
        "cico_yolact_r101_ovis_f3.pth",
    ),
    ("condinst", "r101", "ovis"): (
        18.2, None, None, ((20.4, _HEAD, "README HEAD updated the number"),),
        "cico_condinst_r101_ovis_f3.pth",
    ),
    ("yolact", "swint", "ovis"): (18.0, None, None, (), None),
    ("condinst", "swint", "ovis"): (
        18.2, "1GEEntoC2or5LKnFPD1z49MuitcP6Xhse", "cico_CondInst_swint_ovis_f3.pth", (),
        None,  # HEAD README has no link for this cell
    ),
}  # fmt: skip


def _variant(head: str, bb: str, ds: str, cell: _Cell) -> VariantCfg:
    short, eval_ds, ncls, table = _DS[ds]
    ap, drive_id, file_name, alternates, head_file = cell
    notes = ["Only mAP was published (no AP50/AP75/AR); no FPS was published for CiCo."]
    if drive_id is None:
        notes.append("No checkpoint link in the seed README.")
    if head_file:
        notes.append(
            f"README HEAD (d835b52) lists weights '{head_file}' for this cell (link not in the seed)."
        )
    published = [PublishedResult(eval_ds, {"AP": ap}, _SEED.format(table=table), kind="readme")]
    published += [
        PublishedResult(
            eval_ds, {"AP": a}, src, kind="paper" if src == _ABSTRACT else "readme", primary=False, note=n
        )
        for a, src, n in alternates
    ]
    return VariantCfg(
        name=f"cico_{head}_{bb}.{ds}",
        method="cico",
        backbone=bb,
        train_dataset=ds,
        eval_dataset=eval_ds,
        num_classes=ncls,
        official_repo=_REPO,
        official_commit=_COMMIT,
        paper="arXiv:2203.06421 (ECCV 2022)",
        config=f"configs/CiCo/cico_{head}_{bb}_{short}.py",
        checkpoint_urls=(_DRIVE.format(drive_id),) if drive_id else (),
        checkpoint_file=file_name or head_file,
        checkpoint_sha256=None,
        manifest=f"cico_{head}_{bb}_{short}_f3.json",
        input_size=_INPUT,
        clip_length=3,
        clip_overlap=1,
        published=tuple(published),
        fps=(),
        notes=tuple(notes),
    )


VARIANTS: tuple[VariantCfg, ...] = tuple(_variant(h, b, d, c) for (h, b, d), c in _CELLS.items())

#: A small CiCo trained from scratch on ToyVIS by ``visrepro train`` (no published numbers; the
#: report lists its runs under "Other runs"). Network: :mod:`methods.cico.small`.
SMALL_VARIANTS: tuple[VariantCfg, ...] = (
    VariantCfg(
        name="cico_yolact_tiny.toyvis",
        method="cico",
        backbone="tiny",
        train_dataset="toyvis",
        eval_dataset="toyvis_valid",
        num_classes=6,
        official_repo=_REPO,
        official_commit=_COMMIT,
        paper="arXiv:2203.06421 (ECCV 2022)",
        # padded to a multiple of 64: its ProtoNet runs on P4..P6 (P6 at stride 64; see small.py)
        input_size=InputSize(min_size=192, max_size=320, pad_divisor=64, pad_min=(192, 320)),
        clip_length=3,
        clip_overlap=1,
        # the reference weights the repository ships (trained once: weights/toyvis/cico_yolact_tiny.toyvis.json)
        checkpoint_urls=(shipped_weights_url("toyvis/cico_yolact_tiny.toyvis.pth"),),
        checkpoint_file="cico_yolact_tiny.toyvis.pth",
        notes=(
            "Not an official variant: CiCo's head, losses and inference with a narrow ResNet-like "
            "backbone and 64-channel FPN/heads, trained from scratch on ToyVIS "
            "(benchmarks/bench_toyvis_cico.sh).",
        ),
    ),
)
