"""Colours derived from the palette, so that light and dark themes both read well."""

from __future__ import annotations

from PySide6.QtGui import QColor

__all__ = ["mix"]


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved a fraction `t` of the way to `b` (a tint that works on light and dark)."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )
