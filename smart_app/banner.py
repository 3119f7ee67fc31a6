"""The patient banner: who this tab is about (name, birth date, MRN), read with the launch's token.

Shown in full when the EHR's token response says ``need_patient_banner: true``; otherwise
as one compact line, so two tabs on two patients can always be told apart at a glance.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from fhir_bridge.fhir.auth import StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.fhir.errors import EhrError

log = logging.getLogger(__name__)
MRN_CODE = "MR"
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
NAME_USE_RANK = {"official": 0, "usual": 1}


@dataclass(frozen=True)
class PatientBanner:
    """What the banner shows; ``available`` False when the EHR could not be read."""

    required: bool
    available: bool
    name: str | None = None
    birth_date: str | None = None
    identifier_label: str | None = None
    identifier: str | None = None
    gender: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PatientBanner | None:
        if not isinstance(data, dict):
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            required=data.get("required") is True,
            available=data.get("available") is True,
            name=text("name"),
            birth_date=text("birth_date"),
            identifier_label=text("identifier_label"),
            identifier=text("identifier"),
            gender=text("gender"),
        )


def banner_from_patient(patient: dict[str, Any], required: bool) -> PatientBanner:
    """Name ("Family, Given"), birth date and the MRN (else the first identifier)."""
    label, value = _identifier(patient.get("identifier"))
    gender = patient.get("gender")
    return PatientBanner(
        required=required,
        available=True,
        name=_name(patient.get("name")),
        birth_date=display_birth_date(patient.get("birthDate")),
        identifier_label=label,
        identifier=value,
        gender=gender if isinstance(gender, str) else None,
    )


def read_banner(
    base_url: str, access_token: str, patient_ref: str, required: bool, timeout: float
) -> PatientBanner:
    """Read the launch patient with the user's own token (the EHR's access rules apply)."""
    _, _, patient_id = patient_ref.partition("/")
    client = EhrClient(
        base_url,
        auth=StaticBearerAuth(access_token),
        timeout=timeout,
        retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0),
    )
    try:
        patient = client.read("Patient", patient_id)
    except EhrError as error:
        log.warning("patient_banner_unavailable", extra={"error": type(error).__name__})
        return PatientBanner(required=required, available=False)
    finally:
        client.close()
    return banner_from_patient(patient, required)


def display_birth_date(value: object) -> str | None:
    """``1968-04-12`` → ``Apr 12, 1968`` (month and year alone kept as given)."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value).strftime("%b %d, %Y").replace(" 0", " ")
    except ValueError:
        return value


def _name(names: object) -> str | None:
    if not isinstance(names, list):
        return None
    candidates = [n for n in names if isinstance(n, dict)]
    ranked = sorted(candidates, key=lambda n: NAME_USE_RANK.get(str(n.get("use")), 2))
    for name in ranked:
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
        if family or given:
            return ", ".join(part for part in (family, given) if part)
        if isinstance(name.get("text"), str) and name["text"].strip():
            return str(name["text"]).strip()
    return None


def _identifier(identifiers: object) -> tuple[str | None, str | None]:
    if not isinstance(identifiers, list):
        return None, None
    usable = [i for i in identifiers if isinstance(i, dict) and isinstance(i.get("value"), str)]
    for identifier in usable:
        codings = (identifier.get("type") or {}).get("coding") or []
        if any(
            isinstance(c, dict)
            and c.get("code") == MRN_CODE
            and c.get("system") == IDENTIFIER_TYPES
            for c in codings
        ):
            return "MRN", identifier["value"]
    if usable:
        text = (usable[0].get("type") or {}).get("text")
        return (text if isinstance(text, str) else "ID"), usable[0]["value"]
    return None, None
