"""Dedupe finds planted duplicates; metrics see collapse; the funnel counts every stage."""

import random

import numpy as np
import pytest

from app.quality.dedupe import exact_groups, minhash_groups, semantic_groups
from app.quality.diversity import compression_ratio, distinct_n, pairwise_overlap, text_metrics

VOCAB = ("invoice billing refund account password login bank feed sync payroll export report tax "
         "mobile app crash upload receipt customer support ticket urgent error page settings plan "
         "subscription charge card email phone chat browser update version server timeout delay").split()


def planted_corpus(n_base=300, n_dupes=80, seed=7):
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(25, 40))) for _ in range(n_base)]
    pairs = set()
    for k in range(n_dupes):
        src = rng.randrange(n_base)
        words = texts[src].split()
        for _ in range(rng.randint(1, 2)):  # small edits: a swap or a deletion
            if rng.random() < 0.5 and len(words) > 3:
                del words[rng.randrange(len(words))]
            else:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        texts.append(" ".join(words))
        pairs.add((src, n_base + k))
    return texts, pairs


def test_minhash_finds_planted_near_duplicates_with_measured_precision_recall():
    texts, truth = planted_corpus()
    groups = minhash_groups(list(enumerate(texts)), threshold=0.5)
    found = {(a, b) for members in groups.values() for a in members for b in members if a < b}
    # ground truth is transitive within a source's family
    family = {}
    for src, dup in truth:
        family.setdefault(src, {src}).add(dup)
    true_pairs = {(a, b) for fam in family.values() for a in fam for b in fam if a < b}
    tp = len(found & true_pairs)
    precision = tp / len(found) if found else 0.0
    recall = tp / len(true_pairs)
    print(f"\nminhash on {len(texts)} texts, {len(true_pairs)} planted duplicate pairs: "
          f"precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.9


def test_minhash_threshold_is_configurable():
    a = "the quick brown fox jumps over the lazy dog near the river bank today"
    b = "the quick brown fox jumps over the lazy cat near the river bank today"
    c = "completely different words about billing and invoices and refunds here"
    assert minhash_groups([(1, a), (2, b), (3, c)], threshold=0.5) == {1: [1, 2]}
    assert minhash_groups([(1, a), (2, b), (3, c)], threshold=0.95) == {}


def test_exact_ignores_case_and_punctuation():
    items = [(1, "Reset your password."), (2, "reset   your PASSWORD"), (3, "Reset your account")]
    assert exact_groups(items) == {1: [1, 2]}


def test_semantic_groups_by_cosine():
    v = np.array([[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0], [0, 0.98, 0.1]], dtype=np.float32)
    assert semantic_groups([10, 11, 12, 13], v, threshold=0.95) == {10: [10, 11], 12: [12, 13]}


def test_diversity_metrics_see_collapse():
    varied = [" ".join(random.Random(i).sample(VOCAB, 12)) for i in range(40)]
    collapsed = ["reset your password from the settings page"] * 35 + varied[:5]
    assert distinct_n(varied, 2) > distinct_n(collapsed, 2)
    assert compression_ratio(collapsed) > compression_ratio(varied)
    assert pairwise_overlap(collapsed) > pairwise_overlap(varied)
    m = text_metrics(collapsed, {1: collapsed[:4], 2: collapsed[-4:]})
    assert m["unique"] == 6 and m["unique_per_input"] == pytest.approx((1 / 4 + 4 / 4) / 2)


def test_dedupe_metrics_funnel_cli(tmp_path, capsys):
    import json

    from app.cli import main
    from app.store.notebook import Notebook

    book = tmp_path / "nb.db"
    with Notebook.create(book) as nb:
        nb.add_imported_rows(
            [({}, "Open settings, then billing, then download the invoice again."),
             ({}, "open settings then billing then download the invoice again"),
             ({}, "As an AI language model I cannot help."),
             ({}, "The bank feed stopped syncing; reconnect it from the banking page please."),
             ({}, "Short.")],
            origin="synthetic", source="t")
        ids = [r["id"] for r in nb.records()]
        nb.edit_record(ids[3], "status", "rejected")
    assert main(["validate", str(book)]) == 0
    assert main(["dedupe", str(book), "--method", "exact", "--json"]) == 0
    capsys.readouterr()
    assert main(["funnel", str(book), "--json"]) == 0
    stages = {s["stage"]: s for s in json.loads(capsys.readouterr().out)}
    assert stages["generated"]["kept"] == 5
    assert stages["validator:length"]["dropped"] == 1  # "Short." has 1 word < 8
    assert stages["validator:banned_phrases"]["dropped"] == 1
    assert stages["dedupe:exact"]["dropped"] == 1
    assert stages["review"]["dropped"] == 1 and stages["review"]["kept"] == 1
    assert any("banned phrase" in r for r in stages["validator:banned_phrases"]["reasons"])
    assert main(["metrics", str(book), "--json"]) == 0
    [m] = json.loads(capsys.readouterr().out)
    assert m["prompt_version"] == "imported" and m["records"] == 5 and m["unique"] == 4
    code = main(["dedupe", str(book), "--method", "semantic"])
    assert code == 2 and "no embeddings yet" in capsys.readouterr().err


def test_a_dedupe_that_finds_nothing_still_shows_in_the_funnel(nb):
    from app.quality.funnel import funnel
    from app.quality.steps import dedupe

    nb.add_imported_rows([({}, "one text"), ({}, "another text entirely")], origin="synthetic", source="t")
    dedupe(nb, "exact")
    stage = next(s for s in funnel(nb) if s["stage"] == "dedupe:exact")
    assert stage["dropped"] == 0 and stage["kept"] == 2 and stage["step_id"] is not None
