"""Cluster names (c-TF-IDF) in any script: Greek, Cyrillic, Devanagari, and Chinese without spaces."""

from __future__ import annotations

import numpy as np

from app.map.projection import _words, ctfidf_labels


def _labels(texts: list[str]) -> dict[int, set[str]]:
    clusters = np.repeat(np.arange(len(texts) // 2), 2)  # texts in pairs, one pair per cluster
    return {c: set(label.split(" · ")) for c, label in ctfidf_labels(texts, clusters, top=2).items()}


def test_greek_and_cyrillic_clusters_are_named_by_their_own_words():
    labels = _labels([
        "Επιστροφή χρημάτων για την παραγγελία μου", "Ζητώ επιστροφή χρημάτων αμέσως",
        "Ξέχασα τον κωδικό πρόσβασης", "Ο κωδικό πρόσβασης δεν δουλεύει",
        "Возврат денег за заказ", "Прошу возврат денег",
        "Забыл пароль от входа", "Пароль от входа не подходит",
    ])
    assert labels == {0: {"επιστροφή", "χρημάτων"}, 1: {"κωδικό", "πρόσβασης"},
                      2: {"возврат", "денег"}, 3: {"пароль", "входа"}}


def test_chinese_gets_character_pairs_and_devanagari_keeps_its_vowel_signs():
    labels = _labels(["我想申请退款", "退款什么时候到账", "忘记密码了怎么办", "密码重置失败了",
                      "मुझे पैसे वापस चाहिए", "पैसे वापस कब मिलेंगे"])
    assert "退款" in labels[0] and "密码" in labels[1]
    assert labels[2] == {"पैसे", "वापस"}
    assert "नमस्ते" in _words("नमस्ते दुनिया")  # not cut at the virama or the vowel sign


def test_english_is_named_as_before():
    words = _words("The customer's e-mail can't reach support in 2024")
    assert words == ["customer's", "e-mail", "reach", "support"]
    labels = _labels(["refund money back", "refund money please", "login password reset", "password login fails"])
    assert labels == {0: {"refund", "money"}, 1: {"login", "password"}}
