"""Human-readable local dates and times per language, without a locale database.

The service runs in containers where system locales are rarely installed, so the
handful of words the templates need are spelled out here.

Dates come in two forms. The long form (``Tuesday, December 1`` / ``martes 1 de
diciembre``) is what planning stores in a message's ``date`` variable and what
email shows. An SMS must fit one 160-character segment, so the SMS renderer turns
that long form into the short form (``Tue Dec 1`` / ``mar 1 dic``) with
:func:`sms_date`; the short words use only GSM-7 letters (``sab``, not ``sáb``) so
a date can never force the whole text into UCS-2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, time, timedelta
from functools import lru_cache

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
_SHORT_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "es": ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"],
}
_SHORT_WEEKDAYS = {
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "es": ["lun", "mar", "mié", "jue", "vie", "sab", "dom"],
}


def format_date(day: date, language: str) -> str:
    """``Tuesday, December 1`` / ``martes 1 de diciembre``."""
    weekday = _WEEKDAYS.get(language, _WEEKDAYS["en"])[day.weekday()]
    month = _MONTHS.get(language, _MONTHS["en"])[day.month - 1]
    if language == "es":
        return f"{weekday} {day.day} de {month}"
    return f"{weekday}, {month} {day.day}"


def _short_date(language: str, weekday: int, month: int, day: int) -> str:
    key = language if language in _SHORT_WEEKDAYS else "en"
    weekday_name, month_name = _SHORT_WEEKDAYS[key][weekday], _SHORT_MONTHS[key][month]
    if key == "es":
        return f"{weekday_name} {day} {month_name}"
    return f"{weekday_name} {month_name} {day}"


def format_date_short(day: date, language: str) -> str:
    """``Tue Dec 1`` / ``mar 1 dic``: the SMS form of :func:`format_date`."""
    return _short_date(language, day.weekday(), day.month - 1, day.day)


def _long_date_pattern(language: str) -> re.Pattern[str]:
    weekdays = "|".join(_WEEKDAYS[language])
    months = "|".join(_MONTHS[language])
    if language == "es":
        shape = rf"(?P<weekday>{weekdays}) (?P<day>\d{{1,2}}) de (?P<month>{months})"
    else:
        shape = rf"(?P<weekday>{weekdays}), (?P<month>{months}) (?P<day>\d{{1,2}})"
    return re.compile(rf"\A{shape}\Z")


_LONG_DATES = {language: _long_date_pattern(language) for language in _MONTHS}


def sms_date(text: str, language: str) -> str:
    """The short SMS form of a date that :func:`format_date` wrote in its long form.

    Messages are planned (and stored) days before they are rendered, with the
    long form that email shows; the SMS renderer shortens it here. Text that is
    not a long date of ``language`` (already short, or written some other way)
    is returned unchanged.
    """
    key = language if language in _LONG_DATES else "en"
    found = _LONG_DATES[key].match(text.strip())
    if found is None:
        return text
    weekday = _WEEKDAYS[key].index(found["weekday"])
    month = _MONTHS[key].index(found["month"])
    return _short_date(key, weekday, month, int(found["day"]))


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


@lru_cache(maxsize=16)
def longest_sms_date(language: str) -> str:
    """The longest SMS date of ``language`` over four years (10 characters: ``Mon Jan 10``)."""
    first = date(2028, 1, 1)
    days = (first + timedelta(days=offset) for offset in range(4 * 366))
    return max((sms_date(format_date(day, language), language) for day in days), key=len)


@lru_cache(maxsize=16)
def longest_time(language: str, count: int = 1) -> str:
    """The longest ``count`` clock times of ``language`` joined (``12:00 AM and 12:00 AM``)."""
    clocks = (time(minute // 60, minute % 60) for minute in range(24 * 60))
    longest = max((format_time(clock, language) for clock in clocks), key=len)
    return join_words([longest] * count, language)
