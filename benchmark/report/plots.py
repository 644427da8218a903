"""The report's figures (matplotlib, PNG): readable at a glance, and honest when there is no data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmark.report.collect import Row

__all__ = ["plot_all"]

_PUB, _REP = "#9aa0a6", "#1a73e8"


def _empty(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ap(row: Row, which: str) -> float | None:
    v = next(v for v in row.verdicts if v.metric == "AP")
    return v.published if which == "published" else v.reproduced


def ap_vs_fps(rows: Sequence[Row], path: Path) -> Path:
    """Published (grey) and reproduced (blue) points; FPS labelled with its protocol."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = 0
    for r in rows:
        pub_ap = _ap(r, "published")
        pub_fps = r.published_fps.split(" ")[0] if r.published_fps else ""
        if pub_ap is not None and pub_fps:
            ax.scatter(float(pub_fps), pub_ap, color=_PUB, marker="o", s=40)
            ax.annotate(r.variant + " (paper)", (float(pub_fps), pub_ap), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")  # fmt: skip
            pts += 1
        rep_ap = _ap(r, "reproduced")
        if rep_ap is not None and r.fps:
            ax.scatter(r.fps["fps"], rep_ap, color=_REP, marker="s", s=40)
            label = f"{r.run} ({r.fps.get('protocol')}, {r.fps.get('device_name') or r.fps.get('device')})"
            ax.annotate(label, (r.fps["fps"], rep_ap), fontsize=7, xytext=(4, -8), textcoords="offset points")
            pts += 1
    if pts == 0:
        _empty(ax, "no run has both AP and FPS yet")
    else:
        ax.set_xlabel("frames per second")
        ax.set_ylabel("AP (%)")
        ax.grid(alpha=0.3)
        ax.set_title("AP vs FPS: published (grey circles) and reproduced (blue squares)", fontsize=10)
    return _save(fig, path)


def deltas(rows: Sequence[Row], path: Path) -> Path:
    """Reproduced minus published AP per reproduced seed row, with the bootstrap interval."""
    done = [r for r in rows if _ap(r, "reproduced") is not None and _ap(r, "published") is not None]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(done) + 1.2)))
    if not done:
        _empty(ax, "no published row has been reproduced yet\n(see the table for the reason of each row)")
        return _save(fig, path)
    ys = range(len(done))
    d = [(_ap(r, "reproduced") or 0) - (_ap(r, "published") or 0) for r in done]
    ax.barh(list(ys), d, color=[_REP if abs(x) <= 0.5 else "#d93025" for x in d])
    for y, r in zip(ys, done, strict=True):
        if r.ci is not None:
            pub = _ap(r, "published") or 0
            ax.plot([r.ci[0] - pub, r.ci[1] - pub], [y, y], color="black", lw=1)
    ax.set_yticks(list(ys), [f"{r.variant} [{r.split}]" for r in done], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("reproduced - published AP (points); line: bootstrap 95% interval")
    return _save(fig, path)


def per_category(rows: Sequence[Row], path: Path) -> Path:
    """Per-category AP of every evaluated run (grouped bars)."""
    runs = [r for r in rows if r.per_category]
    fig, ax = plt.subplots(figsize=(8, 4))
    if not runs:
        _empty(ax, "no evaluated run yet")
        return _save(fig, path)
    cats = sorted({c for r in runs for c in r.per_category}, key=lambda c: int(c) if c.isdigit() else c)
    width = 0.8 / len(runs)
    for k, r in enumerate(runs):
        xs = [i + k * width for i in range(len(cats))]
        ax.bar(xs, [r.per_category.get(c, 0.0) for c in cats], width=width, label=r.run)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cats))], cats, fontsize=8)
    ax.set_xlabel("category id")
    ax.set_ylabel("AP (%)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def speed_vs_size(rows: Sequence[Row], path: Path) -> Path:
    """FPS against input pixels for every run with a speed measurement."""
    fig, ax = plt.subplots(figsize=(7, 4))
    pts = [r for r in rows if r.fps and r.fps.get("input_shape")]
    if not pts:
        _empty(ax, "no speed measurement yet")
        return _save(fig, path)
    for r in pts:
        shape = r.fps["input_shape"] if r.fps else []
        px = shape[-1] * shape[-2]
        ax.scatter(px, r.fps["fps"] if r.fps else 0, s=40)
        ax.annotate(f"{r.run} ({r.fps.get('protocol') if r.fps else ''})", (px, r.fps["fps"] if r.fps else 0),
                    fontsize=7, xytext=(4, 2), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("input pixels (H x W after resize and padding)")
    ax.set_ylabel("frames per second")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_all(seed_rows: Sequence[Row], other_rows: Sequence[Row], out_dir: Path) -> dict[str, Path]:
    """Write every figure into ``out_dir``; returns ``{name: path}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [*seed_rows, *other_rows]
    return {
        "AP vs FPS": ap_vs_fps(rows, out_dir / "ap_vs_fps.png"),
        "Reproduction deltas": deltas(seed_rows, out_dir / "deltas.png"),
        "Per-category AP": per_category(rows, out_dir / "per_category.png"),
        "Speed vs input size": speed_vs_size(rows, out_dir / "speed_vs_size.png"),
    }
