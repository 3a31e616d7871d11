"""The report as one self-contained HTML page: every figure an inline PNG (a data URI), no
stylesheet, script, font or link to fetch, so it opens offline, mails as one file and renders
the same in a browser and in the window's QTextBrowser (which is why the layout is plain tables
and attributes rather than modern CSS)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from html import escape
from typing import Any

from app.core.tasks import TaskState
from app.report import plots
from app.report.columns import TextField
from app.report.compute import ClusterRow, Neighbour, Report

MAX_COLUMN_PLOTS = 12


@dataclass(frozen=True)
class ReportPage:
    """A computed report and its page (what ``app.jobs.report_job`` hands the CLI and the window)."""

    report: Report
    html: str


PART_MEANING = {
    "column shapes": "lengths and input columns: 1 - KS (numeric), 1 - TVD (categorical), averaged",
    "n-grams": "1 - TVD of word and word-pair frequencies",
    "embedding precision": "share of synthetic records inside the real records' k-NN balls (they look real)",
    "embedding recall": "share of real records inside the synthetic records' k-NN balls (real variety covered)",
    "cluster balance": "1 - TVD of how real and synthetic records spread over the map's clusters",
}
STYLE = """
body { font-family: sans-serif; font-size: 10pt; color: #222; margin: 16px; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; margin-top: 18px; } h3 { font-size: 11pt; }
th { background-color: #eef1f5; text-align: left; }
td.num { text-align: right; }
.muted { color: #666; }
.score { font-size: 26pt; font-weight: bold; }
"""


def _colour(score: float) -> str:
    return "#1b7f4b" if score >= 0.9 else "#a36a00" if score >= 0.75 else "#b3261e"


def _score(v: float) -> str:
    return f'<b style="color:{_colour(v)}">{v:.3f}</b>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table border="1" cellspacing="0" cellpadding="4">\n<tr>{head}</tr>\n{body}</table>\n'


def _img(uri: str, width: int) -> str:
    return f'<p><img src="{uri}" width="{width}"></p>\n'


def _short(text: str, width: int = 140) -> str:
    text = " ".join(text.split())
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def _ngrams(field: TextField, top: int) -> str:
    rows = []
    ru, su = field.real.top_unigrams(top), field.synthetic.top_unigrams(top)
    rb, sb = field.real.top_bigrams(top), field.synthetic.top_bigrams(top)
    nr, ns = max(1, sum(field.real.unigrams.values())), max(1, sum(field.synthetic.unigrams.values()))
    nrb, nsb = max(1, sum(field.real.bigrams.values())), max(1, sum(field.synthetic.bigrams.values()))

    def cell(items: list[tuple[str, int]], i: int, n: int) -> str:
        return f"{escape(items[i][0])} <span class=muted>{items[i][1] / n:.1%}</span>" if i < len(items) else ""

    for i in range(max(len(ru), len(su), len(rb), len(sb))):
        rows.append([str(i + 1), cell(ru, i, nr), cell(su, i, ns), cell(rb, i, nrb), cell(sb, i, nsb)])
    return _table(["#", "real words", "synthetic words", "real word pairs", "synthetic word pairs"], rows)


def _neighbours(items: list[Neighbour]) -> str:
    return _table(["record", "distance", "text", "nearest real record"],
                  ([f"#{n.record_id}", f"{n.distance:.4f}", _short(n.text), f"#{n.real_id}: {_short(n.real_text)}"]
                   for n in items), numeric=(1,))


def _clusters(rows: list[ClusterRow]) -> str:
    return _table(["cluster", "label", "real", "synthetic"],
                  ([("noise" if c.cluster < 0 else str(c.cluster)), escape(c.label), str(c.real), str(c.synthetic)]
                   for c in rows), numeric=(2, 3))


def render_html(report: Report, *, title: str = "", task: TaskState | None = None) -> str:
    """The whole report page; ``task`` is checked for a cancel between figures."""
    task = task or TaskState()
    out: list[str] = []
    add = out.append

    def figure(make: Callable[[], str], width: int) -> None:
        task.check()
        add(_img(make(), width))

    name = escape(title or "Real vs synthetic")
    add(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{name}</title>"
        f"<style>{STYLE}</style></head><body>\n")
    add(f"<h1>{name}</h1>\n<p class=muted>{report.real_count} real records vs {report.synthetic_count} synthetic "
        f"records ({escape(report.synthetic_set)}); made {datetime.now():%Y-%m-%d %H:%M}</p>\n")
    add(f'<p><span class=score style="color:{_colour(report.score)}">{report.score:.3f}</span> '
        f"overall (the mean of {len(report.parts)} parts; 1 = indistinguishable)</p>\n")
    add(_table(["part", "score", "what it measures"],
               ([escape(p), _score(v), escape(PART_MEANING[p])] for p, v in report.parts.items()), numeric=(1,)))
    figure(lambda: plots.parts_png(report), 650)
    if report.notes:
        add("<h3>Notes</h3>\n<ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>\n")

    add("<h2>Column shapes</h2>\n<p class=muted>Each column's real and synthetic distributions, as SDMetrics' "
        "Quality Report compares them: 1 - Kolmogorov-Smirnov statistic for numbers, 1 - total variation "
        "distance for categories.</p>\n")
    add(_table(["column", "kind", "metric", "score", "real", "synthetic"],
               ([escape(c.column), c.kind, c.metric, _score(c.score), escape(c.real), escape(c.synthetic)]
                for c in report.columns), numeric=(3,)))

    for f in report.fields:
        if not (f.real.count and f.synthetic.count):
            continue
        add(f"<h2>Text: {escape(f.name)}</h2>\n")
        add(_table(["", "real", "synthetic"], [
            ["records", str(f.real.count), str(f.synthetic.count)],
            ["mean words", f"{_mean(f.real.words):.1f}", f"{_mean(f.synthetic.words):.1f}"],
            ["mean tokens", f"{_mean(f.real.tokens):.1f}", f"{_mean(f.synthetic.tokens):.1f}"],
            ["vocabulary (distinct words)", str(f.real.vocabulary), str(f.synthetic.vocabulary)],
        ], numeric=(1, 2)))
        add(f"<p>n-gram similarity {_score(f.ngram_similarity)}; {f.shared_vocabulary:.1%} of the synthetic "
            "words also occur in the real text.</p>\n")
        figure(partial(plots.lengths_png, f), 800)
        add(f"<h3>Top words and word pairs ({escape(f.name)})</h3>\n")
        add(_ngrams(f, report.top))

    inputs = [c for c in report.columns if c.column.startswith("variables.")]
    if inputs:
        add("<h2>Input columns</h2>\n")
        for c in inputs[:MAX_COLUMN_PLOTS]:
            figure(partial(plots.column_png, c), 650)
        if len(inputs) > MAX_COLUMN_PLOTS:
            add(f"<p class=muted>{len(inputs) - MAX_COLUMN_PLOTS} more columns in the table above.</p>\n")

    add("<h2>Embeddings</h2>\n")
    emb = report.embedding
    if emb is None:
        add("<p class=muted>Not computed: see the notes.</p>\n")
    else:
        add(f"<p>k-NN precision {_score(emb.precision)} and recall {_score(emb.recall)} (k = {emb.k}; "
            f"{emb.real} real and {emb.synthetic} synthetic records with a current vector; Kynkäänniemi et al. "
            "2019).</p>\n")
        figure(lambda: plots.nearest_png(emb), 650)
        add("<h3>Closest to a real record</h3>\n" + _neighbours(emb.closest))
        add("<h3>Farthest from any real record</h3>\n" + _neighbours(emb.farthest))

    add("<h2>Clusters</h2>\n")
    cl = report.clusters
    if cl is None:
        add("<p class=muted>Not computed: see the notes.</p>\n")
    else:
        figure(lambda: plots.map_png(cl), 550)
        add(f"<h3>Only real records ({len(cl.only_real)} clusters)</h3>\n<p class=muted>What the synthetic set "
            "misses.</p>\n" + (_clusters(cl.only_real) if cl.only_real else "<p>none</p>\n"))
        add(f"<h3>Only synthetic records ({len(cl.only_synthetic)} clusters)</h3>\n<p class=muted>What the "
            "model made up.</p>\n" + (_clusters(cl.only_synthetic) if cl.only_synthetic else "<p>none</p>\n"))
        add(f"<h3>Every cluster of map {cl.map_id}</h3>\n" + _clusters(cl.clusters[:40]))
    add("</body></html>\n")
    return "".join(out)


def _mean(values: Sequence[Any]) -> float:
    return sum(values) / len(values) if values else 0.0
