"""The sample notebook that ``make run`` opens: a seed table and two prompts from ``resources/``."""

from __future__ import annotations

from pathlib import Path

from app.core.paths import resources_dir
from app.core.settings import load_settings
from app.store.notebook import Notebook

SAMPLE_PROMPTS = {"support-ticket": "support_ticket.j2", "agent-reply": "agent_reply.j2"}


def sample_dir() -> Path:
    return resources_dir() / "sample"


def create_sample_notebook(path: str | Path) -> Notebook:
    """Create a notebook holding the sample topics table and both sample prompts."""
    from app.data.importer import import_file  # pandas: only when the sample is made, not at every start

    nb = Notebook.create(path)
    import_file(nb, sample_dir() / "support_topics.csv", origin="real")
    for name, file in SAMPLE_PROMPTS.items():
        nb.add_prompt_version(name, (sample_dir() / file).read_text(encoding="utf-8"))
    nb.set_meta("title", "Support tickets (sample)")
    return nb


def open_sample_notebook() -> Notebook:
    """The user's copy of the sample notebook, created on first use in the data folder (Preferences)."""
    path = load_settings()[0].notebooks_folder() / "sample-notebook.db"
    if path.exists():
        return Notebook.open(path)
    return create_sample_notebook(path)
