"""Sample patients for the development EHR: one reminder, one refill, one discharge check-in.

Everything is fictional and shaped like what Epic exports through FHIR R4 (opaque ids,
MRN and CSN identifiers, ``Location`` and ``Practitioner`` references, free text, an
RxNorm medication, a Spanish-speaking patient). The clinic, its location and its
patients are placed in a time zone where it is daytime **now** (see :func:`pick_zone`),
so the shipped rules -- quiet hours 08:00-21:00 in the recipient's zone -- let the first
messages go out within a minute or two instead of the next morning:

* an appointment booked late (in under two hours, after the shipped 2-hour reminder's
  time): its catch-up reminder is due now;
* a lisinopril prescription whose fill runs out in three days: its refill notice is due;
* an inpatient stay that ended this morning: the day-after check-in is planned for 10:00
  tomorrow (visible in the staff panel and in ``fhir-bridge preview``).

The resources are PUT with fixed ids (loading them twice changes nothing but the times),
unless a ``run_id`` asks for new patient ids (what ``fhir-bridge run`` does on every start).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

TIMEZONE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/timezone"
EPIC_MRN_SYSTEM: Final = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
EPIC_CSN_SYSTEM: Final = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
EPIC_ORDER_SYSTEM: Final = "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268"
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
SNOMED: Final = "http://snomed.info/sct"

ORGANIZATION_ID: Final = "eSbxRiverside0001"
LOCATION_ID: Final = "eLoc7Tq2MainStreet3"
PRACTITIONER_ID: Final = "ePrac4KimSusanMD3"
APPOINTMENT_PATIENT_ID: Final = "ePat1OkafGrace3"
REFILL_PATIENT_ID: Final = "ePat2RussoFrank3"
DISCHARGE_PATIENT_ID: Final = "ePat3HernLucia3"
APPOINTMENT_ID: Final = "eAppt9OkafFollowup3"
MEDICATION_REQUEST_ID: Final = "eMedRx5RussoLisin3"
ENCOUNTER_ID: Final = "eEnc2HernInpatient3"
PATIENT_IDS: Final = (APPOINTMENT_PATIENT_ID, REFILL_PATIENT_ID, DISCHARGE_PATIENT_ID)
#: The patients and what is theirs; ``load_samples(…, run_id=…)`` makes these ids new, so
#: a service that remembers an earlier load (its database) sees new patients, not old ones.
PER_RUN_IDS: Final = (*PATIENT_IDS, APPOINTMENT_ID, MEDICATION_REQUEST_ID, ENCOUNTER_ID)

#: Local hours in which a zone counts as "daytime now": late enough for a 10:00 send time
#: to have passed, early enough for the appointment (two hours later) to end before 21:00.
DAYTIME_HOURS: Final = (10, 18)
#: Between the shipped rules' catch-up minimum lead (1 hour) and their last offset (2 hours),
#: so the catch-up reminder is due as soon as the appointment is seen.
APPOINTMENT_LEAD: Final = timedelta(hours=1, minutes=40)


@dataclass(frozen=True)
class Place:
    """Where the sample clinic and its patients live: zone and a plausible address."""

    zone: str
    line: str
    city: str
    district: str | None
    postal_code: str
    country: str


#: Preference order: US zones first (the product's home), then around the world so that
#: every hour of the day has one zone in :data:`DAYTIME_HOURS` (gaps are at most 3 hours).
PLACES: Final[tuple[Place, ...]] = (
    Place("America/New_York", "43 New Scotland Ave", "Albany", "NY", "12208", "US"),
    Place("America/Chicago", "4646 N Marine Dr", "Chicago", "IL", "60640", "US"),
    Place("America/Denver", "1635 Aurora Ct", "Aurora", "CO", "80045", "US"),
    Place("America/Los_Angeles", "1200 N State St", "Los Angeles", "CA", "90033", "US"),
    Place("Pacific/Honolulu", "1301 Punchbowl St", "Honolulu", "HI", "96813", "US"),
    Place(
        "America/Sao_Paulo",
        "Rua Dr. Ovídio Pires de Campos 225",
        "São Paulo",
        "SP",
        "05403-010",
        "BR",
    ),
    Place("Europe/London", "235 Euston Rd", "London", None, "NW1 2BU", "GB"),
    Place("Europe/Berlin", "Charitéplatz 1", "Berlin", None, "10117", "DE"),
    Place("Asia/Dubai", "Oud Metha Rd", "Dubai", None, "00000", "AE"),
    Place("Asia/Kolkata", "Ansari Nagar", "New Delhi", "DL", "110029", "IN"),
    Place("Asia/Singapore", "Outram Rd", "Singapore", None, "169608", "SG"),
    Place("Asia/Tokyo", "7-3-1 Hongo", "Tokyo", None, "113-8655", "JP"),
    Place("Australia/Sydney", "50 Missenden Rd", "Camperdown", "NSW", "2050", "AU"),
    Place("Pacific/Auckland", "2 Park Rd", "Grafton", None, "1023", "NZ"),
)


class ResourceSink(Protocol):
    """What the loader needs from the EHR: update-or-create by id (``EhrServer.update``)."""

    def update(self, resource: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LoadedSamples:
    """What was loaded, for the console narration (ids, zone and local times only)."""

    place: Place
    appointment_start_local: datetime
    ids: dict[str, str]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.place.zone)

    @property
    def patient_ids(self) -> tuple[str, ...]:
        return tuple(self.ids[id_] for id_ in PATIENT_IDS)

    @property
    def appointment_id(self) -> str:
        return self.ids[APPOINTMENT_ID]


def pick_zone(now: datetime, places: Sequence[Place] = PLACES) -> Place:
    """The first place where the local hour at ``now`` is within :data:`DAYTIME_HOURS`."""
    first, last = DAYTIME_HOURS
    for place in places:
        if first <= now.astimezone(ZoneInfo(place.zone)).hour < last:
            return place
    return places[0]


def sample_resources(now: datetime, place: Place | None = None) -> list[dict[str, Any]]:
    """The sample clinic and patients, with times relative to ``now`` (aware, any zone)."""
    place = place or pick_zone(now)
    zone = ZoneInfo(place.zone)
    local_now = now.astimezone(zone)
    start = _round_up(local_now + APPOINTMENT_LEAD, minutes=5)
    discharged = _round_up(local_now - timedelta(hours=2, minutes=10), minutes=10)
    return [
        _organization(place),
        _location(place),
        _practitioner(),
        _appointment_patient(place),
        _refill_patient(place),
        _discharge_patient(place),
        _appointment(start),
        _medication_request(local_now.date() - timedelta(days=27)),
        _encounter(discharged - timedelta(days=3, hours=5), discharged),
    ]


def load_samples(ehr: ResourceSink, now: datetime, run_id: str | None = None) -> LoadedSamples:
    """PUT the sample resources into the EHR (referenced ones first).

    With ``run_id``, the patients and their appointment, prescription and stay get ids
    ending in it (``ePat1OkafGrace3-<run_id>``).
    """
    place = pick_zone(now)
    ids = {id_: f"{id_}-{run_id}" if run_id else id_ for id_ in PER_RUN_IDS}
    resources = [_renamed(r, ids) for r in sample_resources(now, place)]
    for resource in resources:
        ehr.update(resource)
    appointment = next(r for r in resources if r["resourceType"] == "Appointment")
    start = datetime.fromisoformat(appointment["start"]).astimezone(ZoneInfo(place.zone))
    return LoadedSamples(place=place, appointment_start_local=start, ids=ids)


def _renamed(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every id in ``ids`` (as ``id`` or in a ``Type/id`` reference) renamed."""
    if isinstance(value, dict):
        return {key: _renamed(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, ids) for item in value]
    if isinstance(value, str):
        type_, _, id_ = value.rpartition("/")
        if id_ in ids:
            return f"{type_}/{ids[id_]}" if type_ else ids[id_]
    return value


def _round_up(moment: datetime, *, minutes: int) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    extra = -moment.minute % minutes
    return moment + timedelta(minutes=extra)


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _zone_extension(place: Place) -> list[dict[str, Any]]:
    return [{"url": TIMEZONE_EXTENSION, "valueCode": place.zone}]


def _address(place: Place, *, line: str | None = None, use: str = "work") -> dict[str, Any]:
    address: dict[str, Any] = {
        "use": use,
        "type": "both",
        "line": [line or place.line],
        "city": place.city,
        "postalCode": place.postal_code,
        "country": place.country,
    }
    if place.district:
        address["state"] = place.district
    return address


def _mrn(value: str) -> list[dict[str, Any]]:
    return [
        {
            "use": "usual",
            "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "MRN"},
            "system": EPIC_MRN_SYSTEM,
            "value": value,
        }
    ]


def _language(code: str, display: str, text: str) -> list[dict[str, Any]]:
    return [
        {
            "language": {
                "coding": [{"system": "urn:ietf:bcp:47", "code": code, "display": display}],
                "text": text,
            },
            "preferred": True,
        }
    ]


def _organization(place: Place) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": ORGANIZATION_ID,
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ]
            }
        ],
        "name": "Riverside Health (sandbox)",
        "telecom": [{"system": "phone", "value": "(555) 010-0100", "use": "work"}],
        "address": [_address(place)],
    }


def _location(place: Place) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": LOCATION_ID,
        "extension": _zone_extension(place),
        "status": "active",
        "name": "Riverside Main Street Family Medicine",
        "mode": "instance",
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                        "code": "OF",
                        "display": "Outpatient facility",
                    }
                ]
            }
        ],
        "telecom": [{"system": "phone", "value": "(555) 010-0100", "use": "work"}],
        "address": _address(place),
        "managingOrganization": {"reference": f"Organization/{ORGANIZATION_ID}"},
    }


def _practitioner() -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": PRACTITIONER_ID,
        "active": True,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1558444216"}],
        "name": [{"use": "official", "family": "Kim", "given": ["Susan"], "suffix": ["MD"]}],
    }


def _patient(
    patient_id: str,
    place: Place,
    *,
    mrn: str,
    family: str,
    given: Iterable[str],
    gender: str,
    birth_date: str,
    telecom: list[dict[str, Any]],
    street: str,
    communication: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "extension": _zone_extension(place),
        "identifier": _mrn(mrn),
        "active": True,
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "telecom": telecom,
        "gender": gender,
        "birthDate": birth_date,
        "address": [_address(place, line=street, use="home")],
        "communication": communication,
        "generalPractitioner": [{"reference": f"Practitioner/{PRACTITIONER_ID}"}],
        "managingOrganization": {"reference": f"Organization/{ORGANIZATION_ID}"},
    }


def _appointment_patient(place: Place) -> dict[str, Any]:
    return _patient(
        APPOINTMENT_PATIENT_ID,
        place,
        mrn="E7101",
        family="Okafor",
        given=["Grace", "Adaeze"],
        gender="female",
        birth_date="1979-03-22",
        telecom=[
            {"system": "phone", "value": "(973) 555-0142", "use": "mobile", "rank": 1},
            {"system": "email", "value": "grace.okafor@example.net", "use": "home", "rank": 2},
        ],
        street="18 Willow Lane",
        communication=_language("en-US", "English (United States)", "English"),
    )


def _refill_patient(place: Place) -> dict[str, Any]:
    return _patient(
        REFILL_PATIENT_ID,
        place,
        mrn="E7102",
        family="Russo",
        given=["Frank"],
        gender="male",
        birth_date="1957-12-01",
        telecom=[{"system": "phone", "value": "(973) 555-0135", "use": "mobile", "rank": 1}],
        street="50 Broad St, Apt 4",
        communication=_language("en-US", "English (United States)", "English"),
    )


def _discharge_patient(place: Place) -> dict[str, Any]:
    return _patient(
        DISCHARGE_PATIENT_ID,
        place,
        mrn="E7103",
        family="Hernández",
        given=["Lucía"],
        gender="female",
        birth_date="1962-07-30",
        telecom=[
            {"system": "email", "value": "lucia.hernandez@example.net", "use": "home", "rank": 1}
        ],
        street="212 Elm St",
        communication=_language("es-MX", "Spanish (Mexico)", "Español"),
    )


def _appointment(start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "id": APPOINTMENT_ID,
        "identifier": [{"use": "usual", "system": EPIC_CSN_SYSTEM, "value": "1000093517"}],
        "status": "booked",
        "serviceType": [
            {"coding": [{"system": SNOMED, "code": "394814009", "display": "General practice"}]}
        ],
        "appointmentType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                    "code": "FOLLOWUP",
                    "display": "A follow up visit from a previous appointment",
                }
            ]
        },
        "description": "Follow-up visit, booked same day",
        "comment": "Booked same day after a call to the nurse line; patient prefers texts.",
        "start": _instant(start),
        "end": _instant(start + timedelta(minutes=20)),
        "minutesDuration": 20,
        "participant": [
            {
                "actor": {"reference": f"Patient/{APPOINTMENT_PATIENT_ID}"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": f"Practitioner/{PRACTITIONER_ID}",
                    "display": "Susan Kim, MD",
                },
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": f"Location/{LOCATION_ID}"},
                "required": "required",
                "status": "accepted",
            },
        ],
    }


def _medication_request(fill_start: date) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": MEDICATION_REQUEST_ID,
        "identifier": [{"use": "usual", "system": EPIC_ORDER_SYSTEM, "value": "1066912"}],
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": (
                            "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
                        ),
                        "code": "community",
                        "display": "Community",
                    }
                ]
            }
        ],
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "314076",
                    "display": "lisinopril 10 MG Oral Tablet",
                }
            ],
            "text": "lisinopril 10 MG tablet",
        },
        "subject": {"reference": f"Patient/{REFILL_PATIENT_ID}"},
        "authoredOn": fill_start.isoformat(),
        "requester": {"reference": f"Practitioner/{PRACTITIONER_ID}"},
        "note": [{"text": "BP well controlled; recheck at next visit"}],
        "dosageInstruction": [{"sequence": 1, "text": "Take 1 tablet by mouth once daily"}],
        "dispenseRequest": {
            "validityPeriod": {
                "start": fill_start.isoformat(),
                "end": (fill_start + timedelta(days=365)).isoformat(),
            },
            "numberOfRepeatsAllowed": 2,
            "quantity": {"value": 30, "unit": "tablet"},
            "expectedSupplyDuration": {
                "value": 30,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
    }


def _encounter(admitted: datetime, discharged: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": ENCOUNTER_ID,
        "identifier": [{"use": "usual", "system": EPIC_CSN_SYSTEM, "value": "1000093388"}],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "type": [
            {
                "coding": [{"system": SNOMED, "code": "32485007", "display": "Hospital admission"}],
                "text": "Hospital admission",
            }
        ],
        "subject": {"reference": f"Patient/{DISCHARGE_PATIENT_ID}"},
        "participant": [{"individual": {"reference": f"Practitioner/{PRACTITIONER_ID}"}}],
        "period": {"start": _instant(admitted), "end": _instant(discharged)},
        "reasonCode": [
            {"coding": [{"system": SNOMED, "code": "233604007", "display": "Pneumonia"}]}
        ],
        "hospitalization": {
            "dischargeDisposition": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                        "code": "home",
                        "display": "Home",
                    }
                ]
            }
        },
        "location": [{"location": {"reference": f"Location/{LOCATION_ID}"}, "status": "completed"}],
        "serviceProvider": {"reference": f"Organization/{ORGANIZATION_ID}"},
    }
