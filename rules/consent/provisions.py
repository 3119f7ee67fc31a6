"""Read R4 ``Consent`` resources into statements about one outreach message.

See :mod:`rules.consent.codes` for how Consent elements are interpreted and why
qualifiers we cannot interpret only ever restrict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from rules.consent.codes import (
    CONSENT_ACTION_SYSTEM,
    GENERIC_OUTREACH_ACTIONS,
    NON_OUTREACH_ACTIONS,
    POLICY_RULE_DENY,
    POLICY_RULE_PERMIT,
    channel_for_coding,
)
from rules.consent.fhirtime import as_utc, parse_fhir_datetime, period_covers
from rules.consent.policy import ConsentPolicy
from rules.consent.statements import (
    DENY,
    PERMIT,
    Ignored,
    Match,
    Statement,
    applies,
    combine,
)

_UNINTERPRETED_QUALIFIERS: Final = ("actor", "securityLabel", "class", "code", "dataPeriod", "data")
_UNDATED: Final = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Scope:
    match: Match
    purpose_specific: bool
    channel_specific: bool


def _codings(concepts: Any) -> Iterator[tuple[str, str]]:
    for concept in concepts if isinstance(concepts, list) else ():
        if not isinstance(concept, Mapping):
            continue
        for coding in concept.get("coding") or ():
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                yield str(coding.get("system", "")), coding["code"]


def _purpose_match(provision: Mapping[str, Any], purpose: str, policy: ConsentPolicy) -> Match:
    codings = [c for c in provision.get("purpose") or () if isinstance(c, Mapping)]
    if not codings:
        return Match.YES
    for coding in codings:
        if purpose in policy.purposes_for_coding(
            str(coding.get("system", "")), str(coding.get("code", ""))
        ):
            return Match.YES
    return Match.NO


def _channel_match(provision: Mapping[str, Any], channel: str) -> Match:
    channels: set[str] = set()
    generic = non_outreach = unknown = False
    for system, code in _codings(provision.get("action")):
        named = channel_for_coding(system, code)
        if named is not None:
            channels.add(named)
        elif system == CONSENT_ACTION_SYSTEM and code in GENERIC_OUTREACH_ACTIONS:
            generic = True
        elif system == CONSENT_ACTION_SYSTEM and code in NON_OUTREACH_ACTIONS:
            non_outreach = True
        else:
            unknown = True
    if channel in channels or generic or not provision.get("action"):
        return Match.YES
    if channels or (non_outreach and not unknown):
        return Match.NO
    return Match.UNSURE


def _scope(
    provision: Mapping[str, Any], purpose: str, channel: str, now: datetime, policy: ConsentPolicy
) -> _Scope:
    match = Match.YES
    period = provision.get("period")
    if period is not None and not period_covers(period, now):
        malformed = not isinstance(period, Mapping) or any(
            period.get(key) is not None and parse_fhir_datetime(period.get(key)) is None
            for key in ("start", "end")
        )
        match = Match.UNSURE if malformed else Match.NO
    match = combine(match, _purpose_match(provision, purpose, policy))
    match = combine(match, _channel_match(provision, channel))
    if any(provision.get(key) for key in _UNINTERPRETED_QUALIFIERS):
        match = combine(match, Match.UNSURE)
    return _Scope(
        match=match,
        purpose_specific=bool(provision.get("purpose")),
        channel_specific=any(
            channel_for_coding(system, code) for system, code in _codings(provision.get("action"))
        ),
    )


def _root_effect(consent: Mapping[str, Any]) -> str | None:
    for _system, code in _codings([consent.get("policyRule")]):
        if code in POLICY_RULE_PERMIT:
            return PERMIT
        if code in POLICY_RULE_DENY:
            return DENY
    return None


def _consent_ref(consent: Mapping[str, Any], index: int) -> str:
    identity = consent.get("id")
    return f"Consent/{identity}" if isinstance(identity, str) and identity else f"Consent[{index}]"


def _consent_time(consent: Mapping[str, Any], provision: Mapping[str, Any]) -> datetime:
    """When the patient decided: ``dateTime``, else the provision start, else "long ago"."""
    period = provision.get("period")
    start = period.get("start") if isinstance(period, Mapping) else None
    for candidate in (consent.get("dateTime"), start):
        parsed = parse_fhir_datetime(candidate)
        if parsed is not None:
            return parsed
    return _UNDATED


def _scope_codes(consent: Mapping[str, Any]) -> set[str]:
    return {code for _system, code in _codings([consent.get("scope")])}


def consent_statements(
    consents: Sequence[Mapping[str, Any]],
    *,
    purpose: str,
    channel: str,
    now: datetime,
    policy: ConsentPolicy,
) -> tuple[list[Statement], list[Ignored]]:
    """Statements from the active, in-scope Consents that concern this message."""
    statements: list[Statement] = []
    ignored: list[Ignored] = []
    for index, consent in enumerate(consents):
        if not isinstance(consent, Mapping) or consent.get("resourceType", "Consent") != "Consent":
            ignored.append(Ignored(f"Consent[{index}]", "not-a-consent"))
            continue
        ref = _consent_ref(consent, index)
        if consent.get("status") != "active":
            ignored.append(Ignored(ref, f"status-{consent.get('status') or 'missing'}"))
            continue
        if not _scope_codes(consent) & set(policy.consent_scopes):
            ignored.append(Ignored(ref, "out-of-scope"))
            continue
        provision = consent.get("provision")
        if not isinstance(provision, Mapping):
            ignored.append(Ignored(ref, "no-provision"))
            continue
        found = list(
            _provision_statements(
                provision,
                ref=ref,
                where="provision",
                inherited=_root_effect(consent),
                outer=_Scope(Match.YES, False, False),
                at=_consent_time(consent, provision),
                context=(purpose, channel, as_utc(now), policy),
                depth=0,
            )
        )
        if found:
            statements.extend(found)
        else:
            ignored.append(Ignored(ref, "not-applicable"))
    return statements, ignored


def _provision_statements(
    provision: Mapping[str, Any],
    *,
    ref: str,
    where: str,
    inherited: str | None,
    outer: _Scope,
    at: datetime,
    context: tuple[str, str, datetime, ConsentPolicy],
    depth: int,
) -> Iterator[Statement]:
    purpose, channel, now, policy = context
    own = _scope(provision, purpose, channel, now, policy)
    scope = _Scope(
        match=combine(outer.match, own.match),
        purpose_specific=outer.purpose_specific or own.purpose_specific,
        channel_specific=outer.channel_specific or own.channel_specific,
    )
    if scope.match is Match.NO:
        return
    kind = provision.get("type")
    effect = kind if kind in (PERMIT, DENY) else inherited
    if effect is not None and applies(scope.match, effect):
        yield Statement(
            ref=ref,
            where=where,
            effect=effect,
            origin="consent",
            at=at,
            purpose_specific=scope.purpose_specific,
            channel_specific=scope.channel_specific,
            address_specific=False,
            depth=depth,
        )
    for child_index, child in enumerate(provision.get("provision") or ()):
        if isinstance(child, Mapping):
            yield from _provision_statements(
                child,
                ref=ref,
                where=f"{where}.provision[{child_index}]",
                inherited=effect,
                outer=scope,
                at=at,
                context=context,
                depth=depth + 1,
            )
