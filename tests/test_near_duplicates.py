"""Near-duplicates found: word edits in real passages, the old method beside the new, groups side by side."""

from __future__ import annotations

import argparse

import pytest

from app.quality.dedupe import (
    char_minhash_signatures,
    char_shingles,
    lsh_candidates,
    minhash_groups,
    near_duplicate_groups,
    normalise,
    word_similarity,
)
from app.quality.diffs import group_diff, word_diff
from app.quality.planted import EDIT_KINDS, planted_set, precision_recall, real_passages

BASE = ("The garbage collector runs when the number of allocations minus deallocations exceeds a threshold, "
        "and objects that survive a collection move to an older generation that is examined less often.")
# one edit of each kind, at the same place, made by hand
EDITED = {
    "delete": BASE.replace("number of allocations", "number allocations"),
    "swap": BASE.replace("examined less often", "examined often less"),
    "substitute": BASE.replace("exceeds a threshold", "exceeds a limit"),
    "case": BASE.replace("The garbage collector", "the Garbage Collector"),
    "spacing": BASE.replace("collection move", "collection   \n move"),
}


@pytest.fixture(scope="module")
def planted():
    return planted_set(200, 200, seed=0)


def test_new_default_finds_nine_in_ten_planted_edits_of_real_text_and_the_old_one_fewer(planted):
    items = list(enumerate(planted.texts))
    precision, recall = precision_recall(near_duplicate_groups(items), planted.pairs)
    old_precision, old_recall = precision_recall(minhash_groups(items), planted.pairs)
    print(f"\n{len(items)} real passages, {len(planted.pairs)} edited copies: new recall {recall:.3f} "
          f"precision {precision:.3f}; old recall {old_recall:.3f} precision {old_precision:.3f}")
    assert recall >= 0.9 and precision >= 0.9
    assert old_recall < recall


def test_the_planted_set_is_real_deterministic_and_has_one_edit_per_twelve_words(planted):
    again = planted_set(200, 200, seed=0)
    assert again.texts == planted.texts and again.pairs == planted.pairs
    assert planted_set(200, 200, seed=1).texts != planted.texts
    assert len(planted.texts) == 600 and len(planted.pairs) == 200
    assert all(20 <= len(p.text.split()) <= 120 for p in real_passages())
    for a, b in planted.pairs:
        edited = b if b in planted.edits else a
        words = len(planted.texts[a if edited == b else b].split())
        assert len(planted.edits[edited]) == max(1, round(words / 12))
    assert {k for e in planted.edits.values() for k in e} == set(EDIT_KINDS)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_each_kind_of_word_edit_is_caught(kind):
    assert EDITED[kind] != BASE
    assert near_duplicate_groups([(1, BASE), (2, EDITED[kind])]) == {1: [1, 2]}


def test_two_passages_on_the_same_topic_are_not_grouped():
    other = ("When the garbage collector finds a reference cycle it breaks it by clearing the objects, and the "
             "threshold for each generation decides how often objects of that generation are examined.")
    items = [(1, BASE), (2, other), (3, EDITED["substitute"])]
    assert near_duplicate_groups(items) == {1: [1, 3]}


def test_the_threshold_is_the_share_of_words_in_common():
    assert near_duplicate_groups([(1, BASE), (2, EDITED["delete"])], threshold=0.99) == {}
    assert near_duplicate_groups([(1, "")]) == {} and near_duplicate_groups([]) == {}
    with pytest.raises(ValueError):
        near_duplicate_groups([(1, BASE)], threshold=0)


def test_shingles_stay_inside_their_text_and_a_bucket_of_copies_stays_linear():
    values, offsets = char_shingles(["abcdef", "", "xy"], 5)
    assert offsets.tolist() == [0, 2, 2, 3] and len(values) == 3
    sig = char_minhash_signatures(*char_shingles(["the same words"] * 2000))
    pairs = lsh_candidates(sig, 32, 4)
    assert len(pairs) < 2 * 2000  # star + chain per bucket, not 2 million pairs
    assert near_duplicate_groups([(i, "the same words") for i in range(2000)]) == {0: list(range(2000))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_are_every_similar_candidate_pair_joined_whatever_their_order(seed):
    """The candidates are compared likeliest first and a pair already in one group is skipped; the
    groups must be exactly those of joining every candidate pair whose words agree, in any order,
    each keyed by its lowest id."""
    import random

    import numpy as np

    from app.quality import dedupe

    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(300)]
    texts = []
    for _ in range(60):  # families: a sentence and copies of it with one word changed
        base = rng.sample(vocabulary, 10)
        for _ in range(rng.randint(1, 4)):
            copy = list(base)
            copy[rng.randrange(10)] = rng.choice(vocabulary)
            texts.append(" ".join(copy))
    rng.shuffle(texts)
    ids = rng.sample(range(10_000, 20_000), len(texts))  # not in row order: the key is the lowest id
    words = [normalise(t).split() for t in texts]
    pairs = np.array([(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if rng.random() < 0.3])
    pairs = pairs[rng.sample(range(len(pairs)), len(pairs))]
    parent = {i: i for i in ids}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in pairs.tolist():
        if word_similarity(words[i], words[j], 0.8) >= 0.8:
            a, b = find(ids[i]), find(ids[j])
            parent[max(a, b)] = min(a, b)
    expected: dict[int, list[int]] = {}
    for x in ids:
        expected.setdefault(find(x), []).append(x)
    expected = {min(m): sorted(m) for m in expected.values() if len(m) > 1}
    assert len(expected) > 3  # the case has groups to find
    assert dedupe._verified_groups(ids, words, pairs, 0.8, chunk=97) == expected


def test_word_diff_marks_the_changed_words():
    spans = word_diff(BASE, EDITED["substitute"])
    assert [(s.op, s.before, s.after) for s in spans if s.op != "equal"] == [("replace", ("threshold,",), ("limit,",))]
    g = group_diff({1: BASE, 2: EDITED["swap"], 3: EDITED["case"]}, 1, [1, 2, 3])
    assert [m.record_id for m in g.members] == [2, 3] and g.members[0].similarity > 0.9
    assert g.members[1].changed_words == 3 and g.members[1].similarity == 1.0  # case shows, yet matches


def test_dedupe_methods_store_groups_and_funnel_stages_under_their_names(nb):
    from app.cli.main import build_parser
    from app.quality.funnel import funnel
    from app.quality.steps import DEDUPE_METHODS, NEAR_DUPLICATES, dedupe
    from app.store.scores import duplicate_groups

    nb.add_imported_rows([({}, BASE), ({}, EDITED["swap"]), ({}, "Something else entirely, on billing.")],
                         origin="synthetic", source="t")
    ids = [r["id"] for r in nb.records()]
    assert dedupe(nb, NEAR_DUPLICATES) == {ids[0]: ids[:2]}
    dedupe(nb, "minhash-words")
    assert duplicate_groups(nb, "minhash") == {ids[0]: ids[:2]}
    stages = {s["stage"] for s in funnel(nb)}
    assert {"dedupe:minhash", "dedupe:minhash-words"} <= stages
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    method = next(a for a in sub.choices["dedupe"]._actions if a.dest == "method")
    assert tuple(method.choices) == DEDUPE_METHODS


def test_the_duplicates_dialog_shows_a_group_with_the_changed_word_marked(qtbot, nb):
    from PySide6.QtGui import QPalette

    from app.quality.steps import dedupe
    from widgets.quality_view import QualityView

    nb.add_imported_rows([({}, BASE), ({}, EDITED["substitute"]), ({}, "Something else entirely, on billing.")],
                         origin="synthetic", source="t")
    dedupe(nb, "minhash")
    view = QualityView(nb)
    qtbot.addWidget(view)
    view.groups_button.click()
    dialog = view.duplicates
    qtbot.addWidget(dialog)
    assert dialog.method.currentText() == "minhash" and dialog.group_list.count() == 1
    assert "2 records" in dialog.group_list.item(0).text()
    highlight = dialog.palette().color(QPalette.ColorRole.Highlight).name()
    html = dialog.browser.toHtml()
    text = dialog.browser.toPlainText()
    assert "threshold," in text and "limit," in text
    marked = [part.split("</span>")[0] for part in html.split(f"background-color:{highlight}")[1:]]
    assert any("limit," in m for m in marked) and any("threshold," in m for m in marked)
    assert not any("garbage" in m for m in marked)  # unchanged words are not marked
