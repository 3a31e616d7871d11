"""Embeddings (converted MiniLM through llama.cpp), map clusters, and axis extrema."""

import json

import numpy as np
import pytest

from app.core.errors import StudioError
from app.map.axes import axis_values, extrema
from app.map.projection import cluster, compute_map, ctfidf_labels
from app.store.embeddings import load_embeddings, save_embeddings


def _add(nb, text):
    nb.add_imported_rows([({}, text)], origin="synthetic", source="test")
    return nb.conn.execute("SELECT MAX(id) FROM records").fetchone()[0]


@pytest.fixture(scope="module")
def minilm_gguf(tmp_path_factory):
    from backends.bert_gguf import converted_minilm

    return converted_minilm(cache=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def embedder(minilm_gguf):
    from backends.embedder import LlamaEmbedder

    e = LlamaEmbedder(minilm_gguf)
    yield e
    e.close()


@pytest.mark.integration
def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    v = embedder.embed([
        "A man is playing a guitar.", "Someone plays an instrument, a guitar.",
        "How do I reset my password?", "I forgot my password and need to change it.",
        "The stock market fell sharply today.",
    ])
    assert v.shape == (5, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    sim = v @ v.T
    print(np.round(sim, 3))
    assert sim[0, 1] > 0.6 and sim[2, 3] > 0.6  # paraphrases
    for a, b in [(0, 2), (0, 4), (1, 3), (2, 4), (3, 4)]:
        assert sim[a, b] < 0.3  # unrelated
    assert min(sim[0, 1], sim[2, 3]) > max(sim[0, 2], sim[0, 4], sim[1, 3], sim[2, 4], sim[3, 4]) + 0.4


@pytest.mark.integration
def test_converting_twice_reuses_the_cache(minilm_gguf, tmp_path_factory):
    from backends.bert_gguf import converted_minilm
    from backends.gguf_info import read_gguf_info

    before = minilm_gguf.stat().st_mtime_ns
    again = converted_minilm(cache=minilm_gguf.parent)
    assert again == minilm_gguf and again.stat().st_mtime_ns == before
    info = read_gguf_info(again)
    assert info.architecture == "bert" and info.metadata["bert.pooling_type"] == 1
    assert info.metadata["tokenizer.ggml.model"] == "bert"


@pytest.mark.integration
def test_embed_notebook_computes_only_missing_and_stale_vectors(nb, embedder):
    from app.map.embed import embed_notebook

    ids = [_add(nb, t) for t in ["Refund please.", "My invoice is wrong.", "Login fails."]]
    assert embed_notebook(nb, embedder) == (3, 0)
    assert embed_notebook(nb, embedder) == (0, 3)
    nb.edit_record(ids[1], "output", "My invoice total is wrong.")
    assert embed_notebook(nb, embedder) == (1, 2)  # the edited text is embedded again
    got, vecs = load_embeddings(nb, ids)
    assert got == ids and vecs.shape == (3, 384)


def _planted(nb, groups=4, per=30, dim=16, seed=0):
    """Well-separated synthetic groups with made-up words, stored as if embedded."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim)) * 10
    truth, items, vecs = {}, [], []
    words = ["apple", "river", "engine", "violet"]
    for g in range(groups):
        for i in range(per):
            text = f"{words[g]} sample number {i}"
            rid = _add(nb, text)
            v = centres[g] + rng.normal(size=dim)
            items.append((rid, text))
            vecs.append(v / np.linalg.norm(v))
            truth[rid] = g
    save_embeddings(nb, "fake-embedder", items, np.asarray(vecs, dtype=np.float32))
    return truth


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_clusters_recover_planted_groups(nb, method):
    truth = _planted(nb)
    m = compute_map(nb, method=method, seed=1)
    assert m.method == method and m.xy.shape == (120, 2)
    found = dict(zip(m.record_ids, m.clusters.tolist()))
    # each planted group maps to one cluster, and different groups to different clusters
    per_group = {}
    for rid, g in truth.items():
        per_group.setdefault(g, []).append(found[rid])
    majority = {}
    for g, labels in per_group.items():
        clustered = [c for c in labels if c >= 0]
        top = max(set(clustered), key=clustered.count)
        assert clustered.count(top) >= 0.9 * len(labels), (g, labels)
        majority[g] = top
    assert len(set(majority.values())) == 4
    # labels name each cluster by its distinctive words
    for g, c in majority.items():
        assert m.labels[c].split(" · ")[0] == ["apple", "river", "engine", "violet"][g]
    # a second call is served from the cache
    again = compute_map(nb, method=method, seed=1)
    assert again.cached and again.map_id == m.map_id and np.allclose(again.xy, m.xy)


def test_extrema_return_the_truly_longest_shortest_and_least_likely(nb):
    texts = ["short", "a medium length text here", "x" * 500, "tiny", "a somewhat longer text than medium"]
    ids = [_add(nb, t) for t in texts]
    for rid, lp in zip(ids, [-0.1, -2.5, -0.7, -4.0, -1.0]):
        nb.conn.execute("UPDATE records SET mean_logprob = ?, completion_tokens = ? WHERE id = ?",
                        (lp, len(texts[ids.index(rid)]) // 4, rid))
    nb.conn.commit()
    top, bottom = extrema(nb, "length", k=2)
    assert [e.record_id for e in top] == [ids[2], ids[4]]
    assert [e.record_id for e in bottom] == [ids[3], ids[0]]
    _, least = extrema(nb, "likelihood", k=1)
    assert least[0].record_id == ids[3] and least[0].value == pytest.approx(-4.0)
    most_perplexed, _ = extrema(nb, "perplexity", k=1)
    assert most_perplexed[0].record_id == ids[3] and most_perplexed[0].value == pytest.approx(np.exp(4.0))
    with pytest.raises(StudioError, match="needs a map"):
        axis_values(nb, "outlier")
    with pytest.raises(StudioError, match="unknown axis"):
        axis_values(nb, "colour")
    with pytest.raises(StudioError, match="no score named"):
        axis_values(nb, "score:missing")


def test_ctfidf_prefers_words_distinctive_to_a_cluster():
    texts = ["refund money back", "refund money please", "login password reset", "password login fails"]
    labels = ctfidf_labels(texts, np.array([0, 0, 1, 1]), top=2)
    assert set(labels[0].split(" · ")) == {"refund", "money"}
    assert set(labels[1].split(" · ")) == {"login", "password"}


def test_hdbscan_marks_a_lone_point_as_noise():
    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), [[50, 50]]])
    for engine in ("hdbscan", "sklearn"):
        labels, outlier = cluster(pts, 5, engine)
        # GLOSH (hdbscan's outlier score): the lone point is the most unusual by far
        assert labels[-1] == -1 and outlier[-1] > 0.99 and outlier[:40].max() < outlier[-1] - 0.2
        assert len(set(labels[:40].tolist())) == 2
    with pytest.raises(StudioError, match="unknown clusterer"):
        cluster(pts, 5, "kmeans")


def test_map_cli_prints_clusters_and_writes_a_png(tmp_path, capsys):
    from app.cli import main
    from app.store.notebook import Notebook

    nb_path = tmp_path / "cli.db"
    with Notebook.create(nb_path) as nb:
        _planted(nb, groups=3, per=10)
    png = tmp_path / "map.png"
    assert main(["map", str(nb_path), "--method", "pca", "--png", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 30 and sum(c["size"] for c in out["clusters"]) == 30
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["extrema", str(nb_path), "--axis", "centroid", "--k", "3", "--json"]) == 0
    ex = json.loads(capsys.readouterr().out)
    assert len(ex["top"]) == 3 and ex["top"][0]["value"] >= ex["bottom"][0]["value"]


def test_without_umap_the_map_falls_back_to_pca_and_says_why(nb, monkeypatch):
    import app.map.projection as mp

    def broken():
        raise StudioError("umap-learn is not usable (ImportError: no module named umap); the map falls back to PCA")

    monkeypatch.setattr(mp, "_import_umap", broken)
    _planted(nb, groups=3, per=10)
    m = compute_map(nb, method="auto")
    assert m.method == "pca" and "umap-learn is not usable" in m.params["note"]
    assert len(set(m.clusters.tolist()) - {-1}) == 3
    with pytest.raises(StudioError, match="umap-learn is not usable"):
        compute_map(nb, method="umap")


def test_a_map_without_embeddings_says_what_to_do(nb):
    with pytest.raises(StudioError, match="synth-studio embed"):
        compute_map(nb)
