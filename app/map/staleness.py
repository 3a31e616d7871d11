"""How far the notebook's latest map has fallen behind its data.

A map is a snapshot: samples written after it have no point on it, and a point whose
text was edited since sits where the old text was. A deleted record takes its points
with it (``map_points`` cascades), so the map never shows a record that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.store.maps import edited_since_map, latest_map_id, samples_not_on_map
from app.store.notebook import Notebook


@dataclass(frozen=True)
class MapStaleness:
    map_id: int
    new: list[int]  # samples with text that have no point on the map (written since it was computed)
    edited: list[int]  # samples on the map whose text was edited since it was computed

    @property
    def current(self) -> bool:
        return not self.new and not self.edited

    def message(self) -> str:
        """One line for the window and the CLI; empty when the map is current."""
        parts = []
        if self.new:
            parts.append(f"{len(self.new)} new record{'s' if len(self.new) != 1 else ''}")
        if self.edited:
            parts.append(f"{len(self.edited)} edited")
        return f"{' and '.join(parts)} since this map was computed" if parts else ""


def map_staleness(nb: Notebook, map_id: int | None = None) -> MapStaleness | None:
    """What map ``map_id`` (the latest one by default) lacks; None when there is no map."""
    if map_id is None:
        map_id = latest_map_id(nb)
        if map_id is None:
            return None
    # the records the map step embeds: samples whose text is not blank (app.map.embed)
    new = [rid for rid, text in samples_not_on_map(nb, map_id) if text.strip()]
    return MapStaleness(map_id, new, edited_since_map(nb, map_id))
