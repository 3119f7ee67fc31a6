"""(Re)write the acceptance corpus: ``bundles/*.json`` and ``expectations.yaml``.

Run ``.venv/bin/python -m tests.corpus.build_corpus`` after changing a case. The tests read
the written files only. Every case states the class it covers and what MUST hold for the
patient, as the issue ("Safe on real data", #8) describes the intended behaviour with the
shipped default rules (rules/default_rules.yaml): no place is listed as patient-facing, so no
place name may reach any text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.corpus.builders import (
    ATHENA_MRN,
    BASES,
    CERNER_MRN,
    HAPI_MRN,
    RXNORM,
    SNOMED,
    address,
    appointment,
    bundle,
    concept,
    consent,
    encounter,
    healthcare_service,
    language,
    location,
    medication,
    medication_request,
    opaque_id,
    organization,
    patient,
    practitioner,
    practitioner_role,
    utc,
    with_offset,
)

HERE = Path(__file__).resolve().parent
BUNDLES = HERE / "bundles"
LA, PHX, DEN, CHI, NYC, IND = (
    "America/Los_Angeles",
    "America/Phoenix",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Indiana/Indianapolis",
)
ORG = "Riverside Health"

CASES: list[dict[str, Any]] = []


def case(
    slug: str,
    flavor: str,
    now: str,
    covers: list[str],
    resources: list[dict[str, Any]],
    **expect: Any,
) -> None:
    CASES.append(
        {
            "slug": slug,
            "flavor": flavor,
            "now": now,
            "covers": covers,
            "resources": resources,
            "expect": expect,
        }
    )


def ids(flavor: str, slug: str, *names: str) -> list[str]:
    return [opaque_id(flavor, f"{name}:{slug}") for name in names]


def key_one(appointment_id: str, offset: str) -> str:
    return f"appointment-reminder|Appointment/{appointment_id}|{offset}"


FAMILY = concept(None, (SNOMED, "394814009", "General practice"))
EN_US = [language("en-US", "English", "English (United States)")]
ES_MX = [language("es-MX", "Spanish", "Spanish (Mexico)")]


def riverside() -> dict[str, Any]:
    return organization("riverside", ORG, address("100 River Rd", "Albany", "NY", "12207"))


# ---------------------------------------------------------------- time zones, places


def zone_cases() -> None:
    slug, f = "la-clinic-address-no-timezone-extension", "epic"
    pid, aid, lid, prid = ids(f, slug, "pat", "appt", "loc", "prac")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["zone-from-location-address", "participants-by-reference", "no-location-name"],
        [
            patient(
                pid,
                given=["Camila", "Maria"],
                family="Lopez",
                phone="(213) 555-0147",
                home=address("1420 W 3rd St", "Los Angeles", "CA", "90017"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Westlake Family Medicine",
                addr=address("2100 Wilshire Blvd Ste 300", "Los Angeles", "CA", "90057"),
                org="riverside",
            ),
            practitioner(prid, "Susan", "Okafor"),
            appointment(
                aid,
                pid,
                start=utc("2026-12-08T08:00", LA),
                location_id=lid,
                practitioner_id=prid,
                service_type=FAMILY,
                reason=concept("Annual physical"),
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["8:00 AM"],
        send_local={
            key_one(aid, "P1D"): "2026-12-07T08:00",
            key_one(aid, "P3D"): "2026-12-05T08:00",
        },
        withheld_allowed=["cap-reached"],
    )

    slug, f = "phoenix-arizona-no-dst-in-march", "cerner"
    pid, aid, lid, prid = ids(f, slug, "pat", "appt", "loc", "prac")
    case(
        slug,
        f,
        "2027-03-08T17:00:00Z",
        ["zone-from-location-address", "arizona-no-dst"],
        [
            patient(
                pid,
                given=["Robert"],
                family="Yazzie",
                gender="male",
                phone="(602) 555-0123",
                home=address("4410 N 19th Ave", "Phoenix", "AZ", "85015"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="12742069",
            ),
            riverside(),
            location(
                lid,
                "Riverside Camelback Primary Care",
                addr=address("1300 E Camelback Rd", "Phoenix", "AZ", "85014"),
            ),
            practitioner(prid, "Daniel", "Begay", "DO"),
            appointment(
                aid,
                pid,
                start=utc("2027-03-16T10:30", PHX),
                location_id=lid,
                practitioner_id=prid,
                service_type=FAMILY,
                description="Follow-up visit",
            ),
        ],
        zone=PHX,
        language="en",
        generic=False,
        text_contains=["10:30 AM"],
        send_local={
            key_one(aid, "P1D"): "2027-03-15T10:30",
            key_one(aid, "P3D"): "2027-03-13T10:30",
        },
        withheld_allowed=["cap-reached"],
    )

    slug, f = "indianapolis-indiana-eastern", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-03T15:00:00Z",
        ["zone-from-location-address", "indiana"],
        [
            patient(
                pid,
                given=["Keisha"],
                family="Washington",
                phone="(317) 555-0111",
                home=address("845 N Capitol Ave", "Indianapolis", "IN", "46204"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="IN-55021",
            ),
            riverside(),
            location(
                lid,
                "Riverside Fountain Square Clinic",
                addr=address("1105 Prospect St", "Indianapolis", "IN", "46203"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-10T09:15", IND), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=IND,
        language="en",
        generic=False,
        text_contains=["9:15 AM"],
        send_local={key_one(aid, "P1D"): "2026-12-09T09:15"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "gary-indiana-central-time", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-03T15:00:00Z",
        ["zone-from-location-address", "indiana-central-county"],
        [
            patient(
                pid,
                given=["Marcus"],
                family="Reed",
                gender="male",
                phone="(219) 555-0164",
                home=address("620 Madison St", "Gary", "IN", "46402"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="IN-55088",
            ),
            riverside(),
            location(
                lid,
                "Riverside Lakeshore Clinic",
                addr=address("1400 S Broadway", "Gary", "IN", "46407"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-10T13:40", CHI), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=CHI,
        language="en",
        generic=False,
        text_contains=["1:40 PM"],
        send_local={key_one(aid, "P1D"): "2026-12-09T13:40"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "el-paso-texas-mountain-time", "epic"
    pid, aid, lid, prid = ids(f, slug, "pat", "appt", "loc", "prac")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["zone-from-location-address", "texas-mountain-county"],
        [
            patient(
                pid,
                given=["Lucia"],
                family="Ortega",
                phone="(915) 555-0178",
                home=address("3100 Montana Ave", "El Paso", "TX", "79903"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Five Points Health Center",
                addr=address("2901 N Piedras St", "El Paso", "TX", "79930"),
            ),
            practitioner(prid, "Hector", "Villalobos"),
            appointment(
                aid,
                pid,
                start=utc("2026-12-09T09:00", DEN),
                location_id=lid,
                practitioner_id=prid,
                service_type=FAMILY,
                comment="Pt prefers morning appts",
            ),
        ],
        zone=DEN,
        language="en",
        generic=False,
        text_contains=["9:00 AM"],
        send_local={key_one(aid, "P1D"): "2026-12-08T09:00"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "brooklyn-start-with-offset", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-02T15:00:00Z",
        ["zone-from-location-address", "start-with-offset", "new-york"],
        [
            patient(
                pid,
                given=["Dmitri"],
                family="Volkov",
                gender="male",
                phone="(718) 555-0190",
                home=address("312 Atlantic Ave", "Brooklyn", "NY", "11201"),
                communication=EN_US,
                mrn_system=ATHENA_MRN,
                mrn="88213",
            ),
            riverside(),
            location(
                lid,
                "Riverside Atlantic Avenue Office",
                addr=address("450 Atlantic Ave", "Brooklyn", "NY", "11217"),
            ),
            appointment(
                aid,
                pid,
                start=with_offset("2026-12-11T14:45", NYC),
                location_id=lid,
                service_type=FAMILY,
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains=["2:45 PM"],
        send_local={key_one(aid, "P1D"): "2026-12-10T14:45"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "denver-location-position-only", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2027-01-04T17:00:00Z",
        ["zone-from-location-position"],
        [
            patient(
                pid,
                given=["Hannah"],
                family="Schultz",
                phone="(720) 555-0133",
                home=None,
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="CO-1203",
            ),
            riverside(),
            location(
                lid, "Riverside Mobile Health Unit 3", position=(39.7392, -104.9903), phone=None
            ),
            appointment(
                aid, pid, start=utc("2027-01-12T11:00", DEN), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=DEN,
        language="en",
        generic=False,
        text_contains=["11:00 AM"],
        send_local={key_one(aid, "P1D"): "2027-01-11T11:00"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "chicago-location-timezone-extension", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["zone-from-location-extension"],
        [
            patient(
                pid,
                given=["Aisha"],
                family="Mohammed",
                phone="(312) 555-0102",
                home=address("5300 N Broadway", "Chicago", "IL", "60640"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Uptown Medical Office",
                tz=CHI,
                addr=address("4646 N Marine Dr", "Chicago", "IL", "60640"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-09T15:20", CHI), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=CHI,
        language="en",
        generic=False,
        text_contains=["3:20 PM"],
        send_local={key_one(aid, "P1D"): "2026-12-08T15:20"},
        withheld_allowed=["cap-reached"],
    )

    slug, f = "tucson-location-without-address-start-offset", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T17:00:00Z",
        ["zone-from-patient-address", "start-offset-as-check", "location-without-address"],
        [
            patient(
                pid,
                given=["Theresa"],
                family="Antone",
                phone="(520) 555-0156",
                home=address("1802 E Speedway Blvd", "Tucson", "AZ", "85719"),
                communication=EN_US,
                mrn_system=ATHENA_MRN,
                mrn="77102",
            ),
            riverside(),
            location(lid, "Riverside Speedway Clinic", phone=None),
            appointment(
                aid,
                pid,
                start=with_offset("2026-12-09T08:30", PHX),
                location_id=lid,
                service_type=FAMILY,
            ),
        ],
        zone=PHX,
        language="en",
        generic=False,
        text_contains=["8:30 AM"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "dst-spring-forward-2026-03-08-los-angeles", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-03-02T17:00:00Z",
        ["dst-spring-forward", "zone-from-location-address"],
        [
            patient(
                pid,
                given=["Grace"],
                family="Tanaka",
                phone="(619) 555-0181",
                home=address("3780 Park Blvd", "San Diego", "CA", "92103"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Hillcrest Urgent Care",
                addr=address("3930 Fourth Ave", "San Diego", "CA", "92103"),
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-03-08T09:00", LA),
                location_id=lid,
                appointment_type="ROUTINE",
                description="Recheck",
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["9:00 AM"],
        send_local={
            key_one(aid, "P1D"): "2026-03-07T09:00",
            key_one(aid, "P3D"): "2026-03-05T09:00",
        },
        withheld_allowed=["cap-reached"],
    )

    slug, f = "dst-fall-back-2026-11-01-new-york", "cerner"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-10-26T14:00:00Z",
        ["dst-fall-back", "zone-from-location-address"],
        [
            patient(
                pid,
                given=["Patrick"],
                family="O'Brien",
                gender="male",
                phone="(212) 555-0165",
                home=address("245 E 21st St", "New York", "NY", "10010"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="22910345",
            ),
            riverside(),
            location(
                lid,
                "Riverside Gramercy Walk-in",
                addr=address("222 E 19th St", "New York", "NY", "10003"),
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-11-01T10:30", NYC),
                location_id=lid,
                appointment_type="ROUTINE",
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains=["10:30 AM"],
        send_local={
            key_one(aid, "P1D"): "2026-10-31T10:30",
            key_one(aid, "P3D"): "2026-10-29T10:30",
        },
        withheld_allowed=["cap-reached"],
    )

    slug, f = "dst-fall-back-2026-11-01-phoenix-unchanged", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-10-26T17:00:00Z",
        ["dst-fall-back", "arizona-no-dst", "zone-from-location-address"],
        [
            patient(
                pid,
                given=["Samuel"],
                family="Ruiz",
                gender="male",
                phone="(480) 555-0107",
                home=address("1 E Washington St", "Mesa", "AZ", "85201"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="AZ-9921",
            ),
            riverside(),
            location(
                lid, "Riverside Mesa Clinic", addr=address("525 W Main St", "Mesa", "AZ", "85201")
            ),
            appointment(
                aid, pid, start=utc("2026-11-02T08:45", PHX), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=PHX,
        language="en",
        generic=False,
        text_contains=["8:45 AM"],
        send_local={key_one(aid, "P1D"): "2026-11-01T08:45"},
        withheld_allowed=["cap-reached"],
    )


# ---------------------------------------------------------------- names and languages


def name_and_language_cases() -> None:
    slug, f = "zoe-diaeresis-in-name", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["non-gsm-name", "one-segment"],
        [
            patient(
                pid,
                given=["Zoë"],
                family="Lefèvre",
                phone="(917) 555-0124",
                home=address("88 Bedford St", "New York", "NY", "10014"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside West Village Practice",
                addr=address("90 Bedford St", "New York", "NY", "10014"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-09T11:00", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains=["Zoe", "11:00 AM"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "jose-spanish-as-text-only", "cerner"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["language-text-only", "spanish", "texas-central"],
        [
            patient(
                pid,
                given=["José", "Luis"],
                family="Hernández",
                gender="male",
                phone="(713) 555-0119",
                home=address("2200 Navigation Blvd", "Houston", "TX", "77003"),
                communication=[language(text="Spanish")],
                mrn_system=CERNER_MRN,
                mrn="33019876",
            ),
            riverside(),
            location(
                lid,
                "Riverside East End Clinic",
                addr=address("2301 Navigation Blvd", "Houston", "TX", "77003"),
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-12-10T10:00", CHI),
                location_id=lid,
                service_type=FAMILY,
                patient_instruction="Llegue 15 minutos antes",
            ),
        ],
        zone=CHI,
        language="es",
        generic=False,
        text_contains=["10:00"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "espanol-as-text-only", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["language-text-only", "spanish-in-spanish"],
        [
            patient(
                pid,
                given=["Guadalupe"],
                family="Ramírez",
                phone="(305) 555-0138",
                home=address("1450 NW 7th St", "Miami", "FL", "33125"),
                communication=[language(text="Español")],
                mrn_system=ATHENA_MRN,
                mrn="61044",
            ),
            riverside(),
            location(
                lid,
                "Riverside Little Havana Center",
                addr=address("1600 SW 8th St", "Miami", "FL", "33135"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-09T15:30", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="es",
        generic=False,
        text_contains=["15:30"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "miami-spanish-coded-es-mx", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["language-coded-region", "spanish", "florida"],
        [
            patient(
                pid,
                given=["María", "Elena"],
                family="Gonzalez",
                phone="(786) 555-0142",
                home=address("2750 NW 17th Ave", "Miami", "FL", "33142"),
                communication=ES_MX,
            ),
            riverside(),
            location(
                lid,
                "Riverside Allapattah Clinic",
                addr=address("1800 NW 22nd St", "Miami", "FL", "33142"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-15T09:00", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="es",
        generic=False,
        text_contains=["9:00"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "nguyen-vietnamese-name-unsupported-language", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["non-gsm-name", "unsupported-language-default", "one-segment"],
        [
            patient(
                pid,
                given=["Thảo"],
                family="Nguyễn",
                phone="(714) 555-0172",
                home=address("9200 Bolsa Ave", "Westminster", "CA", "92683"),
                communication=[language("vi", "Vietnamese", "Vietnamese")],
                mrn_system=HAPI_MRN,
                mrn="CA-4410",
            ),
            riverside(),
            location(
                lid,
                "Riverside Little Saigon Clinic",
                addr=address("9240 Bolsa Ave", "Westminster", "CA", "92683"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-08T13:00", LA), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["1:00 PM"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "emoji-in-preferred-name", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["emoji-name", "one-segment"],
        [
            patient(
                pid,
                given=["Ana", "Sofia"],
                family="Castillo",
                usual_given=["😊 Ana"],
                phone="(408) 555-0153",
                home=address("75 E Santa Clara St", "San Jose", "CA", "95113"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Downtown San Jose",
                addr=address("200 E Santa Clara St", "San Jose", "CA", "95113"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-08T10:00", LA), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["Ana", "10:00 AM"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "long-names-long-place-english", "cerner"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["long-name", "long-place-name", "one-segment"],
        [
            patient(
                pid,
                given=["Maximilian-Alexander", "Christopher"],
                family="Worthington-Fitzgerald",
                gender="male",
                phone="(646) 555-0109",
                home=address("1 Central Park W", "New York", "NY", "10023"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="44218890",
            ),
            riverside(),
            location(
                lid,
                "Riverside Saint Bartholomew Regional Medical Center "
                "Outpatient Pavilion North Tower Suite 1200",
                addr=address("1000 10th Ave", "New York", "NY", "10019"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-16T16:15", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains=["4:15 PM"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "long-names-spanish-wednesday", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["long-name", "spanish", "one-segment", "accented-spanish-text"],
        [
            patient(
                pid,
                given=["María de los Ángeles", "Guadalupe"],
                family="Villaseñor-Castañeda",
                phone="(559) 555-0195",
                home=address("2500 Tulare St", "Fresno", "CA", "93721"),
                communication=ES_MX,
            ),
            riverside(),
            location(
                lid,
                "Riverside Centro Médico Comunitario de Fresno Edificio Norte",
                addr=address("2600 Tulare St", "Fresno", "CA", "93721"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-16T16:45", LA), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=LA,
        language="es",
        generic=False,
        text_contains=["16:45"],
        withheld_allowed=["cap-reached"],
    )

    slug, f = "english-patient-without-communication", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["language-default", "florida"],
        [
            patient(
                pid,
                given=["Walter"],
                family="Brennan",
                gender="male",
                phone="(407) 555-0177",
                home=address("400 E Colonial Dr", "Orlando", "FL", "32803"),
                mrn_system=ATHENA_MRN,
                mrn="50031",
                birth="1948-02-03",
            ),
            riverside(),
            location(
                lid,
                "Riverside Colonial Plaza",
                addr=address("2560 E Colonial Dr", "Orlando", "FL", "32803"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-10T13:30", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains=["1:30 PM"],
        withheld_allowed=["cap-reached"],
    )


# ---------------------------------------------------------------- sensitive care


SENSITIVE = ["cap-reached"]


def sensitive_appointment(
    slug: str,
    flavor: str,
    covers: list[str],
    *,
    given: str,
    family: str,
    phone: str,
    home: dict[str, Any],
    zone: str,
    local: str,
    place: str,
    place_addr: dict[str, Any],
    lang: str = "en",
    extra: list[dict[str, Any]] | None = None,
    now: str = "2026-12-01T18:00:00Z",
    **appt: Any,
) -> None:
    pid, aid, lid, prid = ids(flavor, slug, "pat", "appt", "loc", "prac")
    resources = [
        patient(
            pid,
            given=[given],
            family=family,
            phone=phone,
            home=home,
            communication=ES_MX if lang == "es" else EN_US,
        ),
        riverside(),
        location(lid, place, addr=place_addr),
        practitioner(prid, "Priya", "Raman"),
    ]
    resources += [r(pid, aid, lid, prid) if callable(r) else r for r in (extra or [])]
    resources.append(
        appointment(aid, pid, start=utc(local, zone), location_id=lid, practitioner_id=prid, **appt)
    )
    case(
        slug,
        flavor,
        now,
        covers,
        resources,
        zone=zone,
        language=lang,
        generic=True,
        withheld_allowed=SENSITIVE,
    )


def sensitive_cases() -> None:
    sensitive_appointment(
        "psych-associates-location-name",
        "epic",
        ["revealing-location-name", "psychiatry"],
        given="Jordan",
        family="Miller",
        phone="(602) 555-0188",
        home=address("3300 N Central Ave", "Phoenix", "AZ", "85012"),
        zone=PHX,
        local="2026-12-09T14:00",
        place="Desert Psych Associates",
        place_addr=address("3420 N 7th St", "Phoenix", "AZ", "85014"),
        service_type=concept("Psychiatry", (SNOMED, "394587001", "Psychiatry")),
    )
    sensitive_appointment(
        "depression-in-description-only",
        "athena",
        ["free-text-description", "mental-health"],
        given="Emily",
        family="Carter",
        phone="(317) 555-0143",
        home=address("500 Virginia Ave", "Indianapolis", "IN", "46203"),
        zone=IND,
        local="2026-12-09T10:00",
        place="Riverside Family Medicine Southside",
        place_addr=address("2800 Madison Ave", "Indianapolis", "IN", "46225"),
        service_type=FAMILY,
        description="follow-up for depression",
    )
    sensitive_appointment(
        "prep-in-comment-only",
        "cerner",
        ["free-text-comment", "hiv-prep"],
        given="Tyler",
        family="Nguyen",
        phone="(415) 555-0126",
        home=address("2200 Market St", "San Francisco", "CA", "94114"),
        zone=LA,
        local="2026-12-08T15:00",
        place="Riverside Castro Primary Care",
        place_addr=address("4000 18th St", "San Francisco", "CA", "94114"),
        service_type=FAMILY,
        comment="Pt requests female provider. Discuss PrEP refill and labs.",
    )
    sensitive_appointment(
        "suboxone-in-patient-instruction",
        "epic",
        ["free-text-patient-instruction", "opioid-use-disorder"],
        given="Kevin",
        family="Sullivan",
        phone="(617) 555-0161",
        home=address("50 Dorchester Ave", "Boston", "MA", "02127"),
        zone=NYC,
        local="2026-12-09T09:30",
        place="Riverside South Boston Health Center",
        place_addr=address("70 W Broadway", "Boston", "MA", "02127"),
        service_type=FAMILY,
        patient_instruction="Bring your Suboxone film box and photo ID. Urine sample on arrival.",
    )
    sensitive_appointment(
        "cancer-institute-location",
        "hapi",
        ["revealing-location-name", "oncology"],
        given="Linda",
        family="Park",
        phone="(916) 555-0114",
        home=address("1500 J St", "Sacramento", "CA", "95814"),
        zone=LA,
        local="2026-12-10T09:00",
        place="Sierra Cancer Institute",
        place_addr=address("2800 L St", "Sacramento", "CA", "95816"),
        description="C3D1 infusion",
        appointment_type="ROUTINE",
    )
    sensitive_appointment(
        "oncology-suite-reason-text",
        "epic",
        ["revealing-location-name", "oncology", "free-text-reason"],
        given="Barbara",
        family="Kowalski",
        phone="(718) 555-0131",
        home=address("80 Richmond Terrace", "Staten Island", "NY", "10301"),
        zone=NYC,
        local="2026-12-11T11:30",
        place="Riverside Oncology Suite 200",
        place_addr=address("475 Seaview Ave", "Staten Island", "NY", "10305"),
        reason=concept("breast cancer follow-up, discuss chemo plan"),
    )
    sensitive_appointment(
        "opioid-treatment-program-spanish",
        "cerner",
        ["revealing-location-name", "opioid-use-disorder", "spanish"],
        given="Rosa",
        family="Delgado",
        phone="(915) 555-0149",
        home=address("800 S Cotton St", "El Paso", "TX", "79901"),
        zone=DEN,
        local="2026-12-09T08:15",
        place="Opioid Treatment Program - Eastside",
        place_addr=address("1600 Lee Trevino Dr", "El Paso", "TX", "79936"),
        lang="es",
        description="Dosificación de metadona",
    )
    sensitive_appointment(
        "prep-clinic-location",
        "hapi",
        ["revealing-location-name", "hiv-prep"],
        given="Andre",
        family="Jackson",
        phone="(404) 555-0182",
        home=address("650 Ponce De Leon Ave NE", "Atlanta", "GA", "30308"),
        zone=NYC,
        local="2026-12-10T16:00",
        place="PrEP Clinic at Riverside Midtown",
        place_addr=address("990 Peachtree St NE", "Atlanta", "GA", "30309"),
        service_type=concept("Infectious disease"),
    )
    sensitive_appointment(
        "sublocade-injection-in-description",
        "athena",
        ["free-text-description", "opioid-use-disorder", "brand"],
        given="Ashley",
        family="Morgan",
        phone="(614) 555-0197",
        home=address("150 E Gay St", "Columbus", "OH", "43215"),
        zone=NYC,
        local="2026-12-14T13:00",
        place="Riverside Internal Medicine Downtown",
        place_addr=address("300 E Broad St", "Columbus", "OH", "43215"),
        description="Sublocade injection #4",
        appointment_type="ROUTINE",
    )
    sensitive_appointment(
        "psiquiatria-spanish-service-text",
        "epic",
        ["spanish-free-text", "psychiatry", "spanish"],
        given="Alejandro",
        family="Fuentes",
        phone="(520) 555-0168",
        home=address("200 W Congress St", "Tucson", "AZ", "85701"),
        zone=PHX,
        local="2026-12-09T15:00",
        place="Riverside Clínica del Pueblo",
        place_addr=address("101 W Irvington Rd", "Tucson", "AZ", "85714"),
        lang="es",
        service_type=concept("Psiquiatría"),
        comment="Seguimiento de psiquiatría, revisar medicamento",
    )
    sensitive_appointment(
        "vih-spanish-reason-text",
        "cerner",
        ["spanish-free-text", "hiv", "spanish"],
        given="Carlos",
        family="Medina",
        phone="(956) 555-0121",
        home=address("1200 E Van Buren St", "Brownsville", "TX", "78520"),
        zone=CHI,
        local="2026-12-10T09:45",
        place="Riverside Centro de Salud Brownsville",
        place_addr=address("2137 E 22nd St", "Brownsville", "TX", "78521"),
        lang="es",
        reason=concept("VIH - control de carga viral"),
    )
    # Sensitivity only visible through referenced resources: a PractitionerRole's specialty and
    # the HealthcareService it works in.
    slug, f = "psychiatry-via-practitioner-role-and-service", "epic"
    pid, aid, lid, prid, rid, sid = ids(f, slug, "pat", "appt", "loc", "prac", "role", "svc")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["sensitivity-from-referenced-resources", "practitioner-role", "healthcare-service"],
        [
            patient(
                pid,
                given=["Megan"],
                family="Holt",
                phone="(503) 555-0115",
                home=address("1200 SE Morrison St", "Portland", "OR", "97214"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Medical Office Building B",
                addr=address("2801 N Gantenbein Ave", "Portland", "OR", "97227"),
            ),
            practitioner(prid, "Nathan", "Brooks"),
            healthcare_service(
                sid,
                "Behavioral Health Outpatient Services",
                type_text="Outpatient psychiatry",
                location_id=lid,
            ),
            practitioner_role(
                rid,
                prid,
                specialty=concept(None, (SNOMED, "394587001", "Psychiatry")),
                location_id=lid,
                service_id=sid,
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-12-09T10:00", LA),
                location_id=lid,
                role_id=rid,
                service_id=sid,
                appointment_type="FOLLOWUP",
            ),
        ],
        zone=LA,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )
    # Medicines: brand names as text only, in a contained Medication, or a referenced one.
    slug, f = "biktarvy-refill-text-only", "epic"
    pid, mid = ids(f, slug, "pat", "medreq")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["brand-in-medication-text", "hiv", "refill"],
        [
            patient(
                pid,
                given=["Darnell"],
                family="Price",
                gender="male",
                phone="(212) 555-0184",
                home=address("2170 Frederick Douglass Blvd", "New York", "NY", "10026"),
                communication=EN_US,
            ),
            riverside(),
            medication_request(
                mid, pid, medication=concept("Biktarvy 50-200-25 mg tablet"), authored="2026-11-20"
            ),
        ],
        zone=NYC,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )
    slug, f = "descovy-contained-medication", "cerner"
    pid, mid = ids(f, slug, "pat", "medreq")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["brand-in-contained-medication", "hiv-prep", "refill"],
        [
            patient(
                pid,
                given=["Brian"],
                family="Lee",
                gender="male",
                phone="(305) 555-0127",
                home=address("1500 Collins Ave", "Miami Beach", "FL", "33139"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="55120984",
            ),
            riverside(),
            medication_request(
                mid,
                pid,
                medication_ref="#med1",
                contained=[medication("med1", "Descovy 200 mg-25 mg tablet")],
                authored="2026-11-18",
            ),
        ],
        zone=NYC,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )
    slug, f = "suboxone-referenced-medication-spanish", "hapi"
    pid, mid, med = ids(f, slug, "pat", "medreq", "med")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["brand-in-referenced-medication", "opioid-use-disorder", "refill", "spanish"],
        [
            patient(
                pid,
                given=["Miguel"],
                family="Santos",
                gender="male",
                phone="(602) 555-0145",
                home=address("2020 W Van Buren St", "Phoenix", "AZ", "85009"),
                communication=ES_MX,
                mrn_system=HAPI_MRN,
                mrn="AZ-7712",
            ),
            riverside(),
            medication(med, "Suboxone 8 mg-2 mg sublingual film"),
            medication_request(
                mid,
                pid,
                medication_ref=f"Medication/{med}",
                authored="2026-11-22",
                quantity=14,
                days=14,
                dosage_text="Dissolve 1 film under the tongue daily",
            ),
        ],
        zone=PHX,
        language="es",
        generic=True,
        withheld_allowed=SENSITIVE,
    )
    slug, f = "estradiol-gender-affirming-note", "athena"
    pid, mid = ids(f, slug, "pat", "medreq")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["gender-affirming-hormones", "refill"],
        [
            patient(
                pid,
                given=["Riley"],
                family="Anderson",
                gender="other",
                phone="(206) 555-0118",
                home=address("1100 E Pike St", "Seattle", "WA", "98122"),
                communication=EN_US,
                mrn_system=ATHENA_MRN,
                mrn="70114",
            ),
            riverside(),
            medication_request(
                mid,
                pid,
                medication=concept("estradiol valerate 20 mg/mL injection"),
                authored="2026-11-16",
                quantity=5,
                days=28,
                repeats=3,
                dosage_text="Inject 0.25 mL every 7 days",
                note="Gender-affirming hormone therapy",
            ),
        ],
        zone=LA,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )
    slug, f = "sertraline-coded-rxnorm", "epic"
    pid, mid = ids(f, slug, "pat", "medreq")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["psychiatric-medicine", "refill", "ingredient-level"],
        [
            patient(
                pid,
                given=["Olivia"],
                family="Bennett",
                phone="(312) 555-0193",
                home=address("1550 N Wells St", "Chicago", "IL", "60610"),
                communication=EN_US,
            ),
            riverside(),
            medication_request(
                mid,
                pid,
                medication=concept(
                    "Zoloft 50 mg tablet", (RXNORM, "212233", "Zoloft 50 MG Oral Tablet")
                ),
                authored="2026-11-21",
            ),
        ],
        zone=CHI,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )


# ---------------------------------------------------------------- discharges


def discharge_cases() -> None:
    slug, f = "discharge-after-involuntary-psychiatric-hold", "epic"
    pid, eid, lid = ids(f, slug, "pat", "enc", "loc")
    case(
        slug,
        f,
        "2026-11-30T23:00:00Z",
        ["sensitive-discharge", "involuntary-hold", "staff-call-instead"],
        [
            patient(
                pid,
                given=["Nathaniel"],
                family="Grant",
                gender="male",
                phone="(213) 555-0139",
                home=address("600 S Spring St", "Los Angeles", "CA", "90014"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Behavioral Health Unit 4W",
                addr=address("1200 N State St", "Los Angeles", "CA", "90033"),
            ),
            encounter(
                eid,
                pid,
                start=utc("2026-11-27T02:10", LA),
                end=utc("2026-11-30T11:30", LA),
                location_id=lid,
                type_concept=concept("Inpatient psychiatric admission"),
                reason=concept("Danger to self - involuntary hold (5150)"),
                narrative="Involuntary hold, released to home with outpatient follow-up.",
                service_provider="riverside",
            ),
        ],
        zone=LA,
        sent_none=True,
        withheld_all="staff-call-instead",
    )
    slug, f = "discharge-involuntary-hold-free-text-only", "cerner"
    pid, eid, lid = ids(f, slug, "pat", "enc", "loc")
    case(
        slug,
        f,
        "2026-11-30T23:00:00Z",
        ["sensitive-discharge", "involuntary-hold", "free-text-encounter", "staff-call-instead"],
        [
            patient(
                pid,
                given=["Caroline"],
                family="Whitaker",
                phone="(480) 555-0128",
                home=address("700 S Mill Ave", "Tempe", "AZ", "85281"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="61203345",
            ),
            riverside(),
            location(
                lid,
                "Riverside Medical Center 4 West",
                addr=address("1111 E McDowell Rd", "Phoenix", "AZ", "85006"),
            ),
            encounter(
                eid,
                pid,
                start=utc("2026-11-25T19:00", PHX),
                end=utc("2026-11-30T10:00", PHX),
                location_id=lid,
                type_concept=concept("Inpatient stay"),
                reason=concept("Placed on involuntary hold, court-ordered evaluation"),
            ),
        ],
        zone=PHX,
        sent_none=True,
        withheld_all="staff-call-instead",
    )
    slug, f = "discharge-alcohol-detox", "hapi"
    pid, eid, lid = ids(f, slug, "pat", "enc", "loc")
    case(
        slug,
        f,
        "2026-11-30T23:00:00Z",
        ["sensitive-discharge", "substance-use-treatment", "staff-call-instead"],
        [
            patient(
                pid,
                given=["Gregory"],
                family="Hale",
                gender="male",
                phone="(720) 555-0199",
                home=address("1600 Champa St", "Denver", "CO", "80202"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="CO-3311",
            ),
            riverside(),
            location(
                lid,
                "Riverside Recovery Center",
                addr=address("4500 E 9th Ave", "Denver", "CO", "80220"),
            ),
            encounter(
                eid,
                pid,
                start=utc("2026-11-24T20:00", DEN),
                end=utc("2026-11-30T09:30", DEN),
                location_id=lid,
                type_concept=concept("Alcohol detoxification"),
                reason=concept("Alcohol withdrawal"),
            ),
        ],
        zone=DEN,
        sent_none=True,
        withheld_all="staff-call-instead",
    )
    slug, f = "discharge-normal-pneumonia", "epic"
    pid, eid, lid = ids(f, slug, "pat", "enc", "loc")
    case(
        slug,
        f,
        "2026-11-30T23:00:00Z",
        ["normal-discharge"],
        [
            patient(
                pid,
                given=["Dorothy"],
                family="Fischer",
                phone="(518) 555-0172",
                home=address("25 Lark St", "Albany", "NY", "12210"),
                communication=EN_US,
                birth="1951-09-30",
            ),
            riverside(),
            location(
                lid,
                "Riverside Albany Medical Center",
                addr=address("43 New Scotland Ave", "Albany", "NY", "12208"),
            ),
            encounter(
                eid,
                pid,
                start=utc("2026-11-26T08:10", NYC),
                end=utc("2026-11-30T12:30", NYC),
                location_id=lid,
                type_concept=concept(
                    "Hospital admission", (SNOMED, "32485007", "Hospital admission")
                ),
                reason=concept(None, (SNOMED, "233604007", "Pneumonia")),
                service_provider="riverside",
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        sent_min=2,
        send_local={
            f"discharge-checkin|Encounter/{eid}|P1D": "2026-12-01T10:00",
            f"discharge-checkin|Encounter/{eid}|P3D": "2026-12-03T10:00",
        },
    )
    slug, f = "discharge-emergency-spanish-arizona", "cerner"
    pid, eid, lid = ids(f, slug, "pat", "enc", "loc")
    case(
        slug,
        f,
        "2026-11-30T23:00:00Z",
        ["normal-discharge", "emergency", "spanish", "arizona-no-dst"],
        [
            patient(
                pid,
                given=["Esperanza"],
                family="Molina",
                phone="(602) 555-0163",
                home=address("3800 W Thomas Rd", "Phoenix", "AZ", "85019"),
                communication=ES_MX,
                mrn_system=CERNER_MRN,
                mrn="71190023",
            ),
            riverside(),
            location(
                lid,
                "Riverside Maryvale Emergency",
                addr=address("5102 W Campbell Ave", "Phoenix", "AZ", "85031"),
            ),
            encounter(
                eid,
                pid,
                class_code="EMER",
                start=utc("2026-11-30T06:40", PHX),
                end=utc("2026-11-30T11:15", PHX),
                location_id=lid,
                type_concept=concept("Emergency department visit"),
                reason=concept("Ankle sprain"),
            ),
        ],
        zone=PHX,
        language="es",
        generic=False,
        sent_min=2,
        send_local={f"discharge-checkin|Encounter/{eid}|P1D": "2026-12-01T10:00"},
    )


# ---------------------------------------------------------------- protections, caps, combining


def protection_and_cap_cases() -> None:
    slug, f = "deceased-patient-with-booked-visit", "epic"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["deceased"],
        [
            patient(
                pid,
                given=["Harold"],
                family="Jennings",
                gender="male",
                phone="(904) 555-0186",
                home=address("200 W Forsyth St", "Jacksonville", "FL", "32202"),
                communication=EN_US,
                birth="1939-01-17",
                deceasedDateTime="2026-11-26T04:12:00Z",
            ),
            riverside(),
            location(
                lid,
                "Riverside Riverside Ave Clinic",
                addr=address("2001 Riverside Ave", "Jacksonville", "FL", "32204"),
            ),
            appointment(
                aid, pid, start=utc("2026-12-10T10:00", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        sent_none=True,
        withheld_all="deceased",
    )
    slug, f = "minor-patient-dental", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["minor", "dental"],
        [
            patient(
                pid,
                given=["Mateo"],
                family="Alvarez",
                gender="male",
                phone="(210) 555-0112",
                home=address("300 Alamo Plaza", "San Antonio", "TX", "78205"),
                communication=EN_US,
                birth="2013-05-22",
                mrn_system=ATHENA_MRN,
                mrn="90021",
            ),
            riverside(),
            location(
                lid,
                "Riverside Pediatric Dental Alamo Heights",
                addr=address("5000 Broadway", "San Antonio", "TX", "78209"),
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-12-09T15:30", CHI),
                location_id=lid,
                service_type=concept("Dental cleaning"),
            ),
        ],
        zone=CHI,
        sent_none=True,
        withheld_all="minor",
    )
    slug, f = "dental-cleaning-ordinary", "athena"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["ordinary-care", "dental", "no-location-name"],
        [
            patient(
                pid,
                given=["Jennifer"],
                family="Walsh",
                phone="(916) 555-0157",
                home=address("900 K St", "Sacramento", "CA", "95814"),
                communication=EN_US,
                mrn_system=ATHENA_MRN,
                mrn="90488",
            ),
            riverside(),
            location(
                lid,
                "Riverside Dental - Midtown Sacramento",
                addr=address("2020 J St", "Sacramento", "CA", "95811"),
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-12-11T14:00", LA),
                location_id=lid,
                service_type=concept("Dental cleaning"),
                minutes=60,
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["2:00 PM"],
        withheld_allowed=["cap-reached"],
    )
    slug, f = "lisinopril-refill-ordinary", "epic"
    pid, mid, prid = ids(f, slug, "pat", "medreq", "prac")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["ordinary-care", "refill"],
        [
            patient(
                pid,
                given=["Frank"],
                family="Russo",
                gender="male",
                phone="(973) 555-0135",
                home=address("50 Broad St", "Newark", "NJ", "07102"),
                communication=EN_US,
                birth="1957-12-01",
            ),
            riverside(),
            practitioner(prid, "Susan", "Kim"),
            medication_request(
                mid,
                pid,
                medication=concept(
                    "lisinopril 10 MG tablet", (RXNORM, "314076", "lisinopril 10 MG Oral Tablet")
                ),
                authored="2026-11-15",
                practitioner_id=prid,
                note="Hypertension, BP well controlled",
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        sent_min=1,
    )
    slug, f = "two-visits-same-day-same-place", "epic"
    pid, a1, a2, lid = ids(f, slug, "pat", "appt1", "appt2", "loc")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["combined-same-place", "caps"],
        [
            patient(
                pid,
                given=["Beatriz"],
                family="Soto",
                phone="(323) 555-0166",
                home=address("4800 Whittier Blvd", "Los Angeles", "CA", "90022"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside East LA Clinic",
                addr=address("5000 Whittier Blvd", "Los Angeles", "CA", "90022"),
            ),
            appointment(
                a2, pid, start=utc("2026-12-10T09:30", LA), location_id=lid, service_type=FAMILY
            ),
            appointment(
                a1,
                pid,
                start=utc("2026-12-10T09:00", LA),
                location_id=lid,
                service_type=concept("Laboratory"),
                appointment_type="ROUTINE",
                minutes=15,
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["9:00 AM", "9:30 AM"],
        withheld_allowed=["cap-reached"],
    )
    slug, f = "two-visits-same-day-two-places", "cerner"
    pid, a1, a2, l1, l2 = ids(f, slug, "pat", "appt1", "appt2", "loc1", "loc2")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["combined-two-places", "caps"],
        [
            patient(
                pid,
                given=["Irene"],
                family="Kaplan",
                phone="(914) 555-0108",
                home=address("10 Mamaroneck Ave", "White Plains", "NY", "10601"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="80011234",
            ),
            riverside(),
            location(
                l1,
                "Riverside White Plains Imaging",
                addr=address("170 Maple Ave", "White Plains", "NY", "10601"),
            ),
            location(
                l2,
                "Riverside Scarsdale Office",
                addr=address("2 Overhill Rd", "Scarsdale", "NY", "10583"),
            ),
            appointment(
                a2, pid, start=utc("2026-12-10T14:00", NYC), location_id=l2, service_type=FAMILY
            ),
            appointment(
                a1,
                pid,
                start=utc("2026-12-10T09:00", NYC),
                location_id=l1,
                service_type=concept("Imaging"),
                appointment_type="ROUTINE",
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        text_contains_any=["9:00 AM"],
        withheld_allowed=["cap-reached"],
    )
    slug, f = "three-visits-in-one-week-caps", "hapi"
    pid, a1, a2, a3, lid = ids(f, slug, "pat", "mon", "wed", "fri", "loc")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["caps-week", "arrival-order"],
        [
            patient(
                pid,
                given=["Victor"],
                family="Chen",
                gender="male",
                phone="(626) 555-0174",
                home=address("100 N Garfield Ave", "Alhambra", "CA", "91801"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="CA-8802",
            ),
            riverside(),
            location(
                lid,
                "Riverside San Gabriel Valley Clinic",
                addr=address("500 W Main St", "Alhambra", "CA", "91801"),
            ),
            # The EHR sends the latest first: the nearest must still win.
            appointment(
                a3, pid, start=utc("2026-12-11T11:00", LA), location_id=lid, service_type=FAMILY
            ),
            appointment(
                a2,
                pid,
                start=utc("2026-12-09T11:00", LA),
                location_id=lid,
                service_type=concept("Physical therapy"),
            ),
            appointment(
                a1,
                pid,
                start=utc("2026-12-07T11:00", LA),
                location_id=lid,
                service_type=concept("Laboratory"),
                appointment_type="ROUTINE",
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        withheld_allowed=["cap-reached"],
        sent_keys_include=[key_one(a1, "P1D")],
        withheld_reasons_include=["cap-reached"],
    )
    slug, f = "consecutive-days-arrival-order", "epic"
    pid, a1, a2, lid = ids(f, slug, "pat", "tue", "wed", "loc")
    case(
        slug,
        f,
        "2026-12-02T16:00:00Z",
        ["caps-day", "arrival-order"],
        [
            patient(
                pid,
                given=["Helen"],
                family="Okonkwo",
                phone="(713) 555-0151",
                home=address("3400 Montrose Blvd", "Houston", "TX", "77006"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Montrose Clinic",
                addr=address("3500 Montrose Blvd", "Houston", "TX", "77006"),
            ),
            # Wednesday's visit arrives first; Tuesday's 2-hour reminder and Wednesday's day-before
            # reminder fall on the same Tuesday: the nearer visit's reminder must win.
            appointment(
                a2, pid, start=utc("2026-12-09T10:00", CHI), location_id=lid, service_type=FAMILY
            ),
            appointment(
                a1,
                pid,
                start=utc("2026-12-08T10:00", CHI),
                location_id=lid,
                service_type=concept("Laboratory"),
                appointment_type="ROUTINE",
            ),
        ],
        zone=CHI,
        language="en",
        generic=False,
        withheld_allowed=["cap-reached"],
        sent_keys_include=[key_one(a1, "P1D")],
        withheld_reasons_include=["cap-reached"],
    )
    slug, f = "sms-denied-by-consent-email-instead", "epic"
    pid, aid, lid, cid = ids(f, slug, "pat", "appt", "loc", "consent")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["consent-deny-sms", "email", "email-opt-out"],
        [
            patient(
                pid,
                given=["Margaret"],
                family="Doyle",
                phone="(617) 555-0144",
                email="margaret.doyle@example.net",
                home=address("150 Tremont St", "Boston", "MA", "02111"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Back Bay Practice",
                addr=address("300 Boylston St", "Boston", "MA", "02116"),
            ),
            consent(cid, pid, permit=False, channel="sms"),
            appointment(
                aid, pid, start=utc("2026-12-09T13:15", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        channel="email",
        text_contains=["1:15 PM"],
        text_not_contains=["reply STOP"],
        withheld_allowed=["cap-reached"],
    )
    slug, f = "sms-permitted-by-consent", "cerner"
    pid, aid, lid, cid = ids(f, slug, "pat", "appt", "loc", "consent")
    case(
        slug,
        f,
        "2026-12-01T15:00:00Z",
        ["consent-permit-sms", "florida"],
        [
            patient(
                pid,
                given=["Dolores"],
                family="Vega",
                phone="(813) 555-0130",
                email="dvega@example.org",
                home=address("1800 E 7th Ave", "Tampa", "FL", "33605"),
                communication=EN_US,
                mrn_system=CERNER_MRN,
                mrn="99210077",
            ),
            riverside(),
            location(
                lid,
                "Riverside Ybor City Clinic",
                addr=address("1910 N 15th St", "Tampa", "FL", "33605"),
            ),
            consent(cid, pid, permit=True, channel="sms"),
            appointment(
                aid, pid, start=utc("2026-12-10T10:45", NYC), location_id=lid, service_type=FAMILY
            ),
        ],
        zone=NYC,
        language="en",
        generic=False,
        channel="sms",
        text_contains=["10:45 AM"],
        withheld_allowed=["cap-reached"],
    )
    slug, f = "absolute-references-epic", "epic"
    pid, aid, lid, prid = ids(f, slug, "pat", "appt", "loc", "prac")
    case(
        slug,
        f,
        "2026-12-01T18:00:00Z",
        ["absolute-references", "zone-from-location-address"],
        [
            patient(
                pid,
                given=["Kimberly"],
                family="Fox",
                phone="(805) 555-0104",
                home=address("35 W Victoria St", "Santa Barbara", "CA", "93101"),
                communication=EN_US,
            ),
            riverside(),
            location(
                lid,
                "Riverside Santa Barbara Cottage Clinic",
                addr=address("400 W Pueblo St", "Santa Barbara", "CA", "93105"),
            ),
            practitioner(prid, "Oliver", "Hughes"),
            appointment(
                aid,
                pid,
                start=utc("2026-12-09T08:00", LA),
                location_id=lid,
                practitioner_id=prid,
                service_type=FAMILY,
                base=BASES["epic"],
            ),
        ],
        zone=LA,
        language="en",
        generic=False,
        text_contains=["8:00 AM"],
        send_local={key_one(aid, "P1D"): "2026-12-08T08:00"},
        withheld_allowed=["cap-reached"],
    )
    slug, f = "cancer-center-organization-only", "hapi"
    pid, aid, lid = ids(f, slug, "pat", "appt", "loc")
    case(
        slug,
        f,
        "2026-12-01T16:00:00Z",
        ["revealing-organization", "oncology", "radiation"],
        [
            patient(
                pid,
                given=["Joan"],
                family="Whitfield",
                phone="(505) 555-0191",
                home=address("100 Gold Ave SW", "Albuquerque", "NM", "87102"),
                communication=EN_US,
                mrn_system=HAPI_MRN,
                mrn="NM-2021",
            ),
            riverside(),
            organization(
                "rgcc",
                "Rio Grande Cancer Center",
                address("1201 Camino de Salud NE", "Albuquerque", "NM", "87102"),
            ),
            location(
                lid,
                "Building C, Level 1",
                addr=address("1201 Camino de Salud NE", "Albuquerque", "NM", "87102"),
                org="rgcc",
            ),
            appointment(
                aid,
                pid,
                start=utc("2026-12-10T13:00", DEN),
                location_id=lid,
                service_type=concept("Radiation therapy"),
                description="Radiation session 12 of 25",
            ),
        ],
        zone=DEN,
        language="en",
        generic=True,
        withheld_allowed=SENSITIVE,
    )


def build() -> list[dict[str, Any]]:
    zone_cases()
    name_and_language_cases()
    sensitive_cases()
    discharge_cases()
    protection_and_cap_cases()
    return CASES


def write() -> None:
    BUNDLES.mkdir(exist_ok=True)
    for old in BUNDLES.glob("*.json"):
        old.unlink()
    entries = []
    for number, item in enumerate(build(), start=1):
        name = f"{number:03d}-{item['slug']}.json"
        document = bundle(f"corpus-{number:03d}", item["flavor"], item["resources"], item["now"])
        (BUNDLES / name).write_text(
            json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        entries.append(
            {
                "file": name,
                "ehr": item["flavor"],
                "now": item["now"],
                "covers": item["covers"],
                **item["expect"],
            }
        )
    header = (
        "# Acceptance corpus expectations (issue #8). One entry per bundle under bundles/.\n"
        "# Written by build_corpus.py; see README.md in this folder for the keys.\n"
    )
    (HERE / "expectations.yaml").write_text(
        header
        + yaml.safe_dump({"bundles": entries}, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )


if __name__ == "__main__":
    write()
