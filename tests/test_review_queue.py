"""The review queue: ordered by what a person's minute is worth, each record with why it is there;
progress and the person's labels, which check the judges."""

from __future__ import annotations

import numpy as np
import pytest

from app.review.labels import answer, card_criteria, criteria
from app.review.queue import build_queue, progress, view_choices
from app.store.review import AUTOMATIC_AUTHORS, review_card, reviewed_ids
from app.store.scores import Score, add_step, save_duplicates, save_scores
from app.store.trust import labels_for, record_labels, set_label, set_override

POLITE = {"name": "polite", "question": "Is this text polite?", "type": "yes_no", "threshold": None, "invert": False}
RUDE = {"name": "rude", "question": "Is this text rude?", "type": "yes_no", "threshold": None, "invert": True}


def _samples(nb, n: int = 12) -> list[int]:
    """``n`` samples of growing length, as a person's import would make them."""
    nb.add_imported_rows([({"i": i}, "word " * (i + 3)) for i in range(n)], origin="synthetic", source="test")
    return [r["id"] for r in nb.records()]


def _judge(nb, spec: dict, values: dict[int, float]) -> None:
    """Store a yes/no judge's scores the way app.quality.judge does (step settings, reason with threshold)."""
    step = add_step(nb, "judge", spec["name"], {"criterion": spec}, "judge-model")
    save_scores(nb, [Score(rid, f"judge:{spec['name']}", "judge", v, v >= 0.5, f"{v:.3f} vs threshold 0.5",
                           "judge-model") for rid, v in values.items()], step)


def _validate_length(nb, words: dict[int, int], minimum: int = 8) -> None:
    step = add_step(nb, "validate", "rules", {"rules": [{"name": "length", "type": "length", "unit": "words",
                                                         "min": minimum}]})
    save_scores(nb, [Score(rid, "validator:length", "validator", n, n >= minimum,
                           f"{n} words < min {minimum}" if n < minimum else f"{n} words")
                     for rid, n in words.items()], step)


def _position(items, record_id: int) -> int:
    return [it.record_id for it in items].index(record_id)


def test_a_record_failing_a_validator_comes_before_passing_ones(nb):
    ids = _samples(nb)
    _validate_length(nb, {**{rid: 30 for rid in ids}, ids[5]: 3, ids[6]: 8})
    items = build_queue(nb)
    assert items[0].record_id == ids[5]
    assert items[0].why.startswith("failed validator:length (3 words < min 8)")
    assert items[1].record_id == ids[6] and items[1].why.startswith("near threshold of validator:length (8 words, limit 8)")
    assert len(items) == len(ids) and len({it.record_id for it in items}) == len(ids)  # every sample, once


def test_near_a_trusted_judges_threshold_comes_before_a_confident_record(nb):
    ids = _samples(nb)
    set_override(nb, "polite", True, reason="checked by hand")
    _judge(nb, POLITE, {ids[0]: 0.97, ids[1]: 0.52, ids[2]: 0.03, **{rid: 0.99 for rid in ids[3:]}})
    items = build_queue(nb, audit=0, extremes=0)
    assert [it.record_id for it in items[:2]] == [ids[2], ids[1]]  # the failure, then the near one
    assert items[0].why == "failed judge:polite (0.03 vs 0.5)"
    assert items[1].why == "near threshold of judge:polite (0.52 vs 0.5)" and items[1].criterion == "polite"
    assert _position(items, ids[1]) < _position(items, ids[0])
    assert items[-1].why == "not prioritised (id order)"


def test_an_unchecked_judges_uncertain_records_and_duplicate_disagreements_ask_for_labels(nb):
    ids = _samples(nb)
    _judge(nb, POLITE, {ids[0]: 0.49, ids[1]: 0.95, ids[2]: 0.05, ids[3]: 0.9, ids[4]: 0.2, ids[5]: 0.55})
    save_duplicates(nb, "exact", {ids[3]: [ids[3], ids[4]]}, add_step(nb, "dedupe", "exact", {}))
    set_label(nb, ids[5], "polite", True)  # already answered: nothing more to learn from it
    items = build_queue(nb, audit=0, extremes=0)
    why = {it.record_id: it.why for it in items}
    # the duplicate dedupe dropped first; the judge is not trusted yet, so its failure (ids[2]) is no stage's
    assert [it.record_id for it in items[:4]] == [ids[4], ids[3], ids[0], ids[1]]
    assert why[ids[4]] == (f"dropped at dedupe:exact: exact duplicate of #{ids[3]}; unchecked judge polite fails it "
                           f"(0.20) but passes its exact duplicate #{ids[3]} (0.90)")
    assert why[ids[3]] == f"unchecked judge polite passes it (0.90) but fails its exact duplicate #{ids[4]} (0.20)"
    assert why[ids[0]] == "unchecked judge polite is unsure (0.49 vs 0.5): your answer calibrates it"
    assert items[0].criterion == "polite"
    assert "unsure" not in why[ids[1]]  # 0.95 is not unsure
    assert items[-1].record_id == ids[5] and items[-1].reviewed  # labelled, so reviewed: last


def test_both_ends_of_each_axis_are_queued_with_their_value(nb):
    ids = _samples(nb)
    items = build_queue(nb, audit=0)
    assert items[0].record_id == ids[-1] and items[0].why == f"longest ({len('word ' * 14)} chars)"
    assert items[1].record_id == ids[0] and items[1].why == "shortest (15 chars)"


def test_one_record_per_cluster_of_the_latest_map(nb):
    from app.map.projection import compute_map
    from app.store.embeddings import save_embeddings

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 10
    words = ["apple", "river", "engine"]
    rows = [({}, f"{words[g]} sample {i}") for g in range(3) for i in range(12)]
    nb.add_imported_rows(rows, origin="synthetic", source="test")
    ids = [r["id"] for r in nb.records()]
    vecs = [centres[g] + rng.normal(size=8) for g in range(3) for _ in range(12)]
    save_embeddings(nb, "fake", list(zip(ids, [t for _, t in rows])),
                    np.asarray([v / np.linalg.norm(v) for v in vecs], dtype=np.float32))
    m = compute_map(nb, method="pca")
    clusters = sorted(set(m.clusters.tolist()) - {-1})
    assert len(clusters) == 3
    items = build_queue(nb, audit=0, extremes=0)
    picked = [it for it in items if any(r.kind == "cluster" for r in it.reasons)]
    of = dict(zip(m.record_ids, m.clusters.tolist()))
    assert sorted(of[it.record_id] for it in picked) == clusters  # one per cluster
    first = picked[0]
    c = of[first.record_id]
    assert first.why.startswith(f"cluster {c} '{m.labels[c]}'") and "12 records" in first.why


def test_an_audit_sample_of_the_kept_set_is_drawn_with_the_seed(nb):
    ids = _samples(nb, 40)
    _validate_length(nb, {rid: (3 if rid in ids[:5] else 30) for rid in ids})
    kept = set(ids[5:])

    def audited(seed: int) -> list[int]:
        return [it.record_id for it in build_queue(nb, seed=seed, audit=6, extremes=0)
                if any(r.kind == "audit" and r.text == "audit sample of kept" for r in it.reasons)]

    first = audited(7)
    assert len(first) == 6 and set(first) <= kept
    assert audited(7) == first  # deterministic for a seed
    assert audited(8) != first


def test_reviewed_records_go_last_or_are_left_out(nb):
    from app.generate.best_of import AUTHOR

    assert AUTHOR in AUTOMATIC_AUTHORS
    ids = _samples(nb)
    _validate_length(nb, {rid: (3 if rid in ids[:3] else 30) for rid in ids})
    nb.edit_record(ids[0], "status", "accepted", author="user")
    nb.edit_record(ids[1], "status", "rejected", author=AUTHOR)  # best-of's, not a person's
    set_label(nb, ids[6], "polite", False)
    assert reviewed_ids(nb) == {ids[0], ids[6]}
    items = build_queue(nb, audit=0, extremes=0)
    assert [it.record_id for it in items[:2]] == [ids[1], ids[2]]
    assert [it.record_id for it in items[-2:]] == [ids[0], ids[6]] and items[-1].reviewed
    unreviewed = [it.record_id for it in build_queue(nb, view="unreviewed")]
    assert ids[0] not in unreviewed and ids[6] not in unreviewed and len(unreviewed) == len(ids) - 2


def test_views_kept_flagged_and_failing(nb):
    ids = _samples(nb)
    _validate_length(nb, {rid: (3 if rid in ids[:3] else 30) for rid in ids})
    nb.edit_record(ids[4], "status", "flagged", author="user")
    assert {it.record_id for it in build_queue(nb, view="failing:validator:length")} == set(ids[:3])
    assert {it.record_id for it in build_queue(nb, view="kept")} == set(ids[3:])
    assert [it.record_id for it in build_queue(nb, view="flagged")] == [ids[4]]
    assert ("failing validator:length (3)", "failing:validator:length") in view_choices(nb)


def test_progress_counts_the_reviewed_and_each_judges_disagreements_with_labels(nb):
    ids = _samples(nb)
    _judge(nb, POLITE, {rid: (0.9 if i % 2 else 0.1) for i, rid in enumerate(ids)})
    queue = [it.record_id for it in build_queue(nb)]
    assert progress(nb, queue).line == f"0 of {len(ids)} reviewed"
    answer(nb, ids[0], "polite", True)  # the judge failed it: a disagreement
    answer(nb, ids[1], "polite", True)  # the judge passed it: agreement
    answer(nb, ids[2], "polite", True)  # failed: a second disagreement
    nb.edit_record(ids[3], "status", "accepted", author="user")
    p = progress(nb, queue)
    assert (p.reviewed, p.total, p.judges) == (4, len(ids), {"polite": (3, 2)})
    assert p.line == f"4 of {len(ids)} reviewed, 2 disagreements with judge polite (of 3 labels)"


def test_labels_come_from_answers_never_from_statuses(nb):
    ids = _samples(nb)
    _judge(nb, POLITE, {rid: 0.9 for rid in ids})
    _judge(nb, RUDE, {rid: 0.8 for rid in ids})  # inverted: the score is P(no), passing means "not rude"
    nb.edit_record(ids[0], "status", "accepted", author="user")
    nb.edit_record(ids[1], "status", "rejected", author="user")
    assert labels_for(nb, "polite") == {} and labels_for(nb, "rude") == {}
    answer(nb, ids[2], "rude", True)  # "Is this text rude?" Yes: it fails the criterion
    answer(nb, ids[2], "polite", False)
    assert record_labels(nb, ids[2]) == {"rude": False, "polite": False}
    cards = {c.info.name: c for c in card_criteria(nb, ids[2])}
    assert cards["rude"].answer is True and cards["polite"].answer is False  # shown as the person answered
    assert cards["polite"].info.question == "Is this text polite?" and cards["polite"].value == pytest.approx(0.9)
    assert cards["polite"].trust == "unchecked" and not cards["polite"].trusted
    assert "(Yes fails it)" in cards["rude"].info.prompt
    answer(nb, ids[2], "rude", None)
    assert record_labels(nb, ids[2]) == {"polite": False}


def test_an_edit_marks_the_records_scores_stale_on_the_card(nb):
    ids = _samples(nb)
    _judge(nb, POLITE, {rid: 0.51 for rid in ids})
    set_override(nb, "polite", True)
    nb.edit_record(ids[0], "output", "A new text.", author="user")
    card = review_card(nb, ids[0])
    assert card["stale"] == ["judge:polite"] and not card["likelihood_stale"]  # imported: it had no likelihood
    assert {c.info.name: c.stale for c in card_criteria(nb, ids[0])} == {"polite": True}
    near = [it.record_id for it in build_queue(nb, audit=0, extremes=0) if any(r.kind == "near" for r in it.reasons)]
    assert ids[0] not in near and ids[1] in near  # a stale score no longer says how close the text is


def test_notebook_criteria_supply_questions_and_can_be_switched_off(nb):
    from app.store.criteria import save_version, set_active

    ids = _samples(nb, 3)
    save_version(nb, "criterion", "concise", {"question": "Is it concise?", "type": "yes_no"})
    save_version(nb, "criterion", "polite", POLITE)
    _judge(nb, POLITE, {rid: 0.9 for rid in ids})
    assert sorted(criteria(nb)) == ["concise", "polite"]  # concise has no judge scores yet, but can be answered
    set_active(nb, "criterion", "polite", False)
    assert sorted(criteria(nb)) == ["concise"]


def test_the_review_widget_shows_why_and_progress_and_y_stores_a_label(qtbot, nb):
    pytest.importorskip("PySide6")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QUndoStack

    from widgets.review_queue import ReviewQueue

    ids = _samples(nb)
    _judge(nb, POLITE, {ids[0]: 0.48, **{rid: 0.95 for rid in ids[1:]}})
    _judge(nb, RUDE, {rid: 0.9 for rid in ids})
    stack = QUndoStack()
    q = ReviewQueue(nb, stack)
    qtbot.addWidget(q)
    q.show()
    q.setFocus()
    assert q.current_id() == ids[0]
    assert "unchecked judge polite is unsure (0.48 vs 0.5)" in q.why.text()
    assert f"0 of {len(ids)} reviewed" in q.header.text()
    assert "▶ <b>polite</b>: Is this text polite?" in q.questions.text()  # queued for polite: focused
    assert "judge 0.48 fails (threshold 0.5, unchecked)" in q.questions.text()
    qtbot.keyClick(q, Qt.Key.Key_Y)
    assert record_labels(nb, ids[0]) == {"polite": True}
    assert "▶ <b>rude</b>" in q.questions.text()  # the answer moved the focus on
    assert f"1 of {len(ids)} reviewed, 1 disagreement with judge polite (of 1 label)" in q.header.text()
    qtbot.keyClick(q, Qt.Key.Key_N)  # "Is this text rude?" No: passes
    assert record_labels(nb, ids[0]) == {"polite": True, "rude": True}
    qtbot.keyClick(q, Qt.Key.Key_Tab)
    assert "▶ <b>polite</b>" in q.questions.text()
    stack.undo()
    assert record_labels(nb, ids[0]) == {"polite": True}
    assert nb.record(ids[0])["status"] == "new"  # answering is not accepting
    qtbot.keyClick(q, Qt.Key.Key_E)
    q.editor.setPlainText("Edited after scoring.")
    q.save_edit()
    assert q.stale.isVisible() and "scores are stale (edited after scoring): judge:polite, judge:rude" in q.stale.text()
    qtbot.keyClick(q, Qt.Key.Key_A)
    assert nb.record(ids[0])["status"] == "accepted" and q.current_id() != ids[0]
    assert record_labels(nb, ids[0]) == {"polite": True}  # the accept stored no label


def test_the_review_card_shows_what_the_output_answers_and_has_buttons(qtbot, nb, fake, topics_csv):
    """Beside the output: the input row's variables and the prompt the model was given; and the
    keys also as buttons (accept, next)."""
    from PySide6.QtGui import QUndoStack
    from PySide6.QtWidgets import QPushButton

    from app.data.importer import import_file
    from app.generate.runs import create_run, execute_run, prepare_run
    from widgets.review_queue import ReviewQueue

    import_file(nb, topics_csv)
    nb.add_prompt_version("t", "Write a ticket about {{ topic }} for {{ product }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "t", limit_rows=2), fake.info), fake)
    q = ReviewQueue(nb, QUndoStack())
    qtbot.addWidget(q)
    q.show()
    r = nb.record(q.current_id())
    context = q.context.toPlainText()
    assert r["variables"]["topic"] in context and r["variables"]["product"] in context
    assert f"Write a ticket about {r['variables']['topic']}" in context  # the rendered prompt
    buttons = {b.text().split("  ")[0]: b for b in q.findChildren(QPushButton)}
    first = q.current_id()
    buttons["Accept"].click()
    assert nb.record(first)["status"] == "accepted"
    buttons["Next ▶"].click()
    assert q.current_id() != first


def test_a_big_queue_is_ordered_off_the_ui_thread_and_then_shown(qtbot, nb, monkeypatch, main_thread_calls):
    """Ordering reads every score: beyond ORDER_HERE samples it runs on a runner, the window usable
    meanwhile, and ends on the same queue as ordering it at once."""
    from PySide6.QtGui import QUndoStack

    import app.review.queue
    import widgets.review_queue as rq

    ids = _samples(nb)
    _judge(nb, RUDE, {rid: 0.2 + 0.05 * i for i, rid in enumerate(ids)})
    expected = [it.record_id for it in build_queue(nb)]
    on_ui = main_thread_calls(app.review.queue, "build_queue")
    monkeypatch.setattr(rq, "ORDER_HERE", 0)
    q = rq.ReviewQueue(nb, QUndoStack())
    qtbot.addWidget(q)
    with qtbot.waitSignal(q.sig_ready, timeout=20000):
        q.show()
        assert "Ordering the review queue" in q.header.text()
    assert on_ui == [False]
    assert q.ids == expected and q.current_id() == expected[0]
