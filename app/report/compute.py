"""The real-vs-synthetic report: one overall score with its parts, and what each part is made of.

Parts, each in [0, 1] (1 = the synthetic set is indistinguishable from the real one on it):

- ``column shapes``: the mean of every column's score (SDMetrics' Column Shapes): the text
  fields' lengths in words and tokens (1 - KS) and each input column and structured output
  field (``output.<name>``) (1 - KS numeric, 1 - TVD categorical);
- ``n-grams``: 1 - TVD between the real and synthetic word and word-pair frequencies, averaged
  over the text fields;
- ``embedding precision`` and ``embedding recall``: k-NN manifolds (``app.map.neighbours``);
- ``cluster balance``: 1 - TVD between how real and synthetic records spread over the latest
  map's clusters (noise counted as one), shown with the clusters that hold only one kind.

The overall score is the mean of the parts that could be computed (no embeddings, no map: those
parts are left out and the notes say why). Identical sets score exactly 1 on every part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.errors import StudioError
from app.core.scheduler import hold_cores
from app.core.tasks import TaskState
from app.map.neighbours import manifold_fit
from app.prompts.structured import parse_output
from app.report.columns import (
    ColumnShape,
    TextField,
    column_shapes,
    compare_columns,
    frequency_similarity,
    record_columns,
)
from app.store.maps import latest_map, map_points
from app.store.notebook import Notebook
from app.store.records import sample_prompt_versions
from app.store.report import (
    ReportRow,
    current_vectors,
    real_sample_ids,
    report_rows,
    synthetic_sample_ids,
)

PARTS = ("column shapes", "n-grams", "embedding precision", "embedding recall", "cluster balance")
SYNTHETIC_SETS = {"kept": "the kept set", "all": "all synthetic samples"}
SHOWN = 5  # records listed at each end of the nearest-real distances


@dataclass(frozen=True)
class Neighbour:
    """A synthetic record and its nearest real record."""

    record_id: int
    real_id: int
    distance: float
    text: str
    real_text: str

    def to_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "nearest_real_id": self.real_id, "distance": self.distance,
                "text": self.text, "real_text": self.real_text}


@dataclass
class EmbeddingPart:
    k: int
    precision: float
    recall: float
    real: int  # records with a current vector
    synthetic: int
    distances: list[float]  # each synthetic record's cosine distance to its nearest real record
    real_distances: list[float]  # each real record's to its nearest other real record (the baseline)
    closest: list[Neighbour]
    farthest: list[Neighbour]

    def to_dict(self) -> dict[str, Any]:
        d = np.asarray(self.distances or [0.0])
        b = np.asarray(self.real_distances or [0.0])
        return {"k": self.k, "precision": self.precision, "recall": self.recall, "real_records": self.real,
                "synthetic_records": self.synthetic,
                "nearest_real_distance": {"median": float(np.median(d)), "min": float(d.min()), "max": float(d.max()),
                                          "near_copies": int((d < 1e-3).sum())},
                "real_to_real_distance": {"median": float(np.median(b))},
                "closest": [n.to_dict() for n in self.closest], "farthest": [n.to_dict() for n in self.farthest]}


@dataclass(frozen=True)
class ClusterRow:
    cluster: int
    label: str
    real: int
    synthetic: int

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "label": self.label, "real": self.real, "synthetic": self.synthetic}


@dataclass
class ClusterPart:
    map_id: int
    balance: float
    clusters: list[ClusterRow]  # noise (-1) included, largest first
    real_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)  # map positions, for the plot
    synthetic_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)

    @property
    def only_real(self) -> list[ClusterRow]:
        return [c for c in self.clusters if c.cluster >= 0 and c.real and not c.synthetic]

    @property
    def only_synthetic(self) -> list[ClusterRow]:
        return [c for c in self.clusters if c.cluster >= 0 and c.synthetic and not c.real]

    def to_dict(self) -> dict[str, Any]:
        return {"map_id": self.map_id, "balance": self.balance, "clusters": [c.to_dict() for c in self.clusters],
                "only_real": [c.to_dict() for c in self.only_real],
                "only_synthetic": [c.to_dict() for c in self.only_synthetic]}


@dataclass
class Report:
    synthetic_set: str  # what the synthetic records are: "the kept set", "version v1", ...
    real_count: int
    synthetic_count: int
    parts: dict[str, float]  # the parts that could be computed, in PARTS order
    columns: list[ColumnShape]
    fields: list[TextField]
    embedding: EmbeddingPart | None = None
    clusters: ClusterPart | None = None
    notes: list[str] = field(default_factory=list)
    top: int = 15  # n-grams listed per side

    @property
    def score(self) -> float:
        return float(np.mean(list(self.parts.values()))) if self.parts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"synthetic_set": self.synthetic_set, "real_records": self.real_count,
                "synthetic_records": self.synthetic_count, "score": self.score, "parts": self.parts,
                "columns": [c.to_dict() for c in self.columns], "text_fields": [f.to_dict(self.top) for f in self.fields],
                "embedding": self.embedding.to_dict() if self.embedding else None,
                "clusters": self.clusters.to_dict() if self.clusters else None, "notes": self.notes}


def synthetic_ids(nb: Notebook, synthetic: str = "kept") -> list[int]:
    """The synthetic samples a report compares: ``kept`` (the funnel's kept set) or ``all``."""
    if synthetic not in SYNTHETIC_SETS:
        raise StudioError(f"unknown synthetic set {synthetic!r}: use {' or '.join(SYNTHETIC_SETS)}")
    every = synthetic_sample_ids(nb)
    if synthetic == "all":
        return every
    from app.quality.funnel import compute_funnel

    kept = set(compute_funnel(nb, save=False).kept_ids)
    return [rid for rid in every if rid in kept]


def compute_report(nb: Notebook, *, synthetic: str = "kept", record_ids: list[int] | None = None,
                   label: str | None = None, k: int = 5, top: int = 15, task: TaskState | None = None) -> Report:
    """Compare the notebook's real samples with its synthetic ones.

    The synthetic records are ``record_ids`` when given (e.g. a frozen dataset version's; real
    records among them are left out), else the ``synthetic`` set (``kept`` or ``all``).
    """
    task = task or TaskState()
    task.set_progress(0, 0, "reading records")
    real = report_rows(nb, real_sample_ids(nb))
    if not real:
        raise StudioError("a report compares synthetic records with real ones, and this notebook has no real "
                          "records with text: import some (synth-studio import NB.db FILE --origin real)")
    ids = record_ids if record_ids is not None else synthetic_ids(nb, synthetic)
    what = label or ("the given records" if record_ids is not None else SYNTHETIC_SETS[synthetic])
    synth = [r for r in report_rows(nb, ids) if r.origin != "real"]
    if not synth:
        raise StudioError(f"no synthetic records with text in {what}: nothing to compare with the real ones"
                          + (" (try --all for every synthetic sample)" if record_ids is None and synthetic == "kept"
                             else ""))
    task.check()
    task.set_progress(0, 0, "comparing columns")
    # a record's columns: its variables and, for a structured output, its fields (output.<name>)
    real_cols = [record_columns(r.output, r.variables) for r in real]
    synth_cols = [record_columns(r.output, r.variables) for r in synth]
    out_fields = {k for r in real + synth for k in (parse_output(r.output) or {})}
    fields, columns, notes = compare_columns([(r.output, c) for r, c in zip(real, real_cols)],
                                             [(r.output, c) for r, c in zip(synth, synth_cols)], task,
                                             output_fields=out_fields)
    parts: dict[str, float] = {}
    if columns:
        parts["column shapes"] = float(np.mean([c.score for c in columns]))
    scored = [f for f in fields if f.real.count and f.synthetic.count]
    if scored:
        parts["n-grams"] = float(np.mean([f.ngram_similarity for f in scored]))
    task.check()
    embedding = _embedding_part(nb, real, synth, k, task, notes)
    if embedding is not None:
        parts["embedding precision"], parts["embedding recall"] = embedding.precision, embedding.recall
    clusters = _cluster_part(nb, real, synth, notes)
    if clusters is not None:
        parts["cluster balance"] = clusters.balance
    parts = {p: parts[p] for p in PARTS if p in parts}
    task.set_progress(1, 1, "report done")
    return Report(what, len(real), len(synth), parts, columns, fields, embedding, clusters, notes, top)


def _embedding_part(nb: Notebook, real: list[ReportRow], synth: list[ReportRow], k: int, task: TaskState,
                    notes: list[str]) -> EmbeddingPart | None:
    task.set_progress(0, 0, "loading embeddings")
    sha, real_ids, rv = current_vectors(nb, [r.id for r in real])
    if sha is None:
        notes.append("no embeddings yet: embedding precision and recall left out (synth-studio embed NB.db)")
        return None
    _, synth_ids, sv = current_vectors(nb, [r.id for r in synth], sha)
    missing = len(real) - len(real_ids) + len(synth) - len(synth_ids)
    if missing:
        notes.append(f"{missing} records have no current embedding and are left out of the embedding parts "
                     "(synth-studio embed NB.db)")
    if len(real_ids) < 2 or len(synth_ids) < 2:
        notes.append("embedding precision and recall need at least 2 embedded real and 2 embedded synthetic records")
        return None
    with hold_cores("computing the report", task):  # BLAS products take every core, like a map
        fit = manifold_fit(rv, sv, k, task)
    texts = {r.id: r.output for r in real + synth}
    order = np.argsort(fit.nearest_real_distance, kind="stable")

    def neighbour(i: int) -> Neighbour:
        rid, real_id = synth_ids[i], real_ids[int(fit.nearest_real[i])]
        return Neighbour(rid, real_id, float(fit.nearest_real_distance[i]), texts[rid], texts[real_id])

    return EmbeddingPart(fit.k, fit.precision, fit.recall, len(real_ids), len(synth_ids),
                         fit.nearest_real_distance.tolist(), fit.real_nearest_distance.tolist(),
                         [neighbour(int(i)) for i in order[:SHOWN]],
                         [neighbour(int(i)) for i in order[::-1][:SHOWN]])


def _cluster_part(nb: Notebook, real: list[ReportRow], synth: list[ReportRow], notes: list[str]) -> ClusterPart | None:
    stored = latest_map(nb)
    if stored is None:
        notes.append("no map yet: cluster balance left out (synth-studio map NB.db)")
        return None
    on_map = {p[0]: p for p in map_points(nb, stored.id)}
    rp = [on_map[r.id] for r in real if r.id in on_map]
    sp = [on_map[r.id] for r in synth if r.id in on_map]
    rc, sc = [p[3] for p in rp], [p[3] for p in sp]
    off = len(real) + len(synth) - len(rc) - len(sc)
    if off:
        notes.append(f"{off} records are not on the latest map (made after it): recompute it (synth-studio map NB.db)")
    if not rc or not sc:
        notes.append("cluster balance needs real and synthetic records on the latest map")
        return None
    r, s = Counter(rc), Counter(sc)
    rows = [ClusterRow(c, stored.labels.get(c, "noise" if c < 0 else ""), r[c], s[c]) for c in r.keys() | s.keys()]
    rows.sort(key=lambda row: (-(row.real + row.synthetic), row.cluster))
    return ClusterPart(stored.id, frequency_similarity(r, s), rows,
                       np.array([p[1:3] for p in rp], float), np.array([p[1:3] for p in sp], float))


# -- a generated table vs the real one (``synth-studio metrics``) ------------------------------------


@dataclass
class TableComparison:
    """Real table rows (the notebook's input rows) against generated rows, column by column."""

    real_rows: int
    synthetic_rows: int
    columns: list[ColumnShape]  # numeric (KSComplement) and categorical (TVComplement) columns
    text_columns: list[str]  # columns of free text: compared in the report's n-grams, not here
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"real_rows": self.real_rows, "synthetic_rows": self.synthetic_rows,
                "columns": [c.to_dict() for c in self.columns], "text_columns": self.text_columns,
                "notes": self.notes}


def compare_table(nb: Notebook, *, record_ids: list[int] | None = None,
                  task: TaskState | None = None) -> TableComparison | None:
    """Each column of the real table (the variables of the input rows, ``role = 'input'``)
    against the same column of the generated rows: the structured output's fields of every
    synthetic sample whose output is a JSON object (of ``record_ids`` only, if given), with its
    variables for the columns the prompt was given or sampled (``columns:``) rather than wrote.

    None when there is nothing to compare: no input rows, or no structured outputs.
    """
    real = [v for _, v in nb.input_rows()]
    if not real:
        return None
    ids = record_ids if record_ids is not None else synthetic_sample_ids(nb)
    synth = [record_columns(r.output, r.variables) for r in report_rows(nb, ids)
             if r.origin != "real" and parse_output(r.output) is not None]
    if not synth:
        return None
    text, shapes, notes = column_shapes(real, synth, task)
    return TableComparison(len(real), len(synth), shapes, [f.name for f in text], notes)


def compare_tables(nb: Notebook, task: TaskState | None = None) -> dict[str, TableComparison]:
    """:func:`compare_table` for each prompt version's records ("name vN"; records no prompt
    made are "imported"), for the prompt versions that have structured outputs."""
    if not nb.input_rows(limit=1):
        return {}
    made_by = sample_prompt_versions(nb)
    labels = {pv.id: pv.label for pv in nb.prompt_versions()}
    groups: dict[str, list[int]] = {}
    for rid in synthetic_sample_ids(nb):
        pv = made_by.get(rid)
        groups.setdefault(labels.get(pv, "imported") if pv is not None else "imported", []).append(rid)
    out = {}
    for label, ids in groups.items():
        table = compare_table(nb, record_ids=ids, task=task)
        if table is not None:
            out[label] = table
    return out
