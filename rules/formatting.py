"""Human-readable local dates and times per language, without a locale database.

The service runs in containers where system locales are rarely installed, so the
handful of words the templates need are spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time

_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
}
_WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "es": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}
_AND = {"en": "and", "es": "y"}


def format_date(day: date, language: str) -> str:
    """``Tuesday, December 1`` / ``martes 1 de diciembre``."""
    weekday = _WEEKDAYS.get(language, _WEEKDAYS["en"])[day.weekday()]
    month = _MONTHS.get(language, _MONTHS["en"])[day.month - 1]
    if language == "es":
        return f"{weekday} {day.day} de {month}"
    return f"{weekday}, {month} {day.day}"


def format_time(clock: time, language: str) -> str:
    """``9:30 AM`` in English, 24-hour ``9:30`` in Spanish."""
    if language == "es":
        return f"{clock.hour}:{clock.minute:02d}"
    hour = clock.hour % 12 or 12
    suffix = "AM" if clock.hour < 12 else "PM"
    return f"{hour}:{clock.minute:02d} {suffix}"


def join_words(items: Sequence[str], language: str) -> str:
    """``a``, ``a and b``, ``a, b and c`` in the message language."""
    if len(items) <= 1:
        return "".join(items)
    conjunction = _AND.get(language, _AND["en"])
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
