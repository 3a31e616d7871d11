"""The window's colours: a light and a dark palette, and UI colours derived from whichever is in use.

``apply_theme(app, "system" | "light" | "dark")`` (the ``theme`` setting; the Preferences
dialog calls it too) sets the application palette: "light" and "dark" use the Fusion style
with the palettes below, "system" gives back the style and palette the platform started with.

Views never hard-code a UI colour. Status and error text, highlights and table foregrounds
are *tones* (``error``, ``ok``, ``warn``, ``accent``, ``human``, ``muted``): a hue picked for
light or dark backgrounds, then moved towards black or white until its contrast with the
window, base and alternate-row colours is at least 4.5:1 (WCAG AA for text). So:

    set_tone(label, "error")              # a QLabel's text colour; follows a later theme change
    f"<span style='color:{tone_hex('muted')}'>..."   # HTML built now, in the current palette
    set_style(frame, "#cell { background: $base; border: 1px solid $mid; }")
    style_figure(figure)                  # a matplotlib figure in the palette's colours

Data colours (a map's categories, chart bars) stay what they are; :func:`data_colour` only
lightens or darkens one until it stands out from the background (3:1, WCAG's figure for
graphics).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from string import Template
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QToolTip, QWidget

from app.core.settings import THEMES

log = logging.getLogger(__name__)

TEXT_CONTRAST = 4.5  # WCAG AA, normal text
GRAPHIC_CONTRAST = 3.0  # WCAG AA, non-text graphics (points, bars, borders)

# (on a light background, on a dark background): the starting hues; contrast is then enforced
_TONES: dict[str, tuple[str, str]] = {
    "error": ("#b3261e", "#ff8a80"),
    "ok": ("#1b7f4b", "#7fd19b"),
    "warn": ("#8f5b00", "#f0b45a"),
    "accent": ("#1f5fa8", "#8ab4f8"),
    "human": ("#5b4bb7", "#b9a6ff"),
}
TONES = (*_TONES, "muted")
STATUS_TONES = {"accepted": "ok", "rejected": "error", "flagged": "warn"}  # a record's review status as text

_STYLE = "studioStyle"  # the widget property holding a set_style template
_system_style: str | None = None  # the platform's style, before any theme painted Fusion
_watcher: _PaletteWatcher | None = None
_cache: dict[tuple[str, int], QColor] = {}

Role = QPalette.ColorRole


# -- palettes -------------------------------------------------------------------------------------


def dark_palette() -> QPalette:
    p = QPalette()
    colours = {
        Role.Window: "#2b2d30", Role.WindowText: "#e8e8e8", Role.Base: "#1f2023", Role.AlternateBase: "#27292c",
        Role.Text: "#e8e8e8", Role.PlaceholderText: "#9aa0a6", Role.Button: "#36383c", Role.ButtonText: "#e8e8e8",
        Role.ToolTipBase: "#3c3f42", Role.ToolTipText: "#f0f0f0", Role.BrightText: "#ff8a80",
        Role.Light: "#55585d", Role.Midlight: "#45484c", Role.Mid: "#5c6066", Role.Dark: "#1a1b1d",
        Role.Shadow: "#0d0d0e", Role.Highlight: "#3d6fb6", Role.HighlightedText: "#ffffff",
        Role.Link: "#8ab4f8", Role.LinkVisited: "#c58af9",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    disabled = QPalette.ColorGroup.Disabled
    for role in (Role.WindowText, Role.Text, Role.ButtonText, Role.PlaceholderText):
        p.setColor(disabled, role, QColor("#8f9399"))
    p.setColor(disabled, Role.Highlight, QColor("#45484c"))
    p.setColor(disabled, Role.Base, QColor("#26282b"))
    return p


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    p = QPalette(style.standardPalette())
    p.setColor(Role.Link, QColor("#1a5fb4"))
    p.setColor(Role.PlaceholderText, QColor("#6b6b6b"))
    # Fusion's selection blue is too light for white text (3.7:1): the same blue, darker
    p.setColor(Role.Highlight, readable(p.color(Role.Highlight), [p.color(Role.HighlightedText)]))
    return p


def apply_theme(app: QApplication, name: str) -> None:
    """Use the ``name`` theme ("system", "light" or "dark") for the whole application, now.

    "system" goes back to the platform's style and palette (and follows the desktop when it
    switches between light and dark). Widgets styled with :func:`set_style`/:func:`set_tone`
    and matplotlib canvases follow at once; HTML a view already rendered changes the next
    time it renders.
    """
    global _system_style
    if name not in THEMES:
        log.warning("unknown theme %r; using the system's", name)
        name = "system"
    _watch()
    style = app.style()
    if _system_style is None and style is not None:
        _system_style = style.name()
    hints = app.styleHints()
    if name == "system":
        if hasattr(hints, "unsetColorScheme"):  # Qt 6.8+: native dialogs and title bars follow too
            hints.unsetColorScheme()
        if _system_style is not None:
            app.setStyle(_system_style)
        app.setPalette(QPalette())  # an empty palette: the platform's own, kept up to date by Qt
    else:
        if hasattr(hints, "setColorScheme"):
            hints.setColorScheme(Qt.ColorScheme.Dark if name == "dark" else Qt.ColorScheme.Light)
        # always painted, even where the platform could switch: these two palettes are the ones
        # tests/test_desktop_habits.py checks for contrast
        app.setStyle("Fusion")
        app.setPalette(dark_palette() if name == "dark" else light_palette())
    QToolTip.setPalette(app.palette())
    restyle()


def restyle() -> None:
    """Fill every :func:`set_style` template in the current palette."""
    for w in QApplication.allWidgets():  # (charts draw again themselves: widgets.chart)
        template = w.property(_STYLE)
        if isinstance(template, str):
            w.setStyleSheet(_fill(template))


class _PaletteWatcher(QWidget):
    """A hidden widget that hears every change of the application palette, whoever makes it (this
    module, another dialog, the desktop turning dark), and restyles once when events settle."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = False

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt name)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) and not self._pending:
            self._pending = True
            QTimer.singleShot(0, self._restyle)
        super().changeEvent(event)

    def _restyle(self) -> None:
        self._pending = False
        restyle()


def _watch() -> None:
    global _watcher
    if _watcher is None:
        _watcher = _PaletteWatcher()


# -- colours from the palette -----------------------------------------------------------------


def luminance(colour: QColor) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""

    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` moved a fraction ``t`` of the way to ``b``."""
    return QColor.fromRgbF(*(x + (y - x) * t for x, y in zip(_rgb(a), _rgb(b))))


def _rgb(c: QColor) -> tuple[float, float, float]:
    return c.redF(), c.greenF(), c.blueF()


def readable(colour: QColor | str, backgrounds: Iterable[QColor], ratio: float = TEXT_CONTRAST) -> QColor:
    """``colour``, or the nearest mix of it with white (on dark backgrounds) or black (on light
    ones) whose contrast with every one of ``backgrounds`` is at least ``ratio``."""
    bgs = list(backgrounds)
    start = QColor(colour)
    dark_bg = sum(luminance(b) for b in bgs) / len(bgs) < 0.18
    towards = QColor("#ffffff" if dark_bg else "#000000")
    for step in range(41):
        c = mix(start, towards, step / 40)
        if min(contrast_ratio(c, b) for b in bgs) >= ratio:
            return c
    return towards


def is_dark(palette: QPalette | None = None) -> bool:
    pal = palette or QGuiApplication.palette()
    return luminance(pal.color(Role.Window)) < 0.18


def text_backgrounds(palette: QPalette | None = None) -> list[QColor]:
    """The backgrounds UI text is drawn on: the window, and the base and alternate rows of lists and tables."""
    pal = palette or QGuiApplication.palette()
    return [pal.color(Role.Window), pal.color(Role.Base), pal.color(Role.AlternateBase)]


def tone(name: str, palette: QPalette | None = None) -> QColor:
    """The colour for UI text of kind ``name`` (one of :data:`TONES`), readable on this palette."""
    pal = palette or QGuiApplication.palette()
    key = (name, pal.cacheKey())
    hit = _cache.get(key)
    if hit is not None:
        return QColor(hit)
    if name == "muted":  # secondary text: the text colour a third of the way to the window's
        start = mix(pal.color(Role.WindowText), pal.color(Role.Window), 0.35)
    else:
        start = QColor(_TONES[name][1 if is_dark(pal) else 0])
    colour = _cache[key] = readable(start, text_backgrounds(pal))
    return QColor(colour)


def tone_hex(name: str, palette: QPalette | None = None) -> str:
    """:func:`tone` as ``#rrggbb``, for HTML and style sheets."""
    return tone(name, palette).name()


def data_colour(colour: QColor | str, background: QColor, ratio: float = GRAPHIC_CONTRAST) -> QColor:
    """A data colour (a category, a bar) kept as close to itself as will stand out from ``background``."""
    return readable(colour, [background], ratio)


# -- widgets that follow the theme ----------------------------------------------------------------


def _values(palette: QPalette | None = None) -> dict[str, str]:
    pal = palette or QGuiApplication.palette()
    roles = {"window": Role.Window, "window_text": Role.WindowText, "base": Role.Base,
             "alternate_base": Role.AlternateBase, "text": Role.Text, "mid": Role.Mid, "dark": Role.Dark,
             "light": Role.Light, "highlight": Role.Highlight, "highlighted_text": Role.HighlightedText}
    values = {key: pal.color(role).name() for key, role in roles.items()}
    values.update({name: tone_hex(name, pal) for name in TONES})
    return values


def _fill(template: str) -> str:
    return Template(template).substitute(_values())


def set_style(widget: QWidget, template: str) -> None:
    """``widget.setStyleSheet`` with ``$tone`` and ``$role`` names (``$error``, ``$muted``, ``$base``,
    ``$mid`` ...) filled from the current palette, and filled again when the theme changes."""
    _watch()
    widget.setProperty(_STYLE, template)
    widget.setStyleSheet(_fill(template))


def set_tone(widget: QWidget, name: str | None, extra: str = "") -> None:
    """Colour ``widget``'s text with the tone ``name`` (None: the palette's own text colour)."""
    set_style(widget, (f"color: ${name};" if name else "") + extra)


def style_figure(figure: Any, palette: QPalette | None = None) -> None:
    """Give a matplotlib figure the palette's background and text colours (data colours stay).

    Call it after drawing into the figure (inside ``Chart.drawing()``).
    """
    from matplotlib.text import Text

    pal = palette or QGuiApplication.palette()
    window = pal.color(Role.Window)
    bg, fg = window.name(), pal.color(Role.WindowText).name()
    edge = tone_hex("muted", pal)

    def visible(rgba: tuple[float, ...]) -> tuple[float, ...]:
        if len(rgba) < 4 or rgba[3] == 0:  # no fill (an outline, a hatch)
            return rgba
        return (*_rgb(data_colour(QColor.fromRgbF(*rgba[:3]), window)), rgba[3])

    figure.set_facecolor(bg)
    for ax in figure.axes:
        ax.set_facecolor(bg)
        for patch in ax.patches:  # bars and histograms: their own hue, just far enough from the background
            patch.set_facecolor(visible(tuple(patch.get_facecolor())))
        ax.tick_params(which="both", colors=edge, labelcolor=fg)
        for spine in ax.spines.values():
            spine.set_edgecolor(edge)
        for text in ax.findobj(Text):
            text.set_color(fg)
            box = text.get_bbox_patch()
            if box is not None:  # a label drawn over the bars keeps a backing in the window colour
                box.set_facecolor(bg)
        legend = ax.get_legend()
        if legend is not None:
            for handle in legend.legend_handles:
                if handle is not None and hasattr(handle, "get_facecolor"):
                    handle.set_facecolor(visible(tuple(handle.get_facecolor())))
            legend.get_frame().set_facecolor(bg)
            legend.get_frame().set_edgecolor(edge)
    for text in figure.texts:
        text.set_color(fg)

