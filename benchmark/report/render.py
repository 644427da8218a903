"""``visrepro report``: Markdown and a self-contained HTML page from the flat result files.

The HTML embeds its figures as data URIs and its style inline: it opens offline, with no script
and nothing fetched (``dvc plots show`` pages load vega from the network and render blank offline).
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmark import __version__
from benchmark._io import atomic_open
from benchmark.report.collect import (
    REPORT_METRICS,
    RetrainRow,
    Row,
    collect_retraining,
    collect_rows,
    e2e_fps,
    load_runs,
)
from benchmark.report.plots import plot_all

__all__ = ["configure", "render_html", "render_markdown", "run"]

log = logging.getLogger(__name__)

_HEAD = ["variant", "run", "published on", "scored on", *[f"{m} pub / rep (Δ)" for m in REPORT_METRICS],
         "AP 95% CI", "FPS pub", "FPS rep", "status"]  # fmt: skip


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _cells(r: Row) -> list[str]:
    cells = [r.variant, r.run or "-", r.published_on, r.split]
    for v in r.verdicts:
        if v.reproduced is None:
            cells.append(f"{_num(v.published)} / -")
        else:
            d = v.delta
            cells.append(
                f"{_num(v.published)} / {_num(v.reproduced)}" + (f" ({d:+.1f})" if d is not None else "")
            )
    cells.append(f"[{r.ci[0]:.1f}, {r.ci[1]:.1f}]" if r.ci else "-")
    cells.append(r.published_fps or "-")
    if r.fps:
        dev = r.fps.get("device_name") or r.fps.get("device")
        e2e = e2e_fps(r.fps)
        also = f"; e2e {e2e:.1f}" if e2e is not None and r.fps.get("protocol") != "e2e" else ""
        cells.append(
            f"{r.fps['fps']:.1f} ({r.fps.get('protocol')}{also}; {dev}, {r.fps.get('precision')}, "
            f"{r.fps.get('threads')} thread(s))"
        )
    else:
        cells.append("-")
    cells.append(r.reason or "reproduced")
    return cells


def _md_grid(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _md_table(rows: Sequence[Row]) -> str:
    return _md_grid(_HEAD, [_cells(r) for r in rows])


_INTRO = (
    "Published numbers (in percent, from the seeds' README tables; sources below) beside the "
    "numbers this suite reproduced. Δ = reproduced - published. A row that was not run says why. "
    "The YouTube-VIS and OVIS servers no longer score submissions and valid/test GT was never "
    "public, so reproductions are scored locally on `valid_sub` (held-out train videos) or on ToyVIS; "
    "those numbers are not directly comparable with the official-valid numbers, which is why the "
    "split is named in every row. FPS is comparable only under the same protocol on the same GPU."
)


_RETRAIN_HEAD = ["model", "reference weights (sha256)", "trained with", "reference AP [95% CI]", "seed trials AP",
                 "retrained", "retrained AP [95% CI]", "Δ", "retraining"]  # fmt: skip

_RETRAIN_INTRO = (
    "The small models are scored from reference weights the repository ships (trained once, "
    "sha256-verified by the fetch stage). Retraining is off by default (`retrain: *training` in "
    "params.yaml switches it on); a retrained model is compared with the reference weights' AP and "
    "with the spread over the recorded seed trials of the same recipe: float sums, hence the "
    "trained weights, differ between CPUs, thread counts and precisions."
)


def _ap_cell(ap: tuple[float, tuple[float, float] | None] | None) -> str:
    if ap is None:
        return "-"
    return f"{ap[0]:.1f}" + (f" [{ap[1][0]:.1f}, {ap[1][1]:.1f}]" if ap[1] else "")


def _training(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    prec = s.get("precision")
    asked = s.get("precision_requested")
    prec_text = f"{prec} ({asked})" if asked and asked != prec else str(prec)
    threads = s.get("threads")
    return (
        f"{s.get('step')} steps, {prec_text}, {threads if threads else '?'} thread(s), "
        f"{float(s.get('wall_s') or 0) / 60:.1f} min" + (f" on {s['cpu']}" if s.get("cpu") else "")
    )


def _retrain_cells(r: RetrainRow) -> list[str]:
    seeds = ", ".join(
        f"{t['AP']:.1f} (seed {t.get('seed')}, {t.get('threads')} thr, {t.get('precision', '?')})"
        for t in r.record.get("seed_trials", [])
    )
    d = r.delta
    sha = str(r.record.get("sha256", ""))[:12]
    return [
        r.variant, f"`{sha}`", _training(r.record.get("train_summary")), _ap_cell(r.reference_ap),
        seeds or "-", r.retrain or "off", _ap_cell(r.retrained_ap), "-" if d is None else f"{d:+.1f}",
        _training(r.summary) if r.retrain else "-",
    ]  # fmt: skip


def _notes(rows: Sequence[RetrainRow]) -> list[str]:
    return [f"{r.variant}: {r.record['note']}" for r in rows if r.record.get("note")]


def _md_retrain(rows: Sequence[RetrainRow]) -> str:
    notes = "".join(f"\n- {n}" for n in _notes(rows))
    return _md_grid(_RETRAIN_HEAD, [_retrain_cells(r) for r in rows]) + (
        f"\nNotes:{notes}\n" if notes else ""
    )


def _html_retrain(rows: Sequence[RetrainRow]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _RETRAIN_HEAD)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _retrain_cells(r)) + "</tr>" for r in rows
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in _notes(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + (
        f"<p>Notes:</p><ul>{notes}</ul>" if notes else ""
    )


def render_markdown(
    seed: Sequence[Row],
    others: Sequence[Row],
    plots: dict[str, Path],
    out_dir: Path,
    retraining: Sequence[RetrainRow] = (),
) -> str:
    parts = [f"# visrepro report\n\n{_INTRO}\n", "## Published tables\n", _md_table(seed)]
    parts += ["\n## Other runs (ToyVIS models, oracle)\n", _md_table(others)]
    parts += [
        "\n## Small models: reference weights and retraining\n",
        f"{_RETRAIN_INTRO}\n",
        _md_retrain(retraining),
    ]
    parts.append("\n## Figures\n")
    parts += [f"### {name}\n\n![{name}]({p.relative_to(out_dir).as_posix()})\n" for name, p in plots.items()]
    parts.append("\n## Sources of the published numbers\n")
    seen = []
    for r in seed:
        if r.source and (r.variant, r.source) not in seen:
            seen.append((r.variant, r.source))
    parts += [f"- `{v}`: {s}" for v, s in seen]
    parts.append(f"\n\n_Generated by visrepro {__version__} (`visrepro report`); do not edit._\n")
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f1f3f4}tr.ok td:last-child{color:#137333}tr.missing td{color:#777}img{max-width:100%;border:1px solid #eee}
code{background:#f1f3f4;padding:0 3px}"""


def _html_table(rows: Sequence[Row]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEAD)
    body = []
    for r in rows:
        cls = "ok" if r.reason is None else "missing"
        body.append(
            f'<tr class="{cls}">' + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(
    seed: Sequence[Row], others: Sequence[Row], plots: dict[str, Path], retraining: Sequence[RetrainRow] = ()
) -> str:
    figs = []
    for name, p in plots.items():
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        figs.append(
            f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        )
    sources = sorted({(r.variant, r.source) for r in seed if r.source})
    src = "".join(f"<li><code>{html.escape(v)}</code>: {html.escape(s)}</li>" for v, s in sources)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>visrepro report</title><style>{_CSS}</style>"
        f"</head><body><h1>visrepro report</h1><p>{html.escape(_INTRO)}</p>"
        f"<h2>Published tables</h2>{_html_table(seed)}<h2>Other runs (ToyVIS models, oracle)</h2>"
        f"{_html_table(others)}<h2>Small models: reference weights and retraining</h2>"
        f"<p>{html.escape(_RETRAIN_INTRO)}</p>{_html_retrain(retraining)}<h2>Figures</h2>{''.join(figs)}<h2>Sources of the published numbers</h2>"
        f"<ul>{src}</ul><p><em>Generated by visrepro {__version__}.</em></p></body></html>\n"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        required=True,
        help="params file with the 'runs:' and 'reference_runs:' mappings (params.yaml)",
    )
    parser.add_argument("--results", default="results", help="directory of <run>/metrics.json, speed.json")
    parser.add_argument("--out", default="reports", help="output directory (README.md, report.html, plots/)")
    parser.add_argument("--checkpoints", default="checkpoints", help="where official checkpoints are kept")
    parser.add_argument("--data-root", help="data root of the catalog (default ./datasets)")


def run(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs)
    seed, others = collect_rows(runs, args.results, checkpoints=args.checkpoints, data_root=args.data_root)
    params = yaml.safe_load(Path(args.runs).read_text()) or {}
    retraining = collect_retraining(params, args.results)
    out = Path(args.out)
    plots = plot_all(seed, others, out / "plots")
    with atomic_open(out / "README.md") as fh:
        fh.write(render_markdown(seed, others, plots, out, retraining))
    with atomic_open(out / "report.html") as fh:
        fh.write(render_html(seed, others, plots, retraining))
    done = sum(r.reason is None for r in seed)
    log.info(
        "report: %d published rows (%d reproduced), %d other runs -> %s", len(seed), done, len(others), out
    )
    print(
        f"wrote {out / 'README.md'} and {out / 'report.html'} ({len(seed)} published rows, {done} reproduced)"
    )
    return 0
