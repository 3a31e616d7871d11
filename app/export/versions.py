"""Versions you can diff: freeze the funnel's kept set under a tag, list versions with their
lineage, and compare two versions (or a version and the kept set now).

A version holds each kept record's text (and its hash), status, scores and cluster of the
latest map, plus a manifest of how the set was made: prompt versions, active criteria and
rules, model hashes, the funnel's stages and totals. Its content hash is a sha256 over the
sorted (record id, text hash) pairs and the canonical manifest JSON, so the same kept set made
the same way hashes the same, and any change to the records or how they were made shows.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import StudioError
from app.quality.diffs import Span, word_diff
from app.quality.funnel import compute_funnel
from app.store.criteria import latest_versions, version_by_id
from app.store.maps import latest_map, map_points
from app.store.notebook import Notebook
from app.store.trust import score_table
from app.store.versions import (
    DatasetVersion,
    VersionRecord,
    get_version,
    kept_rows,
    list_versions,
    prompt_versions_of,
    run_models_of,
    save_version,
    score_sources_of,
    step_settings,
    tag_exists,
    trust_overrides,
    version_records,
)

CURRENT = "current"  # the word that names the kept set as it is now, wherever a version tag is asked for
MANIFEST_FORMAT = 1


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` that the content hash reads (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(records: Iterable[VersionRecord], manifest: dict[str, Any]) -> str:
    """sha256 over the sorted (id, text hash) pairs, then the canonical manifest JSON."""
    h = hashlib.sha256()
    for rid, th in sorted((r.record_id, r.text_hash) for r in records):
        h.update(f"{rid}\t{th}\n".encode())
    h.update(canonical_json(manifest).encode("utf-8"))
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A set of records with its manifest: a stored version, or the kept set now (``tag`` = ``current``)."""

    tag: str
    content_hash: str
    manifest: dict[str, Any]
    records: tuple[VersionRecord, ...]
    version: DatasetVersion | None = None  # None for the kept set now

    @property
    def by_id(self) -> dict[int, VersionRecord]:
        return {r.record_id: r for r in self.records}


# -- freezing ---------------------------------------------------------------------------------------


def kept_snapshot(nb: Notebook, *, save_verdicts: bool = False) -> Snapshot:
    """The funnel's kept set now, as a version would freeze it (nothing is written but, if asked, the verdicts)."""
    result = compute_funnel(nb, save=save_verdicts)
    ids = result.kept_ids
    scores = score_table(nb, ids)
    stored_map = latest_map(nb)
    clusters = {p[0]: p[3] for p in map_points(nb, stored_map.id)} if stored_map else {}
    records = tuple(VersionRecord(rid, text_hash(text), text, status, dict(sorted(scores.get(rid, {}).items())),
                                  clusters.get(rid) if stored_map else None)
                    for rid, text, status in kept_rows(nb, ids))
    manifest = build_manifest(nb, [r.record_id for r in records], result.stages, records,
                              None if stored_map is None else {"method": stored_map.method,
                                                               "params": stored_map.params})
    return Snapshot(CURRENT, content_hash(records, manifest), manifest, records)


def build_manifest(nb: Notebook, ids: Sequence[int], stages: Sequence[dict[str, Any]],
                   records: Sequence[VersionRecord], map_info: dict[str, Any] | None) -> dict[str, Any]:
    """How the records were made; no timestamps, paths or tags, so the same set made the same way hashes the same."""
    sources = score_sources_of(nb, ids)
    settings = step_settings(nb, [s["step_id"] for s in stages if s.get("step_id") is not None])
    scored_with = sorted({s["criterion_version_id"] for s in sources if s["criterion_version_id"] is not None})
    used = [v for v in (version_by_id(nb, i) for i in scored_with) if v is not None]
    words = [len(r.output.split()) for r in records]
    return {
        "format": MANIFEST_FORMAT,
        "prompts": prompt_versions_of(nb, ids),
        "criteria": [{"kind": v.kind, "name": v.name, "version": v.version, "hash": v.hash}
                     for v in latest_versions(nb, active_only=True)],
        "scored_with": [{"kind": v.kind, "name": v.name, "version": v.version, "hash": v.hash} for v in used],
        "models": {
            # the file name only: the same model file elsewhere on disk is the same model (the hash says so)
            "generation": [{"backend": m["backend"], "model": Path(m["model_path"]).name if m["model_path"] else None,
                            "sha256": m["model_sha256"], "records": m["records"]} for m in run_models_of(nb, ids)],
            "scores": [{"score": s["score"], "kind": s["kind"], "step": s["step_name"], "model_sha256": s["model_sha256"],
                        "records": s["records"]} for s in sources if s["model_sha256"]],
        },
        "funnel": {
            "stages": [{**s, "settings": settings.get(s["step_id"], {}).get("settings")}
                       if s.get("step_id") is not None else dict(s) for s in stages],
            "trust_overrides": trust_overrides(nb),
        },
        "map": map_info,
        "totals": {
            "records": len(records),
            "generated": stages[0]["kept"] if stages else 0,
            "words": sum(words),
            "statuses": dict(sorted(Counter(r.status for r in records).items())),
            "clusters": len({r.cluster for r in records if r.cluster is not None and r.cluster >= 0}),
        },
    }


def check_tag(tag: str) -> str:
    tag = tag.strip()
    if not tag:
        raise StudioError("a version needs a tag (e.g. v1)")
    if tag == CURRENT:
        raise StudioError(f"{CURRENT!r} names the kept set now; choose another tag")
    if any(ch.isspace() for ch in tag):
        raise StudioError(f"a tag has no spaces: {tag!r}")
    return tag


def freeze(nb: Notebook, tag: str, message: str = "") -> DatasetVersion:
    """Freeze the kept set now as version ``tag`` (its parent: the newest version before it).

    A tag that exists is refused before anything is computed or written.
    """
    tag = check_tag(tag)
    if tag_exists(nb, tag):
        raise StudioError(f"a version tagged {tag!r} exists; versions never change: choose a new tag")
    snap = kept_snapshot(nb, save_verdicts=True)
    return save_version(nb, tag, message, snap.content_hash, snap.manifest, snap.records)


def versions(nb: Notebook) -> list[DatasetVersion]:
    """Every version, oldest first (each with its parent's tag: the lineage)."""
    return list_versions(nb)


def load(nb: Notebook, ref: str) -> Snapshot:
    """Version ``ref`` as frozen, or the kept set now for ``current``."""
    if ref == CURRENT:
        return kept_snapshot(nb)
    v = get_version(nb, ref)
    if v is None:
        known = [x.tag for x in list_versions(nb)]
        hint = f" (versions here: {', '.join(known)})" if known else " (none yet: make one with synth-studio version)"
        raise StudioError(f"no version tagged {ref!r}{hint}")
    return Snapshot(v.tag, v.content_hash, v.manifest, tuple(version_records(nb, v.id)), v)


# -- diffing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditedRecord:
    """A record in both versions whose text differs."""

    record_id: int
    before: str
    after: str
    unified: tuple[str, ...]  # a unified line diff (difflib), headers included
    words: tuple[Span, ...]  # the word-level diff, before -> after

    @property
    def changed_words(self) -> int:
        return sum(max(len(s.before), len(s.after)) for s in self.words if s.op != "equal")


@dataclass(frozen=True)
class StatusChange:
    record_id: int
    before: str
    after: str


@dataclass(frozen=True)
class ScoreChange:
    """One score name over the records in both versions."""

    name: str
    changed: int  # records whose value differs (a value gained or lost counts)
    mean_shift: float | None  # mean of (after - before) over those changed records with a value in both


@dataclass(frozen=True)
class StageChange:
    stage: str
    kept_before: int | None  # None: the stage is not in that version's funnel
    kept_after: int | None
    dropped_before: int | None
    dropped_after: int | None

    @property
    def changed(self) -> bool:
        return (self.kept_before, self.dropped_before) != (self.kept_after, self.dropped_after)


@dataclass(frozen=True)
class Shift:
    """How a measure's distribution moved from one version to the other."""

    name: str  # "words" or a score name
    n_before: int
    n_after: int
    mean_before: float | None
    mean_after: float | None
    median_before: float | None
    median_after: float | None
    ks: float | None  # two-sample Kolmogorov-Smirnov statistic (None: a side has no values)
    p_value: float | None


@dataclass(frozen=True)
class ClusterChange:
    cluster: int  # the cluster id each version stored (-1: noise)
    before: int
    after: int


@dataclass(frozen=True)
class VersionDiff:
    before: str  # tags (or "current")
    after: str
    hash_before: str
    hash_after: str
    count_before: int
    count_after: int
    added: tuple[VersionRecord, ...]
    removed: tuple[VersionRecord, ...]
    edited: tuple[EditedRecord, ...]
    status_changes: tuple[StatusChange, ...]
    score_changes: tuple[ScoreChange, ...]
    stages: tuple[StageChange, ...]
    distributions: tuple[Shift, ...]
    clusters: tuple[ClusterChange, ...]  # only those that grew or shrank
    prompts_before: tuple[str, ...] = field(default=())
    prompts_after: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return self.hash_before == self.hash_after

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["added"] = [{"id": r.record_id, "text": r.output, "status": r.status} for r in self.added]
        d["removed"] = [{"id": r.record_id, "text": r.output, "status": r.status} for r in self.removed]
        d["edited"] = [{"id": e.record_id, "before": e.before, "after": e.after, "unified": list(e.unified),
                        "words": [{"op": s.op, "before": " ".join(s.before), "after": " ".join(s.after)}
                                  for s in e.words if s.op != "equal"]} for e in self.edited]
        d["identical"] = self.identical
        return d


def diff(nb: Notebook, before: str, after: str = CURRENT) -> VersionDiff:
    """What changed from version ``before`` to version ``after`` (either may be ``current``)."""
    return diff_snapshots(load(nb, before), load(nb, after))


def diff_snapshots(a: Snapshot, b: Snapshot) -> VersionDiff:
    ra, rb = a.by_id, b.by_id
    both = sorted(ra.keys() & rb.keys())
    edited = tuple(_edited(ra[i], rb[i], a.tag, b.tag) for i in both if ra[i].text_hash != rb[i].text_hash)
    return VersionDiff(
        before=a.tag, after=b.tag, hash_before=a.content_hash, hash_after=b.content_hash,
        count_before=len(ra), count_after=len(rb),
        added=tuple(rb[i] for i in sorted(rb.keys() - ra.keys())),
        removed=tuple(ra[i] for i in sorted(ra.keys() - rb.keys())),
        edited=edited,
        status_changes=tuple(StatusChange(i, ra[i].status, rb[i].status) for i in both if ra[i].status != rb[i].status),
        score_changes=_score_changes(ra, rb, both),
        stages=_stage_changes(a.manifest, b.manifest),
        distributions=_shifts(a.records, b.records),
        clusters=_cluster_changes(a.records, b.records),
        prompts_before=_prompt_labels(a.manifest), prompts_after=_prompt_labels(b.manifest),
    )


def _edited(a: VersionRecord, b: VersionRecord, tag_a: str, tag_b: str) -> EditedRecord:
    unified = tuple(difflib.unified_diff(a.output.splitlines(), b.output.splitlines(), lineterm="",
                                         fromfile=f"{tag_a} #{a.record_id}", tofile=f"{tag_b} #{b.record_id}"))
    return EditedRecord(a.record_id, a.output, b.output, unified, word_diff(a.output, b.output))


def _score_changes(ra: dict[int, VersionRecord], rb: dict[int, VersionRecord], both: list[int]) -> tuple[ScoreChange, ...]:
    names = sorted({n for i in both for n in (*ra[i].scores, *rb[i].scores)})
    out = []
    for name in names:
        pairs = [(ra[i].scores.get(name), rb[i].scores.get(name)) for i in both]
        changed = sum(1 for x, y in pairs if x != y)
        deltas = [y - x for x, y in pairs if x is not None and y is not None and x != y]
        if changed:
            out.append(ScoreChange(name, changed, statistics.fmean(deltas) if deltas else None))
    return tuple(out)


def _stage_changes(ma: dict[str, Any], mb: dict[str, Any]) -> tuple[StageChange, ...]:
    sa = {s["stage"]: s for s in ma.get("funnel", {}).get("stages", [])}
    sb = {s["stage"]: s for s in mb.get("funnel", {}).get("stages", [])}
    order = list(sa) + [s for s in sb if s not in sa]
    return tuple(StageChange(name, sa[name]["kept"] if name in sa else None, sb[name]["kept"] if name in sb else None,
                             sa[name].get("dropped", 0) if name in sa else None,
                             sb[name].get("dropped", 0) if name in sb else None) for name in order)


def _shift(name: str, xs: Sequence[float], ys: Sequence[float]) -> Shift:
    ks = p = None
    if xs and ys:
        from scipy.stats import ks_2samp

        res = ks_2samp(xs, ys)
        ks, p = float(res.statistic), float(res.pvalue)
    mean = lambda v: statistics.fmean(v) if v else None  # noqa: E731
    median = lambda v: float(statistics.median(v)) if v else None  # noqa: E731
    return Shift(name, len(xs), len(ys), mean(xs), mean(ys), median(xs), median(ys), ks, p)


def _shifts(a: Sequence[VersionRecord], b: Sequence[VersionRecord]) -> tuple[Shift, ...]:
    out = [_shift("words", [len(r.output.split()) for r in a], [len(r.output.split()) for r in b])]
    names = sorted({n for r in (*a, *b) for n in r.scores})
    for name in names:
        out.append(_shift(name, _values(a, name), _values(b, name)))
    return tuple(out)


def _values(records: Sequence[VersionRecord], name: str) -> list[float]:
    return [float(v) for r in records if (v := r.scores.get(name)) is not None]


def _cluster_changes(a: Sequence[VersionRecord], b: Sequence[VersionRecord]) -> tuple[ClusterChange, ...]:
    ca = Counter(r.cluster for r in a if r.cluster is not None)
    cb = Counter(r.cluster for r in b if r.cluster is not None)
    return tuple(ClusterChange(c, ca[c], cb[c]) for c in sorted(ca.keys() | cb.keys()) if ca[c] != cb[c])


def _prompt_labels(manifest: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{p['name']} v{p['version']}" for p in manifest.get("prompts", []))
