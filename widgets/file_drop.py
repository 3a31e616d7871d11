"""Files dropped on the window: data tables are imported, a notebook file is opened.

The table types are the importer's (``app.data.importer.FORMATS``: the same ones
File > Import offers), so a drop and the menu accept exactly the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QMimeData

from app.data import FORMATS

NOTEBOOK_SUFFIXES = (".db",)


@dataclass
class Dropped:
    notebooks: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.notebooks or self.tables)


def dropped_files(mime: QMimeData) -> Dropped:
    """The local files in a drag that the window can take (other files and URLs are left out)."""
    got = Dropped()
    if not mime.hasUrls():
        return got
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = Path(url.toLocalFile())
        suffix = path.suffix.lower()
        if suffix in NOTEBOOK_SUFFIXES:
            got.notebooks.append(path)
        elif suffix in FORMATS:
            got.tables.append(path)
    return got
