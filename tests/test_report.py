"""The real-vs-synthetic report: scores on identical and shifted sets, the metrics on hand-made
cases, k-NN precision/recall on planted points, the nearest-real axis, one-sided clusters, the
self-contained page, the CLI command and the window's Report tab."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from app.core.errors import StudioError
from app.map.neighbours import manifold_fit
from app.report.columns import column_kind, ks_similarity, tvd_similarity
from app.report.compute import PARTS, compute_report
from app.store.embeddings import save_embeddings
from app.store.maps import save_map

TOPICS = {
    "billing": "invoice charge payment card amount bill refund account statement".split(),
    "login": "password login reset account email code locked sign screen".split(),
    "shipping": "parcel delivery courier address tracking late package order box".split(),
    "refund": "refund return money back policy item damaged exchange receipt".split(),
}
DIM = 24
SHA = "fake-embedder"


def _centres(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {t: rng.normal(size=DIM) * 3 for t in TOPICS}


def _rows(n: int, rng: np.random.Generator, *, topics=("billing", "login", "shipping", "refund"),
          words=(8, 20), shift: float = 0.0):
    """(variables, text, vector) rows: text from the topic's words, vector near the topic's centre."""
    centres = _centres()
    out = []
    for i in range(n):
        topic = topics[i % len(topics)]
        length = int(rng.integers(*words))
        text = " ".join(rng.choice(TOPICS[topic], size=length))
        vec = centres[topic] + rng.normal(size=DIM) + shift
        out.append(({"topic": topic, "priority": int(rng.integers(1, 4))}, text, vec))
    return out


def _add(nb, rows, origin: str) -> list[int]:
    before = nb.conn.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()[0]
    nb.add_imported_rows([(v, t) for v, t, _ in rows], origin=origin, source="test")
    ids = [r[0] for r in nb.conn.execute("SELECT id FROM records WHERE id > ? ORDER BY id", (before,))]
    save_embeddings(nb, SHA, [(rid, t) for rid, (_, t, _) in zip(ids, rows)],
                    np.array([v / np.linalg.norm(v) for _, _, v in rows], np.float32))
    return ids


def _map_by_topic(nb, ids_rows) -> None:
    """A stored map whose clusters are the records' topics (what a good map would find)."""
    topics = sorted(TOPICS)
    points = [(rid, float(i), float(topics.index(row[0]["topic"])), topics.index(row[0]["topic"]), 0.0, 0.0)
              for i, (rid, row) in enumerate(ids_rows)]
    save_map(nb, "test-map", SHA, "pca", {}, {i: t for i, t in enumerate(topics)}, points)


def _notebook(nb, synthetic_rows):
    rng = np.random.default_rng(0)
    real = _rows(160, rng)
    real_ids = _add(nb, real, "real")
    synth = synthetic_rows(real, rng)
    synth_ids = _add(nb, synth, "synthetic")
    return real, real_ids, synth, synth_ids


def test_identical_sets_score_one_on_every_part(nb):
    real, real_ids, synth, synth_ids = _notebook(nb, lambda real, rng: real)
    _map_by_topic(nb, list(zip(real_ids, real)) + list(zip(synth_ids, synth)))
    r = compute_report(nb)
    assert list(r.parts) == list(PARTS)
    for part, value in r.parts.items():
        assert value == pytest.approx(1.0, abs=1e-9), part
    assert r.score == pytest.approx(1.0, abs=1e-9)
    assert r.real_count == r.synthetic_count == 160
    assert {c.column for c in r.columns} == {"output · words", "output · tokens", "variables.priority",
                                             "variables.topic"}
    assert all(c.score == pytest.approx(1.0, abs=1e-9) for c in r.columns)
    assert r.embedding is not None and max(r.embedding.distances) < 1e-5  # every synthetic record is a copy
    assert r.clusters is not None and not r.clusters.only_real and not r.clusters.only_synthetic


def test_a_shifted_set_scores_clearly_lower(nb):
    def shifted(real, rng):  # longer texts, two topics only, vectors moved off the real manifold
        return _rows(160, rng, topics=("billing", "billing", "billing", "login"), words=(30, 50), shift=2.5)

    real, real_ids, synth, synth_ids = _notebook(nb, shifted)
    _map_by_topic(nb, list(zip(real_ids, real)) + list(zip(synth_ids, synth)))
    same = compute_report(nb)
    print(json.dumps({p: round(v, 3) for p, v in same.parts.items()}), round(same.score, 3))
    assert same.score < 0.6
    assert same.parts["column shapes"] < 0.6
    assert same.parts["embedding precision"] < 0.3 and same.parts["embedding recall"] < 0.3
    assert same.parts["cluster balance"] < 0.6
    by_name = {c.column: c.score for c in same.columns}
    assert by_name["output · words"] == pytest.approx(1.0 - 1.0)  # no synthetic text is as short as a real one
    assert by_name["variables.topic"] == pytest.approx(1 - 0.5)  # 75/25 over two topics vs 25% each of four
    assert {c.label for c in same.clusters.only_real} == {"refund", "shipping"}


def test_tvd_and_ks_on_hand_made_cases():
    assert tvd_similarity(list("aabb"), list("abbb")) == pytest.approx(0.75)  # 1 - (0.25 + 0.25) / 2
    assert tvd_similarity(list("ab"), list("cd")) == 0.0
    assert tvd_similarity(list("abc"), list("cab")) == 1.0
    assert tvd_similarity(["x", "(missing)"], ["x", "x"]) == pytest.approx(0.5)
    assert ks_similarity([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)  # the CDFs differ by 1/2 at most
    assert ks_similarity([1, 2, 3], [10, 11]) == 0.0
    assert ks_similarity([1.5, 2.5, 2.5], [2.5, 1.5, 2.5]) == 1.0
    assert column_kind([1, 2.5, "3"]) == "numeric"
    assert column_kind(["red", "blue", None, "red"]) == "categorical"
    assert column_kind(["a long free text answer about a thing", "another long sentence of words here"]) == "text"
    assert column_kind([f"topic {i % 30}" for i in range(100)]) == "categorical"  # many, but repeated
    assert column_kind([f"customer {i}" for i in range(100)]) == "identifier"
    assert column_kind([None, ""]) == "empty"


def test_knn_precision_and_recall_on_planted_points():
    rng = np.random.default_rng(3)
    a, b = np.zeros(16), np.zeros(16)
    a[0], b[1] = 10, 10  # two far-apart blobs: synthetic covers only the first
    real = np.vstack([a + rng.normal(size=(150, 16)), b + rng.normal(size=(150, 16))])
    synth = a + rng.normal(size=(150, 16))
    fit = manifold_fit(real, synth, k=5)
    print(fit.precision, fit.recall)
    assert fit.precision >= 0.9  # synthetic points look like real ones
    assert 0.4 <= fit.recall <= 0.55  # and cover about half the real manifold
    full = manifold_fit(real, np.vstack([synth, b + rng.normal(size=(150, 16))]), k=5)
    assert full.recall >= 0.85 and full.precision >= 0.9
    same = manifold_fit(real, real.copy(), k=3)
    assert same.precision == 1.0 and same.recall == 1.0


def test_knn_radii_agree_with_sklearn():
    from sklearn.neighbors import NearestNeighbors

    from app.core.tasks import TaskState
    from app.map.neighbours import _own_neighbours, _Progress, unit

    x = unit(np.random.default_rng(1).normal(size=(300, 12)))
    kth, nearest = _own_neighbours(x, 5, TaskState(), _Progress(TaskState(), 1))
    dist, _ = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)  # the point itself first
    np.testing.assert_allclose(np.sqrt(np.maximum(0, 2 - 2 * kth)), dist[:, 5], atol=1e-3)
    np.testing.assert_allclose(np.sqrt(np.maximum(0, 2 - 2 * nearest)), dist[:, 1], atol=1e-3)


def test_nearest_real_axis_ranks_copies_low_and_strangers_high(nb):
    from app.map.axes import AXES, axis_values, extrema

    assert "nearest-real" in AXES
    rng = np.random.default_rng(0)
    real = _rows(20, rng)
    _add(nb, real, "real")
    with pytest.raises(StudioError, match="nearest-real"):
        extrema(nb, "nearest-real")  # no synthetic records yet
    copy_id, = _add(nb, [real[3]], "synthetic")
    stranger = ({"topic": "space"}, "rocket orbit moon", np.ones(DIM) * -50)
    near = (real[5][0], "close to a real one", real[5][2] + 0.05)
    stranger_id, near_id = _add(nb, [stranger, near], "synthetic")
    values = dict(axis_values(nb, "nearest-real"))
    assert set(values) == {copy_id, stranger_id, near_id}  # synthetic samples only
    assert values[copy_id] < 1e-5 < values[near_id] < 0.01 < values[stranger_id]
    top, bottom = extrema(nb, "nearest-real", k=1)
    assert top[0].record_id == stranger_id and bottom[0].record_id == copy_id


def test_nearest_real_axis_needs_real_records(nb):
    from app.map.axes import axis_values

    _add(nb, _rows(5, np.random.default_rng(0)), "synthetic")
    with pytest.raises(StudioError, match="real records"):
        axis_values(nb, "nearest-real")


def test_clusters_with_only_real_records_are_found_on_a_computed_map(nb):
    from app.map.projection import compute_map

    rng = np.random.default_rng(0)
    _add(nb, _rows(120, rng), "real")
    _add(nb, _rows(90, rng, topics=("billing", "login", "shipping")), "synthetic")  # nothing about refunds
    m = compute_map(nb, method="pca", min_cluster_size=10)
    r = compute_report(nb)
    assert r.clusters is not None and r.clusters.map_id == m.map_id
    only_real = r.clusters.only_real
    assert len(only_real) == 1 and only_real[0].synthetic == 0 and only_real[0].real >= 25
    assert set(only_real[0].label.split(" · ")) <= set(TOPICS["refund"])  # the refund records' words
    assert not r.clusters.only_synthetic
    assert r.parts["cluster balance"] < 0.9


def test_the_kept_set_is_the_default_and_all_takes_every_synthetic_sample(nb):
    real, real_ids, synth, synth_ids = _notebook(nb, lambda real, rng: real[:40])
    nb.edit_record(synth_ids[0], "status", "rejected")
    assert compute_report(nb).synthetic_count == 39
    everything = compute_report(nb, synthetic="all")
    assert everything.synthetic_count == 40 and everything.synthetic_set == "all synthetic samples"
    assert compute_report(nb, record_ids=synth_ids[:5] + real_ids[:5], label="five").synthetic_count == 5


def test_missing_embeddings_and_map_leave_their_parts_out_with_a_note(nb):
    rng = np.random.default_rng(0)
    nb.add_imported_rows([(v, t) for v, t, _ in _rows(30, rng)], origin="real", source="t")
    nb.add_imported_rows([(v, t) for v, t, _ in _rows(30, rng)], origin="synthetic", source="t")
    r = compute_report(nb)
    assert list(r.parts) == ["column shapes", "n-grams"] and r.embedding is None and r.clusters is None
    assert any("synth-studio embed" in n for n in r.notes) and any("synth-studio map" in n for n in r.notes)


def test_no_real_records_is_a_clear_error(nb):
    nb.add_imported_rows([({}, "only synthetic text")], origin="synthetic", source="t")
    with pytest.raises(StudioError, match="no real records"):
        compute_report(nb)


def _page(nb) -> str:
    from app.report.html import render_html

    real, real_ids, synth, synth_ids = _notebook(
        nb, lambda real, rng: _rows(120, rng, topics=("billing", "login", "shipping"), words=(6, 30), shift=0.3))
    _map_by_topic(nb, list(zip(real_ids, real)) + list(zip(synth_ids, synth)))
    return render_html(compute_report(nb), title="test <report>")


def test_the_html_page_is_self_contained(nb):
    page = _page(nb)
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) >= 6  # parts, lengths, two input columns, nearest-real distances, the map
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test &lt;report&gt;" in page  # text is escaped
    for heading in ("Column shapes", "Top words and word pairs", "Closest to a real record",
                    "Farthest from any real record", "Only real records", "Only synthetic records"):
        assert heading in page


def test_cli_report_writes_html_and_json(nb, tmp_path, capsys):
    from app.cli.main import main

    _notebook(nb, lambda real, rng: real[:80])
    out = tmp_path / "report.html"
    assert main(["report", str(nb.path), "--html", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["synthetic_set"] == "the kept set" and got["synthetic_records"] == 80
    assert 0 <= got["score"] <= 1 and set(got["parts"]) >= {"column shapes", "embedding recall"}
    assert got["embedding"]["nearest_real_distance"]["near_copies"] == 80
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(nb.path), "--all", "--quiet"]) == 2  # nowhere to write it
    assert "--html" in capsys.readouterr().err
    assert main(["report", str(nb.path), "--version", "nope", "--json"]) == 2
    assert "no version tagged 'nope'" in capsys.readouterr().err


def test_cli_report_on_a_frozen_version(nb, capsys):
    from app.cli.main import main
    from app.export.versions import freeze

    _notebook(nb, lambda real, rng: real[:50])
    freeze(nb, "v1")
    assert main(["report", str(nb.path), "--version", "v1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["synthetic_set"] == "version v1" and got["synthetic_records"] == 50  # the version's real records left out


def test_report_view_shows_the_overall_score(nb, qtbot):
    from widgets.report_view import ReportView

    _notebook(nb, lambda real, rng: real)
    view = ReportView(nb)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.sig_report_ready, timeout=60_000):
        view.start()
    assert "1.000" in view.score_label.text()
    assert "Column shapes" in view.page.toPlainText()
    assert view.save_button.isEnabled()


def test_the_map_colours_by_origin_and_ranks_on_nearest_real(nb, qtbot):
    pytest.importorskip("pyqtgraph")
    from PySide6.QtGui import QUndoStack

    from app.map.projection import compute_map
    from widgets.map_view import MapView

    rng = np.random.default_rng(0)
    _add(nb, _rows(30, rng), "real")
    _add(nb, _rows(20, rng, shift=0.5), "synthetic")
    compute_map(nb, method="pca")
    view = MapView(nb, QUndoStack())
    qtbot.addWidget(view)
    view.refresh()
    view.colour_by.setCurrentText("origin")
    assert view.colour_by.currentText() == "origin"
    assert "real (30)" in view.legend.text() and "synthetic (20)" in view.legend.text()
    view.axis.setCurrentText("nearest-real")
    assert view.extremes.count() > 2 and "nearest-real" in view.extremes.item(0).text()


def test_report_view_without_real_records_says_what_to_import(nb, qtbot):
    """Nothing real to compare with: the button is off and the line says to import real examples."""
    from widgets.report_view import ReportView

    nb.add_imported_rows([({"topic": "a"}, None)], origin="real", source="inputs")  # input rows are not real samples
    view = ReportView(nb)
    qtbot.addWidget(view)
    assert not view.run_button.isEnabled()
    assert "import a table of real examples" in view.score_label.text()
    nb.add_imported_rows([({}, "A real ticket about billing.")], origin="real", source="real")
    view.reload()
    assert view.run_button.isEnabled() and "Compute the report" in view.score_label.text()
