"""A model prepared for batched CPU decoding: requantized once by libllama, cached by the source's
hash, its own hash for lineage, and what it changes measured (backends.prepare)."""

from __future__ import annotations

import json

import pytest

from app.core.errors import ModelError
from backends.gguf_info import file_sha256
from backends.prepare import prepare_model, prepared_path, quality_cost

pytestmark = pytest.mark.integration


def test_a_prepared_model_is_made_once_and_recorded(smollm_path, monkeypatch):
    import llama_cpp

    from backends.gguf_info import read_gguf_info
    from backends.llama_cpp_backend import LlamaCppGenerator

    prep = prepare_model(smollm_path, "q8_0")
    src_sha = file_sha256(smollm_path)
    assert prep.path == str(prepared_path(src_sha, "q8_0")) and prep.source_sha256 == src_sha
    assert prep.sha256 == file_sha256(prep.path) != src_sha
    note = json.loads(prepared_path(src_sha, "q8_0").with_suffix(".json").read_text())
    assert note["sha256"] == prep.sha256 and note["type"] == "q8_0"
    assert "q8_0" in read_gguf_info(prep.path).file_type.lower()
    # cached: asked again, libllama is not called
    monkeypatch.setattr(llama_cpp, "llama_model_quantize", lambda *a: pytest.fail("requantized again"))
    assert prepare_model(smollm_path, "q8_0") == prep
    gen = LlamaCppGenerator(prep.path, n_ctx=256)
    try:
        assert gen.info.sha256 == prep.sha256  # what a run's lineage records
    finally:
        gen.close()


def test_the_quality_cost_of_q8_0_is_small_and_measured(smollm_path):
    prep = prepare_model(smollm_path, "q8_0")
    cost = quality_cost(smollm_path, prep.path, prompts=("Write one sentence about the sea.",
                                                         "Give two tips for writing clear emails."), max_tokens=24)
    print(cost.line())
    assert cost.prompts == 2 and cost.tokens > 20
    assert 0 < cost.mean_abs_logprob_diff < 0.2  # different weights, close values
    same = quality_cost(smollm_path, smollm_path, prompts=("Write one sentence about the sea.",), max_tokens=16)
    assert same.mean_abs_logprob_diff == 0 and same.greedy_same == 1  # the measure can tell


def test_an_unknown_type_is_refused():
    with pytest.raises(ModelError, match="choose q8_0 or q4_0"):
        prepare_model(None, "q2_k")
