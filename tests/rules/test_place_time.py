"""The clock of the place of care and of the recipient, from the R4 data EHRs really send.

The appointment text shows the time at the clinic; quiet hours use the patient's clock.
Most Locations carry no timezone extension, so the address and position must do.
"""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from rules.place_time import (
    US_ZONES_PATH,
    ZoneDecision,
    address_zone,
    recipient_zone,
    zone_of_place,
)

TZ_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
ORG_DEFAULT = "America/New_York"


def clinic(
    ident: str,
    name: str,
    *,
    address: dict[str, Any] | None = None,
    position: tuple[float, float] | None = None,
    zone: str | None = None,
) -> dict[str, Any]:
    """A Location as an EHR sends it: usually no timezone extension."""
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": ident,
        "meta": {"versionId": "3", "lastUpdated": "2026-05-02T14:10:00Z"},
        "status": "active",
        "name": name,
        "mode": "instance",
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                        "code": "OUTPHARM" if "Pharmacy" in name else "HOSP",
                    }
                ]
            }
        ],
        "telecom": [{"system": "phone", "value": "+1 555 010 0100", "use": "work"}],
        "managingOrganization": {"reference": "Organization/ePx2sSxRM0o3h7nS7M4bC0g3"},
    }
    if zone is not None:
        resource["extension"] = [{"url": TZ_EXTENSION, "valueCode": zone}]
    if address is not None:
        resource["address"] = address
    if position is not None:
        resource["position"] = {"latitude": position[0], "longitude": position[1]}
    return resource


def us_address(line: str, city: str, state: str, postal: str | None) -> dict[str, Any]:
    address: dict[str, Any] = {
        "use": "work",
        "type": "physical",
        "line": [line],
        "city": city,
        "state": state,
        "country": "US",
    }
    if postal is not None:
        address["postalCode"] = postal
    return address


LA_CLINIC = clinic(
    "eLA0wilshire",
    "Wilshire Family Health",
    address={"use": "work", "text": "1200 Wilshire Blvd, Los Angeles, CA 90017"},
)
LA_CLINIC_STRUCTURED = clinic(
    "eLA1wilshire",
    "Wilshire Family Health",
    address=us_address("1200 Wilshire Blvd", "Los Angeles", "CA", "90017"),
)
PHOENIX_POSITION_ONLY = clinic(
    "ePHXdesert", "Desert Sky Primary Care", position=(33.4484, -112.0740)
)
INDIANAPOLIS = clinic(
    "eINDmeridian",
    "Meridian Street Clinic",
    address=us_address("1701 N Senate Blvd", "Indianapolis", "IN", "46202"),
)
GARY = clinic(
    "eGARYbroadway",
    "Broadway Health Center",
    address=us_address("3400 Broadway", "Gary", "IN", "46408-1239"),
)
EL_PASO = clinic(
    "eELPmesa",
    "Mesa Street Clinic",
    address=us_address("4815 Alameda Ave", "El Paso", "TX", "79905"),
)


def r4(resource: dict[str, Any]) -> dict[str, Any]:
    """Fail the test if a fixture is not strict R4 (what EHRs send must parse)."""
    kind = resource["resourceType"]
    module = importlib.import_module(f"fhirclient.models.{kind.lower()}")
    getattr(module, kind)(resource, strict=True)
    return resource


def place(location: dict[str, Any] | None, **kwargs: Any) -> ZoneDecision:
    options: dict[str, Any] = {"appointment_start": None, "configured": None}
    options.update(kwargs)
    return zone_of_place(None if location is None else r4(location), default=ORG_DEFAULT, **options)


# --------------------------------------------------------------------------------------
# Place of care: which source wins
# --------------------------------------------------------------------------------------

ADDRESS_CASES = [
    pytest.param(LA_CLINIC, "America/Los_Angeles", id="la-clinic-address-text-only"),
    pytest.param(LA_CLINIC_STRUCTURED, "America/Los_Angeles", id="la-clinic-structured"),
    pytest.param(INDIANAPOLIS, "America/Indiana/Indianapolis", id="indianapolis-eastern"),
    pytest.param(GARY, "America/Chicago", id="gary-in-464xx-central"),
    pytest.param(EL_PASO, "America/Denver", id="el-paso-tx-799xx-mountain"),
    pytest.param(
        clinic(
            "eHOU",
            "Bayou City Clinic",
            address=us_address("6565 Fannin St", "Houston", "TX", "77030"),
        ),
        "America/Chicago",
        id="houston-tx-central",
    ),
    pytest.param(
        clinic(
            "eCLINT",
            "Clint Family Clinic",
            address=us_address("101 N San Elizario Rd", "Clint", "TX", "79836"),
        ),
        "America/Denver",
        id="clint-tx-el-paso-county-town",
    ),
    pytest.param(
        clinic(
            "eTUC",
            "Saguaro Clinic",
            address=us_address("1501 N Campbell Ave", "Tucson", "AZ", "85719"),
        ),
        "America/Phoenix",
        id="tucson-az-no-dst",
    ),
    pytest.param(
        clinic(
            "eWR", "Window Rock Health", address=us_address("Hwy 264", "Window Rock", "AZ", "86515")
        ),
        "America/Denver",
        id="window-rock-navajo-nation-dst",
    ),
    pytest.param(
        clinic(
            "eHOPI",
            "Hopi Health Care Center",
            address=us_address("Hwy 264", "Kykotsmovi Village", "AZ", "86039"),
        ),
        "America/Phoenix",
        id="hopi-reservation-no-dst",
    ),
    pytest.param(
        clinic(
            "ePNS",
            "Bayfront Clinic",
            address=us_address("5151 N 9th Ave", "Pensacola", "FL", "32504"),
        ),
        "America/Chicago",
        id="florida-panhandle-central",
    ),
    pytest.param(
        clinic(
            "eMIA",
            "Biscayne Clinic",
            address=us_address("1611 NW 12th Ave", "Miami", "FL", "33136"),
        ),
        "America/New_York",
        id="miami-eastern",
    ),
    pytest.param(
        clinic(
            "eKNX",
            "Volunteer Clinic",
            address=us_address("1924 Alcoa Hwy", "Knoxville", "TN", "37920"),
        ),
        "America/New_York",
        id="knoxville-tn-eastern",
    ),
    pytest.param(
        clinic(
            "eNSH",
            "Music Row Clinic",
            address=us_address("1211 Medical Center Dr", "Nashville", "TN", "37232"),
        ),
        "America/Chicago",
        id="nashville-tn-central",
    ),
    pytest.param(
        clinic(
            "eTUL",
            "Tullahoma Clinic",
            address=us_address("1801 N Jackson St", "Tullahoma", "TN", "37388"),
        ),
        "America/Chicago",
        id="tullahoma-central-in-eastern-prefix",
    ),
    pytest.param(
        clinic(
            "ePAD",
            "Paducah Clinic",
            address=us_address("2501 Kentucky Ave", "Paducah", "KY", "42003"),
        ),
        "America/Chicago",
        id="paducah-ky-central",
    ),
    pytest.param(
        clinic(
            "eLOU",
            "Broadway Clinic",
            address=us_address("530 S Jackson St", "Louisville", "KY", "40202"),
        ),
        "America/Kentucky/Louisville",
        id="louisville-ky-eastern",
    ),
    pytest.param(
        clinic(
            "eIMT",
            "Iron Range Clinic",
            address=us_address("1 Pine St", "Iron Mountain", "MI", "49801"),
        ),
        "America/Menominee",
        id="michigan-up-central-county",
    ),
    pytest.param(
        clinic(
            "eMQT",
            "Superior Clinic",
            address=us_address("580 W College Ave", "Marquette", "MI", "49855"),
        ),
        "America/Detroit",
        id="michigan-up-eastern-county",
    ),
    pytest.param(
        clinic(
            "eONT",
            "Snake River Clinic",
            address=us_address("351 SW 9th St", "Ontario", "OR", "97914"),
        ),
        "America/Boise",
        id="ontario-or-malheur-mountain",
    ),
    pytest.param(
        clinic(
            "eCDA",
            "Lake City Clinic",
            address=us_address("2003 Kootenai Health Way", "Coeur d'Alene", "ID", "83814"),
        ),
        "America/Los_Angeles",
        id="north-idaho-pacific",
    ),
    pytest.param(
        clinic(
            "eBOI",
            "Treasure Valley Clinic",
            address=us_address("190 E Bannock St", "Boise", "ID", "83712"),
        ),
        "America/Boise",
        id="boise-mountain",
    ),
    pytest.param(
        clinic(
            "eSBF",
            "Monument Clinic",
            address=us_address("4021 Ave B", "Scottsbluff", "NE", "69361"),
        ),
        "America/Denver",
        id="nebraska-panhandle-mountain",
    ),
    pytest.param(
        clinic(
            "eGLD",
            "High Plains Clinic",
            address=us_address("220 W 2nd St", "Goodland", "KS", "67735"),
        ),
        "America/Denver",
        id="goodland-ks-mountain",
    ),
    pytest.param(
        clinic(
            "eDIK", "Badlands Clinic", address=us_address("30 7th St W", "Dickinson", "ND", "58601")
        ),
        "America/Denver",
        id="southwest-north-dakota-mountain",
    ),
    pytest.param(
        clinic(
            "eRAP",
            "Black Hills Clinic",
            address=us_address("353 Fairmont Blvd", "Rapid City", "SD", "57701"),
        ),
        "America/Denver",
        id="west-river-south-dakota-mountain",
    ),
    pytest.param(
        clinic(
            "eSF",
            "Sioux Falls Clinic",
            address=us_address("1305 W 18th St", "Sioux Falls", "SD", "57105"),
        ),
        "America/Chicago",
        id="east-river-south-dakota-central",
    ),
    pytest.param(
        clinic(
            "eLAfull",
            "Wilshire Family Health",
            address=us_address("1200 Wilshire Blvd", "Los Angeles", "california", "90017"),
        ),
        "America/Los_Angeles",
        id="full-state-name-lower-case",
    ),
    pytest.param(
        clinic(
            "eDCfull",
            "Foggy Bottom Clinic",
            address=us_address("900 23rd St NW", "Washington", "District of Columbia", "20037"),
        ),
        "America/New_York",
        id="district-of-columbia-by-name",
    ),
    pytest.param(
        clinic(
            "eSJU",
            "Clínica Condado",
            address={"line": ["1451 Av. Ashford"], "city": "San Juan", "country": "PR"},
        ),
        "America/Puerto_Rico",
        id="puerto-rico-as-country",
    ),
    pytest.param(
        clinic(
            "eSJU2",
            "Clínica Condado",
            address=us_address("1451 Av. Ashford", "San Juan", "PR", "00907"),
        ),
        "America/Puerto_Rico",
        id="puerto-rico-as-state",
    ),
    pytest.param(
        clinic(
            "eYYC",
            "Bow River Clinic",
            address={
                "line": ["1403 29 St NW"],
                "city": "Calgary",
                "state": "AB",
                "postalCode": "T2N 2T9",
                "country": "Canada",
            },
        ),
        "America/Edmonton",
        id="canada-alberta",
    ),
    pytest.param(
        clinic(
            "eTXT",
            "Broadway Health Center",
            address={"text": "3400 Broadway, Gary, Indiana 46408, USA"},
        ),
        "America/Chicago",
        id="state-name-and-zip-in-text",
    ),
    pytest.param(
        clinic(
            "eNOZIP",
            "Wilshire Family Health",
            address={"line": ["1200 Wilshire Blvd"], "city": "Los Angeles", "state": "CA"},
        ),
        "America/Los_Angeles",
        id="single-zone-state-needs-no-zip",
    ),
    pytest.param(
        clinic(
            "eZIPONLY",
            "Mesa Street Clinic",
            address={"line": ["4815 Alameda Ave"], "city": "El Paso", "postalCode": "79905"},
        ),
        "America/Denver",
        id="zip-without-state",
    ),
]


@pytest.mark.parametrize(("location", "expected"), ADDRESS_CASES)
def test_location_address_decides_the_zone_when_there_is_no_extension(
    location: dict[str, Any], expected: str
) -> None:
    decision = place(location)

    assert (decision.name, decision.source) == (expected, "location-address")
    assert "address-approximate" not in decision.notes


def test_the_issues_los_angeles_clinic_shows_0800_not_1100() -> None:
    start = "2026-12-01T08:00:00-08:00"
    decision = place(LA_CLINIC, appointment_start=start)

    local = datetime.fromisoformat(start).astimezone(decision.zone)
    assert local.time() == time(8, 0)
    assert decision.notes == ("start-offset-used-as-check",)


def test_position_only_location_in_phoenix_is_arizona_time() -> None:
    decision = place(PHOENIX_POSITION_ONLY)

    assert (decision.name, decision.source) == ("America/Phoenix", "location-position")


def test_position_in_the_navajo_nation_keeps_daylight_time() -> None:
    window_rock = clinic("eWRpos", "Window Rock Health", position=(35.6714, -109.0526))

    assert place(window_rock).name == "America/Denver"


def test_extension_wins_over_address_and_position() -> None:
    location = clinic(
        "eEXT",
        "Wilshire Family Health",
        address=us_address("1200 Wilshire Blvd", "Los Angeles", "CA", "90017"),
        position=(34.0522, -118.2437),
        zone="America/Chicago",
    )

    decision = place(location)

    assert (decision.name, decision.source) == ("America/Chicago", "location-extension")


def test_position_wins_over_address_and_says_when_they_disagree() -> None:
    location = clinic(
        "ePOSADDR",
        "Desert Sky Primary Care",
        address=us_address("1200 Wilshire Blvd", "Los Angeles", "CA", "90017"),
        position=(33.4484, -112.0740),
    )

    decision = place(location)

    assert (decision.name, decision.source) == ("America/Phoenix", "location-position")
    assert "address-disagrees:America/Los_Angeles" in decision.notes


def test_invalid_extension_is_noted_and_the_address_used() -> None:
    location = dict(LA_CLINIC, extension=[{"url": TZ_EXTENSION, "valueCode": "PST"}])

    decision = place(location)

    assert (decision.name, decision.source) == ("America/Los_Angeles", "location-address")
    assert "location-extension-invalid" in decision.notes


@pytest.mark.parametrize(
    "position",
    [
        pytest.param((0.0, 0.0), id="null-island-placeholder"),
        pytest.param((91.0, -112.0), id="latitude-out-of-range"),
    ],
)
def test_unusable_position_falls_through_to_the_address(position: tuple[float, float]) -> None:
    location = clinic(
        "eBADPOS",
        "Wilshire Family Health",
        address={"text": "1200 Wilshire Blvd, Los Angeles, CA 90017"},
        position=position,
    )

    decision = place(location)

    assert (decision.name, decision.source) == ("America/Los_Angeles", "location-address")
    assert "position-invalid" in decision.notes


def test_position_at_sea_is_not_a_clinic_zone() -> None:
    location = clinic("eSEA", "Harbor Clinic", position=(30.0, -140.0))

    decision = place(location, configured="America/Los_Angeles")

    assert (decision.name, decision.source) == ("America/Los_Angeles", "location-config")
    assert "position-not-on-land" in decision.notes


@pytest.mark.parametrize(
    ("configured", "expected", "source"),
    [
        pytest.param("America/Denver", "America/Denver", "location-config", id="configured"),
        pytest.param(None, ORG_DEFAULT, "default", id="organisation-default"),
    ],
)
def test_unknown_state_falls_back_to_configuration_then_default(
    configured: str | None, expected: str, source: str
) -> None:
    location = clinic(
        "eUNK", "Sunrise Clinic", address=us_address("1 Main St", "Springfield", "ZZ", None)
    )

    decision = place(location, configured=configured)

    assert (decision.name, decision.source) == (expected, source)
    assert "address-unrecognized" in decision.notes


def test_no_location_at_all_uses_configuration() -> None:
    decision = place(None, configured="America/Chicago")

    assert (decision.name, decision.source) == ("America/Chicago", "location-config")


def test_invalid_configured_zone_is_noted_and_skipped() -> None:
    decision = place(None, configured="Pacific Time")

    assert (decision.name, decision.source) == (ORG_DEFAULT, "default")
    assert "config-invalid" in decision.notes


def test_country_with_several_zones_is_not_guessed() -> None:
    location = clinic(
        "eMX",
        "Clínica Reforma",
        address={"line": ["Paseo de la Reforma 222"], "city": "Ciudad de México", "country": "MX"},
    )

    decision = place(location, configured="America/Mexico_City")

    assert (decision.name, decision.source) == ("America/Mexico_City", "location-config")
    assert "address-country-multizone" in decision.notes


def test_address_wins_over_configuration_and_the_disagreement_is_noted() -> None:
    decision = place(LA_CLINIC, configured="America/New_York")

    assert (decision.name, decision.source) == ("America/Los_Angeles", "location-address")
    assert "config-disagrees:America/New_York" in decision.notes


class TestApproximateAddresses:
    """A state (or ZIP prefix) that straddles a boundary only narrows the zone down."""

    STATE_ONLY = clinic(
        "eINnozip", "Hoosier Clinic", address={"city": "Knox", "state": "IN", "country": "US"}
    )

    def test_configured_zone_wins_over_an_approximate_address(self) -> None:
        decision = place(self.STATE_ONLY, configured="America/Chicago")

        assert (decision.name, decision.source) == ("America/Chicago", "location-config")
        assert "address-approximate" in decision.notes

    def test_without_configuration_the_majority_zone_is_used_and_noted(self) -> None:
        decision = place(self.STATE_ONLY)

        assert (decision.name, decision.source) == (
            "America/Indiana/Indianapolis",
            "location-address",
        )
        assert "address-approximate" in decision.notes

    def test_a_listed_town_in_a_split_prefix_is_exact(self) -> None:
        knox = clinic(
            "eKNOX", "Starke County Clinic", address=us_address("1 Main St", "Knox", "IN", "46534")
        )

        decision = place(knox, configured="America/New_York")

        assert (decision.name, decision.source) == ("America/Chicago", "location-address")

    def test_zip_from_another_state_is_not_trusted(self) -> None:
        location = clinic(
            "eMISMATCH",
            "Wilshire Family Health",
            address=us_address("1 Main St", "Los Angeles", "CA", "46402"),
        )

        decision = place(location)

        assert decision.name == "America/Los_Angeles"
        assert "address-zip-state-mismatch" in decision.notes


# --------------------------------------------------------------------------------------
# Appointment.start offset: a check, never a zone
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "notes"),
    [
        pytest.param("2026-12-01T08:00:00-08:00", ("start-offset-used-as-check",), id="agrees"),
        pytest.param(
            "2026-12-01T11:00:00-05:00", ("start-offset-disagrees:-05:00",), id="eastern-offset"
        ),
        pytest.param(
            "2026-07-01T08:00:00-08:00", ("start-offset-disagrees:-08:00",), id="pst-in-summer"
        ),
        pytest.param("2026-12-01T16:00:00Z", ("start-offset-utc-ignored",), id="utc-normalised"),
        pytest.param(None, (), id="no-start"),
        pytest.param("2026-12-01", (), id="date-only"),
    ],
)
def test_start_offset_is_checked_against_the_chosen_zone(
    start: str | None, notes: tuple[str, ...]
) -> None:
    decision = place(LA_CLINIC, appointment_start=start)

    assert decision.name == "America/Los_Angeles"
    assert decision.notes == notes


def test_start_offset_never_becomes_the_zone() -> None:
    decision = place(None, appointment_start="2026-12-01T08:00:00-08:00")

    assert (decision.name, decision.source) == (ORG_DEFAULT, "default")
    assert decision.notes == ("start-offset-disagrees:-08:00",)


# --------------------------------------------------------------------------------------
# DST: 2026-03-08 (spring forward) and 2026-11-01 (fall back)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "start", "local"),
    [
        pytest.param(LA_CLINIC, "2026-03-07T08:00:00-08:00", time(8), id="la-day-before-spring"),
        pytest.param(LA_CLINIC, "2026-03-08T08:00:00-07:00", time(8), id="la-spring-forward-day"),
        pytest.param(LA_CLINIC, "2026-11-01T01:30:00-07:00", time(1, 30), id="la-fold-first"),
        pytest.param(LA_CLINIC, "2026-11-01T01:30:00-08:00", time(1, 30), id="la-fold-second"),
        pytest.param(LA_CLINIC, "2026-11-01T08:00:00-08:00", time(8), id="la-fall-back-day"),
        pytest.param(GARY, "2026-03-08T08:00:00-05:00", time(8), id="gary-spring-forward-day"),
        pytest.param(
            INDIANAPOLIS, "2026-11-01T08:00:00-05:00", time(8), id="indianapolis-fall-back-day"
        ),
        pytest.param(EL_PASO, "2026-03-08T08:00:00-06:00", time(8), id="el-paso-spring-forward"),
        pytest.param(
            PHOENIX_POSITION_ONLY, "2026-03-08T08:00:00-07:00", time(8), id="phoenix-no-dst"
        ),
        pytest.param(
            PHOENIX_POSITION_ONLY, "2026-11-01T08:00:00-07:00", time(8), id="phoenix-no-dst-fall"
        ),
    ],
)
def test_dst_transition_days_resolve_to_the_written_local_time(
    location: dict[str, Any], start: str, local: time
) -> None:
    decision = place(location, appointment_start=start)

    assert datetime.fromisoformat(start).astimezone(decision.zone).time() == local
    assert decision.notes == ("start-offset-used-as-check",)


def test_utc_instant_on_spring_forward_day_reads_as_local_morning() -> None:
    decision = place(LA_CLINIC)

    before = datetime(2026, 3, 8, 16, 0, tzinfo=UTC).astimezone(decision.zone)
    after = datetime(2026, 11, 1, 16, 0, tzinfo=UTC).astimezone(decision.zone)

    assert (before.time(), after.time()) == (time(9, 0), time(8, 0))


# --------------------------------------------------------------------------------------
# Recipient: where the patient reads the message
# --------------------------------------------------------------------------------------


def patient(*addresses: dict[str, Any], zone: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "eXbMln3hu0PfFrpv2HgVHyg3",
        "meta": {"versionId": "7", "lastUpdated": "2026-11-20T14:03:11.000Z"},
        "active": True,
        "name": [{"use": "official", "family": "Gonzalez", "given": ["Maria", "Elena"]}],
        "telecom": [{"system": "phone", "value": "+1 602 555 0142", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1968-04-12",
    }
    if addresses:
        resource["address"] = list(addresses)
    if zone is not None:
        resource["extension"] = [{"url": TZ_EXTENSION, "valueCode": zone}]
    return r4(resource)


def home(city: str, state: str, postal: str | None, **extra: Any) -> dict[str, Any]:
    address: dict[str, Any] = {"use": "home", "line": ["42 Elm St"], "city": city, "state": state}
    if postal:
        address["postalCode"] = postal
    address.update(extra)
    return address


LA_PLACE = zone_of_place(LA_CLINIC, appointment_start=None, configured=None, default=ORG_DEFAULT)


def test_patient_timezone_extension_wins() -> None:
    reader = patient(home("Phoenix", "AZ", "85004"), zone="America/Denver")

    decision = recipient_zone(reader, LA_PLACE)

    assert (decision.name, decision.source) == ("America/Denver", "patient-extension")


def test_patient_home_address_sets_quiet_hours_zone() -> None:
    decision = recipient_zone(patient(home("Phoenix", "AZ", "85004")), LA_PLACE)

    assert (decision.name, decision.source) == ("America/Phoenix", "patient-address")


def test_home_address_is_preferred_over_work_and_old_addresses() -> None:
    reader = patient(
        dict(home("Gary", "IN", "46408"), use="work"),
        dict(home("Tucson", "AZ", "85719"), use="old"),
        home("El Paso", "TX", "79905"),
    )

    assert recipient_zone(reader, LA_PLACE).name == "America/Denver"


def test_ended_home_address_is_skipped() -> None:
    reader = patient(
        home("Gary", "IN", "46408", period={"start": "2015-01-01", "end": "2025-06-30"}),
        dict(home("Indianapolis", "IN", "46202"), use="temp"),
    )

    decision = recipient_zone(reader, LA_PLACE, today=date(2026, 11, 20))

    assert decision.name == "America/Indiana/Indianapolis"


def test_future_end_date_is_still_current_when_today_is_known() -> None:
    reader = patient(home("Gary", "IN", "46408", period={"end": "2027-06-30"}))

    assert recipient_zone(reader, LA_PLACE, today=date(2026, 11, 20)).name == "America/Chicago"


def test_patient_without_address_reads_at_the_place_of_care() -> None:
    decision = recipient_zone(patient(), LA_PLACE)

    assert (decision.name, decision.source) == ("America/Los_Angeles", "location-address")
    assert decision.notes[-1] == "recipient-at-place-of-care"


def test_no_patient_resource_reads_at_the_place_of_care() -> None:
    assert recipient_zone(None, LA_PLACE).name == "America/Los_Angeles"


def test_approximate_home_address_defers_to_a_place_in_the_same_state() -> None:
    gary_place = place(GARY)
    reader = patient(home("Hobart", "IN", None))

    decision = recipient_zone(reader, gary_place)

    assert decision.name == "America/Chicago"
    assert "patient-address-approximate" in decision.notes


def test_approximate_home_address_far_from_the_place_is_still_used() -> None:
    reader = patient(home("Fort Wayne", "Indiana", None))

    decision = recipient_zone(reader, LA_PLACE)

    assert (decision.name, decision.source) == ("America/Indiana/Indianapolis", "patient-address")
    assert "address-approximate" in decision.notes


# --------------------------------------------------------------------------------------
# The table itself
# --------------------------------------------------------------------------------------


def _table() -> dict[str, Any]:
    return yaml.safe_load(US_ZONES_PATH.read_text(encoding="utf-8"))


def _zone_name(entry: Any) -> str:
    return entry if isinstance(entry, str) else entry["zone"]


def test_every_zone_in_the_table_is_a_tz_database_name() -> None:
    table = _table()
    names = {
        _zone_name(entry)
        for section in ("states", "zip3", "zip5", "canada")
        for entry in table[section].values()
    }

    assert all(ZoneInfo(name).key == name for name in names)


def test_zip_prefixes_and_towns_belong_to_split_states() -> None:
    table = _table()
    owner = {}
    for code, entry in table["states"].items():
        for spec in entry.get("zip3_ranges", ()):
            first, _, last = spec.partition("-")
            for number in range(int(first), int(last or first) + 1):
                owner[f"{number:03d}"] = code
    mixed = {code for code, entry in table["states"].items() if entry.get("mixed")}

    stray_prefixes = [p for p in table["zip3"] if owner.get(p) not in mixed]
    stray_towns = [z for z in table["zip5"] if owner.get(z[:3]) not in mixed | {"AL"}]

    assert (stray_prefixes, stray_towns) == ([], [])


def test_table_names_its_source() -> None:
    header = US_ZONES_PATH.read_text(encoding="utf-8").split("\nstates:")[0]

    assert "49 CFR Part 71" in header
    assert "USPS" in header


def test_address_zone_reads_a_bare_address() -> None:
    found = address_zone({"state": "tx", "postalCode": "79901"})

    assert found is not None
    assert (found.zone.key, found.approximate) == ("America/Denver", False)
