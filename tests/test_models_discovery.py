"""Models on this machine: Ollama's store, llama.cpp's cache, the folders a person added, and what each GGUF says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.core.settings import edit_settings, load_settings
from app.generate.model_choice import (
    ModelChoice,
    ModelEntry,
    find_models,
    job_model_args,
    model_name,
    remember_model_place,
    set_notebook_model,
    with_preferences,
)

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"


def write_gguf(path: Path, *, name: str = "tiny", chat_template: str | None = TEMPLATE, file_type: bool = True,
               context: int = 4096, dtype: type = np.float32) -> Path:
    """A tiny but whole GGUF file (one tensor), as llama.cpp's converters write them."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(context)
    if file_type:
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def add_ollama_model(store: Path, name: str, tag: str, blob_source: Path | None, *, namespace: str = "library",
                     host: str = "registry.ollama.ai", digest: str | None = None) -> Path:
    """What `ollama pull` leaves: the GGUF as blobs/sha256-<hex>, and a manifest naming it among other layers."""
    import hashlib

    data = blob_source.read_bytes() if blob_source else b""
    digest = digest or hashlib.sha256(data).hexdigest()
    if blob_source is not None:
        (store / "blobs").mkdir(parents=True, exist_ok=True)
        (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    manifest = store / "manifests" / host / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "0" * 64},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:" + "1" * 64, "size": 10},
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": len(data)},
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "2" * 64, "size": 10},
        ],
    }))
    return store / "blobs" / f"sha256-{digest}"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty home folder, and none of the environment variables that move the places searched."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for var in ("OLLAMA_MODELS", "LLAMA_CACHE", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return home


def _found(source: str, under: Path | None = None) -> dict[str, ModelEntry]:
    """The models find_models lists from ``source`` (only those in ``under``: a machine may have its own)."""
    return {e.display_name: e for e in find_models()
            if e.source == source and (under is None or Path(e.path).is_relative_to(under))}


def test_ollama_models_are_found_by_name_and_tag_with_what_their_gguf_says(tmp_path, home, monkeypatch):
    store = tmp_path / "ollama-models"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    chat = write_gguf(tmp_path / "src" / "chat.gguf", name="Tiny Chat")
    plain = write_gguf(tmp_path / "src" / "plain.gguf", name="Tiny Base", chat_template=None, context=2048)
    blob = add_ollama_model(store, "tinychat", "q8_0", chat)
    add_ollama_model(store, "tinybase", "latest", plain, namespace="someone")
    add_ollama_model(store, "Tiny-GGUF", "Q8_0", chat, host="hf.co", namespace="bartowski")  # the same blob: listed once, by its Ollama name
    add_ollama_model(store, "halfpulled", "latest", None, digest="3" * 64)  # the blob never arrived
    (store / "manifests" / "registry.ollama.ai" / "library" / "tinychat" / "broken").write_text("{not json")

    found = _found("Ollama")
    assert set(found) == {"tinychat:q8_0", "someone/tinybase:latest", "halfpulled:latest"}
    chat_entry, plain_entry, missing = found["tinychat:q8_0"], found["someone/tinybase:latest"], found["halfpulled:latest"]
    assert chat_entry.path == str(blob) and Path(chat_entry.path).name.startswith("sha256-")
    assert (chat_entry.info.file_type, chat_entry.info.context_length, chat_entry.info.has_chat_template) == \
        ("Q8_0", 4096, True)
    assert chat_entry.warning is None
    assert (plain_entry.info.context_length, plain_entry.info.has_chat_template) == (2048, False)
    assert "no chat template" in plain_entry.warning and "someone/tinybase:latest" in plain_entry.warning
    assert missing.info is None and "not found" in missing.error
    # the generate bar and the records name a chosen blob the way Ollama does
    assert model_name(str(blob)) == "tinychat:q8_0"
    assert model_name(str(chat)) is None and model_name(None) is None


def test_ollama_in_the_home_folder_and_the_llama_cpp_cache(tmp_path, home):
    add_ollama_model(home / ".ollama" / "models", "tinychat", "latest", write_gguf(tmp_path / "chat.gguf"))
    cached = write_gguf(home / ".cache" / "llama.cpp" / "bartowski_Tiny-GGUF_tiny-Q8_0.gguf", name="Cached Tiny")
    assert set(_found("Ollama", under=home)) == {"tinychat:latest"}  # (not /usr/share/ollama, if this machine has it)
    llama = _found("llama.cpp cache")
    assert set(llama) == {"Cached Tiny"} and llama["Cached Tiny"].path == str(cached)


def test_files_and_folders_added_are_remembered_in_the_settings(tmp_path, home):
    folder = tmp_path / "my-models"
    write_gguf(folder / "nested" / "a.gguf", name="Model A")
    single = write_gguf(tmp_path / "elsewhere" / "b.gguf", name="Model B", chat_template=None)
    remember_model_place(folder)
    remember_model_place(single)
    remember_model_place(folder)  # once is enough
    settings, warnings = load_settings()
    assert warnings == [] and settings.model_folders == [str(folder.resolve()), str(single.resolve())]
    added = _found("added")
    assert set(added) == {"Model A", "Model B"}
    assert added["Model B"].info.has_chat_template is False and added["Model B"].warning


def test_the_file_type_comes_from_the_tensors_when_the_header_does_not_say(tmp_path):
    from backends.gguf_info import read_gguf_info

    info = read_gguf_info(write_gguf(tmp_path / "old.gguf", file_type=False, dtype=np.float16))
    assert info.file_type == "F16"
    assert read_gguf_info(write_gguf(tmp_path / "new.gguf")).file_type == "Q8_0"


def test_jobs_take_the_default_model_and_threads_from_the_preferences(nb, tmp_path):
    default = write_gguf(tmp_path / "default.gguf")
    assert job_model_args(nb)["model_path"] is None  # nothing set anywhere: the bundled model, every core
    with edit_settings() as s:
        s.default_model, s.compute_threads = str(default), 3
    args = job_model_args(nb)
    assert args["model_path"] == str(default) and args["model_options"]["n_threads"] == 3
    other = write_gguf(tmp_path / "other.gguf")
    set_notebook_model(nb, ModelChoice(path=str(other), threads=2))  # the notebook's own choice wins
    args = job_model_args(nb)
    assert args["model_path"] == str(other) and args["model_options"]["n_threads"] == 2
    server = with_preferences(ModelChoice(path="http://127.0.0.1:8080/v1"))
    assert server.path == "http://127.0.0.1:8080/v1" and server.threads is None


def test_the_model_manager_warns_about_a_model_without_a_chat_template_and_remembers_a_folder(
        qtbot, nb, tmp_path, home, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from widgets.model_manager import COLUMNS, ModelManager

    folder = tmp_path / "added"
    write_gguf(folder / "chat.gguf", name="Chatty")
    write_gguf(folder / "base.gguf", name="Basey", chat_template=None)
    dialog = ModelManager(nb)
    qtbot.addWidget(dialog)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    dialog._on_add(folder=True)
    assert load_settings()[0].model_folders == [str(folder.resolve())]
    rows = {dialog.table.item(r, COLUMNS.index("name")).text(): r for r in range(dialog.table.rowCount())}
    cell = lambda r, c: dialog.table.item(r, COLUMNS.index(c)).text()  # noqa: E731
    assert (cell(rows["Basey"], "quantisation"), cell(rows["Basey"], "context"),
            cell(rows["Basey"], "chat template"), cell(rows["Basey"], "found in")) == ("Q8_0", "4096", "no", "added")
    dialog.table.selectRow(rows["Basey"])
    assert "no chat template" in dialog.message.text()
    dialog.table.selectRow(rows["Chatty"])
    assert dialog.message.text() == ""
    dialog.table.selectRow(rows["Basey"])
    dialog.use_selected()  # still usable: it generates with the plain prompt format
    assert nb.get_meta("model")["path"] == str(folder / "base.gguf")

    again = ModelManager(nb)  # a new dialog finds the folder again, from the settings
    qtbot.addWidget(again)
    assert {"Chatty", "Basey"} <= {e.display_name for e in again.entries if e.source == "added"}
