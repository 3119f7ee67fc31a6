"""Planning reads each resource once for both its references and its sensitivity
findings (``rules.privacy.read_resource``), and reuses a verdict when the same findings
come round again. Both are shortcuts: on any input they must decide exactly what the
separate, plain readings decide, or a revealing word could slip through the fast path."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rules.privacy import (
    PrivacyPolicy,
    ResourceFindings,
    classify_sensitivity,
    read_resource,
    shared_findings,
)
from rules.snapshot import references_of

POLICY = PrivacyPolicy.model_validate(
    {"revealing_locations": {"ids": ["Location/bh-7", "loc-4412"]}}
)

_KEYS = st.sampled_from(
    [
        "resourceType", "id", "meta", "security", "identifier", "text", "div", "status",
        "reference", "display", "code", "system", "coding", "note", "name", "alias",
        "participant", "actor", "location", "serviceType", "reasonCode", "comment",
        "valueString", "extension", "url", "contained",
    ]
)  # fmt: skip
_STRINGS = st.sampled_from(
    [
        "Location/bh-7", "https://ehr.example/fhir/Location/loc-4412/_history/3",
        "Location/fam-1", "Practitioner/e9Yk2", "PractitionerRole/r1", "#loc1",
        "urn:uuid:2f0b", "Riverside Behavioral Health", "Harbor Family Medicine",
        "Centro de Salud Mental", "seguimiento de VIH", "Suboxone refill", "sertraline",
        "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm", "F32.9",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY", "HIV", "R",
        '<div xmlns="http://www.w3.org/1999/xhtml">Addiction clinic</div>',
        "booked", "Appointment", "Location", "Patient", "",
    ]
)  # fmt: skip
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), _STRINGS)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=40,
)
_RESOURCES = st.builds(
    lambda kind, body: {**body, "resourceType": kind},
    st.sampled_from(["Appointment", "Location", "Practitioner", "Encounter", "HealthcareService"]),
    st.dictionaries(_KEYS, _JSON, max_size=8),
)


def _read_separately(resource: dict[str, Any]) -> tuple[ResourceFindings, list[str]]:
    return shared_findings(resource, POLICY, None), references_of(resource)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_RESOURCES)
@example({"resourceType": "Location", "alias": True})  # malformed shapes once crashed it
@example({"resourceType": "Appointment", "meta": {"security": 1}})
def test_one_walk_finds_what_the_separate_readings_find(resource: dict[str, Any]) -> None:
    assert read_resource(resource, POLICY) == _read_separately(resource)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RESOURCES, min_size=1, max_size=4))
def test_a_verdict_from_known_findings_is_the_verdict_of_reading_everything(
    resources: list[dict[str, Any]],
) -> None:
    def findings_of(resource: Any) -> ResourceFindings | None:
        read = read_resource(resource, POLICY)
        return None if read is None else read[0]

    assert classify_sensitivity(resources, POLICY, findings_of) == classify_sensitivity(
        resources, POLICY
    )
    # asked again, the remembered verdict is still the same
    assert classify_sensitivity(resources, POLICY, findings_of) == classify_sensitivity(
        resources, POLICY
    )


def test_a_lone_alias_string_still_names_a_revealing_location() -> None:
    place = {"resourceType": "Location", "id": "x", "alias": "Riverside Recovery Center"}
    assert classify_sensitivity([place], POLICY).reasons[0] == "location:x"
