"""The notebook store: one SQLite file per notebook."""

from app.store.notebook import Edit, Notebook, PromptVersion, Run

__all__ = ["Edit", "Notebook", "PromptVersion", "Run"]
