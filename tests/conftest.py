"""Every test gets a fresh notebook and its own settings/cache folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "sample"


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("studio-home")
    monkeypatch.setenv("SYNTH_STUDIO_HOME", str(home))
    return home


@pytest.fixture
def nb(tmp_path: Path):
    from app.store.notebook import Notebook

    notebook = Notebook.create(tmp_path / "nb.db")
    yield notebook
    notebook.close()


@pytest.fixture
def main_thread_calls(monkeypatch: pytest.MonkeyPatch):
    """``spy(module, name)`` wraps ``module.name`` for the test and returns a list that gets, per
    call, whether it ran on the main (UI) thread: for work that must happen off it."""
    import threading

    def spy(module: object, name: str) -> list[bool]:
        calls: list[bool] = []
        real = getattr(module, name)

        def wrapper(*a, **kw):
            calls.append(threading.current_thread() is threading.main_thread())
            return real(*a, **kw)

        monkeypatch.setattr(module, name, wrapper)
        return calls

    return spy


@pytest.fixture
def topics_csv() -> Path:
    return SAMPLE / "support_topics.csv"


@pytest.fixture
def fake():
    from backends.fake import FakeGenerator

    return FakeGenerator()


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    from backends.bundled import default_generator_model

    return default_generator_model()


@pytest.fixture(scope="session")
def smollm(smollm_path: Path):
    """One real SmolLM2 generator shared by the integration tests (loading costs ~1 s)."""
    from backends.llama_cpp_backend import LlamaCppGenerator

    gen = LlamaCppGenerator(smollm_path, n_ctx=1024)
    yield gen
    gen.close()
