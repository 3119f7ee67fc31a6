"""SMS segment counting (3GPP TS 23.038), because carriers bill and split by segment.

One character outside the GSM-7 alphabet (an accented capital, an emoji) turns
the whole message into UCS-2 and more than halves the room per segment, which is
why Spanish text needs counting rather than guessing.

Names and place names come from the EHR and may hold anything: ``Zoë``,
``Nguyễn``, an emoji. :func:`gsm7_variable` turns such a value into GSM-7 before
it reaches a template (letters transliterated with ``anyascii``, emoji and other
symbols removed), keeping the letters GSM-7 already has (``ñ``, ``é``, ``ü``), so
one character in a name can no longer triple the segments of a reminder.
"""

from __future__ import annotations

import unicodedata

from anyascii import anyascii

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


_LOOKALIKES = str.maketrans(
    {
        "á": "a", "í": "i", "ó": "o", "ú": "u", "Á": "A", "Í": "I", "Ó": "O", "Ú": "U",
        "â": "a", "ê": "e", "î": "i", "ô": "o", "û": "u", "ç": "Ç", "ë": "e", "ï": "i",
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
        "\u00a0": " ", "\u2026": "...",
    }
)  # fmt: skip


def smart_encode(text: str) -> str:
    """Swap accented vowels and typographic quotes for GSM-7 look-alikes.

    Applied only when that makes the whole text GSM-7, which roughly halves the
    segments of a Spanish reminder (one ``ó`` otherwise forces UCS-2), the same
    trade-off SMS providers call "smart encoding".
    """
    if is_gsm7(text):
        return text
    swapped = text.translate(_LOOKALIKES)
    return swapped if is_gsm7(swapped) else text


_TRANSLITERATED = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Pd", "Pi", "Pf"})
"""Unicode categories spelled out in GSM-7: letters, digits, dashes and quotes (not emoji)."""


def _printable_gsm7(char: str) -> bool:
    return char in GSM7_BASIC and char not in "\n\r"


def gsm7_variable(value: str) -> str:
    """``value`` spelled with printable GSM-7 basic characters only, whitespace squashed.

    Characters already in the GSM-7 basic set stay (``José``, ``Muñoz``, ``Müller``);
    other letters are transliterated (``Zoë`` -> ``Zoe``, ``Nguyễn`` -> ``Nguyen``,
    ``Łukasz`` -> ``Lukasz``); symbols and emoji are removed rather than spelled
    out, and so are the GSM-7 extension characters (``{ } [ ] ~ \\ | ^ €``), which
    cost two units each, so a value's length is exactly what it costs.
    """
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", value):
        if _printable_gsm7(char):
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) in _TRANSLITERATED:
            kept.extend(c for c in anyascii(char) if _printable_gsm7(c))
    return " ".join("".join(kept).split())


def sms_units(text: str) -> int:
    """Length as the carrier counts it: GSM-7 septets (extension chars 2), else UTF-16 units."""
    if is_gsm7(text):
        return sum(2 if char in GSM7_EXTENDED else 1 for char in text)
    return len(text.encode("utf-16-le")) // 2


def sms_capacity(encoding: str, max_segments: int) -> int:
    """Characters that fit in ``max_segments`` segments of ``encoding`` (``gsm7``/``ucs2``)."""
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "gsm7" else (UCS2_SINGLE, UCS2_MULTI)
    return single if max_segments <= 1 else multi * max_segments


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM-7 default alphabet or its extension."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text)


def sms_segments(text: str) -> tuple[str, int]:
    """Return ``(encoding, segments)`` for ``text``; encoding is ``gsm7`` or ``ucs2``."""
    units = sms_units(text)
    if is_gsm7(text):
        single, multi, encoding = GSM7_SINGLE, GSM7_MULTI, "gsm7"
    else:
        single, multi, encoding = UCS2_SINGLE, UCS2_MULTI, "ucs2"
    if units <= single:
        return encoding, 1
    return encoding, -(-units // multi)
