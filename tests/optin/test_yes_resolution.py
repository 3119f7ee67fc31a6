"""What a bare YES / SÍ means, from conversation state (pure: rules.keywords.resolve_reply)."""

from __future__ import annotations

import pytest

from rules.keywords import InboundIntent, resolve_reply

YES = InboundIntent("opt-in", "YES")
SI = InboundIntent("opt-in", "SI")

CASES = [
    pytest.param(YES, {"invitation_open": True}, "health-tips-opt-in", id="yes-to-open-invitation"),
    pytest.param(SI, {"invitation_open": True}, "health-tips-opt-in", id="si-to-open-invitation"),
    pytest.param(YES, {}, "other", id="yes-with-nothing-open-is-for-staff"),
    pytest.param(
        YES,
        {"invitation_open": True, "awaiting_confirmation": True},
        "confirm",
        id="yes-to-a-reminder-just-sent-confirms-it",
    ),
    pytest.param(
        YES,
        {"invitation_open": True, "opted_out": True, "stopped_recently": True},
        "other",
        id="yes-hours-after-stop-changes-nothing",
    ),
    pytest.param(
        YES,
        {"invitation_open": True, "opted_out": True},
        "opt-in",
        id="yes-days-after-stop-resubscribes-but-never-joins-tips",
    ),
    pytest.param(
        InboundIntent("opt-in", "START"),
        {"invitation_open": True},
        "opt-in",
        id="start-is-never-a-tips-opt-in",
    ),
    pytest.param(
        InboundIntent("confirm", "C"), {"invitation_open": True}, "confirm", id="c-keeps-meaning"
    ),
]


@pytest.mark.parametrize(("intent", "state", "kind"), CASES)
def test_yes_resolution(intent: InboundIntent, state: dict[str, bool], kind: str) -> None:
    flags = {"opt_in_pending": False, "opted_out": False, "awaiting_confirmation": False}
    assert resolve_reply(intent, **{**flags, **state}).kind == kind
