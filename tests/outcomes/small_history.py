"""A two-week history small enough to count by hand (the expected numbers are in the tests).

ISO weeks 2026-W45 (Nov 2-8) and 2026-W46 (Nov 9-15); one message before the period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.outcomes.history import History

SINCE = datetime(2026, 11, 2, tzinfo=UTC).date()
LOC_RIVERSIDE = "Location/e4W4rmGe9QzuGm2Dy4NBqVc0"
LOC_EASTSIDE = "Location/eXn2v7QfFyK0Gm7CpVxnD-Q3"
LOC_VALLE = "Location/eT1Hq6cZ8yLw3PbN5rKa2sV9"
MARY = ("eq081-VQEgP8drUUqCWzHfw3", "+16175550123", "m.okafor@example.net")
JOSE = ("e63wRTbPfr1p8UW81d8Seiw3", "+16175550188", "jose.garcia@example.org")
GRACE = ("eK2m9PqR4sT6uV8wX0yZ1aB3", "+16175550142", "grace.nguyen@example.com")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def seed_small_history(factory: sessionmaker[Session]) -> History:
    h = History()
    for ref in (LOC_RIVERSIDE, LOC_EASTSIDE, LOC_VALLE):
        h.location(ref)
    h.patient(MARY[0], "Mary", "Okafor", MARY[1], MARY[2])
    h.patient(JOSE[0], "José", "García", JOSE[1], JOSE[2])
    h.patient(GRACE[0], "Grace", "Nguyen", GRACE[1], GRACE[2])
    a1 = h.appointment(MARY[0], "fulfilled", at(3, 14), LOC_RIVERSIDE)
    a2 = h.appointment(JOSE[0], "noshow", at(4, 15), LOC_EASTSIDE)
    a3 = h.appointment(GRACE[0], "fulfilled", at(10, 16), LOC_RIVERSIDE)
    a4 = h.appointment(GRACE[0], "noshow", at(12, 13), LOC_RIVERSIDE)
    a5 = h.appointment(JOSE[0], "fulfilled", at(14, 9), LOC_EASTSIDE)
    h.appointment(MARY[0], "fulfilled", at(5, 10), LOC_VALLE)  # never reminded
    h.appointment(JOSE[0], "noshow", at(6, 11), None)  # never reminded, no place on it
    h.appointment(MARY[0], "booked", at(20, 9), LOC_RIVERSIDE)  # not over yet

    # W45: a confirmed reminder, a reminder answered with a reschedule request, a refill
    # notice the carrier reports undelivered.
    h.message(
        MARY[0],
        channel="sms",
        address=MARY[1],
        location=LOC_RIVERSIDE,
        at=at(2, 14),
        about=a1,
        delivery_status="delivered",
    )
    h.reply(MARY[1], "C", "confirm", at(2, 15), patient_id=MARY[0])
    h.message(
        JOSE[0],
        channel="sms",
        address=JOSE[1],
        language="es",
        location=LOC_EASTSIDE,
        at=at(3, 15),
        about=a2,
        delivery_status="delivered",
    )
    h.reply(
        JOSE[1],
        "R, el martes no puedo, ¿puede ser el jueves?",
        "reschedule",
        at(3, 16),
        patient_id=JOSE[0],
        inbox_kind="reschedule",
        handled_after=timedelta(minutes=90),
    )
    h.message(
        MARY[0],
        rule="refill-notice",
        channel="sms",
        address=MARY[1],
        at=at(4, 13),
        delivery_status="undelivered",
    )
    # W46: an email reminder followed by an unsubscribe, a discharge check-in answered in
    # crisis, a reminder withheld (opted out), one the provider refused, one answered with
    # a question nobody has handled yet.
    h.message(
        GRACE[0], channel="email", address=GRACE[2], location=LOC_RIVERSIDE, at=at(9, 12), about=a3
    )
    h.unsubscribe(GRACE[0], GRACE[2], at(10, 8))
    h.message(
        JOSE[0],
        rule="discharge-checkin",
        channel="sms",
        address=JOSE[1],
        language="es",
        at=at(10, 10),
        delivery_status="delivered",
    )
    h.reply(
        JOSE[1],
        "ya no aguanto más, no quiero seguir aquí",
        "crisis",
        at(10, 10, 30),
        patient_id=JOSE[0],
        inbox_kind="crisis",
        handled_after=timedelta(minutes=6),
    )
    h.message(
        GRACE[0],
        channel=None,
        location=LOC_RIVERSIDE,
        at=at(11, 13),
        about=a4,
        status="withheld",
        reason="opted-out",
    )
    h.message(
        MARY[0],
        channel="sms",
        address=MARY[1],
        location=LOC_EASTSIDE,
        at=at(12, 9),
        status="failed",
        reason="provider-rejected",
    )
    h.message(
        JOSE[0],
        channel="sms",
        address=JOSE[1],
        language="es",
        location=LOC_EASTSIDE,
        at=at(13, 9),
        about=a5,
        delivery_status="delivered",
    )
    h.reply(
        JOSE[1],
        "¿Puedo llevar a mi hija? Ella me traduce",
        "other",
        at(13, 9, 20),
        patient_id=JOSE[0],
        inbox_kind="message",
    )
    # Before the period: neither it nor its reply counts.
    h.message(
        MARY[0],
        channel="sms",
        address=MARY[1],
        location=LOC_RIVERSIDE,
        at=datetime(2026, 10, 20, 14, tzinfo=UTC),
        delivery_status="delivered",
    )
    h.reply(MARY[1], "STOP", "opt-out", datetime(2026, 10, 20, 15, tzinfo=UTC), patient_id=MARY[0])
    h.write(factory)
    return h
