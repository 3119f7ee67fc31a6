"""SMS segment counting (3GPP TS 23.038), because carriers bill and split by segment.

One character outside the GSM-7 alphabet (an accented capital, an emoji) turns
the whole message into UCS-2 and more than halves the room per segment, which is
why Spanish text needs counting rather than guessing.
"""

from __future__ import annotations

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


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM-7 default alphabet or its extension."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text)


def sms_segments(text: str) -> tuple[str, int]:
    """Return ``(encoding, segments)`` for ``text``; encoding is ``gsm7`` or ``ucs2``."""
    if is_gsm7(text):
        units = sum(2 if char in GSM7_EXTENDED else 1 for char in text)
        single, multi, encoding = GSM7_SINGLE, GSM7_MULTI, "gsm7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = UCS2_SINGLE, UCS2_MULTI, "ucs2"
    if units <= single:
        return encoding, 1
    return encoding, -(-units // multi)
