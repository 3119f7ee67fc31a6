"""Which clock a message lives by: the place of care's, and the recipient's.

The appointment text shows the time **at the place of care**; quiet hours apply in the
**recipient's** zone (47 CFR 64.1200(c)(1): the called party's local time). Both are
decided here from raw R4 JSON, with the winning source and any doubts in the result so
the trace can say why a message says "8:00 AM".

Place of care (:func:`zone_of_place`), first usable source wins:

1. ``location-extension`` -- the Location's R4 timezone extension
   (``http://hl7.org/fhir/StructureDefinition/timezone``, ``valueCode``, an IANA name).
2. ``location-position`` -- ``Location.position`` latitude/longitude, looked up with
   ``timezonefinder`` (land zones only; ``0,0`` and out-of-range values are rejected).
3. ``location-address`` -- ``Location.address``: US state and ZIP Code through the table
   in ``rules/places/us_zones.yaml`` (split states resolved by ZIP prefix and town),
   Canadian provinces, and any other country that has a single zone in the tz database.
   Structured ``state``/``postalCode``/``country`` are read first, then ``text``/``line``.
4. ``location-config`` -- the rules file's per-location zone (``configured``).
5. ``default`` -- the organisation's zone.

An address that only narrows the zone down approximately (a state or ZIP prefix that
straddles a zone boundary, with no exact town match) yields to ``location-config`` when the
rules file names a zone for the location; without one it is used, noted
``address-approximate``.

The UTC offset written in ``Appointment.start`` is **never** used as a zone (an offset is
not a place: it cannot say when DST begins, and servers often normalise to ``Z``). It is
used as a check: ``start-offset-used-as-check`` when it agrees with the chosen zone at that
instant, ``start-offset-disagrees:-05:00`` when it does not, ``start-offset-utc-ignored``
when it is UTC and the zone is not.

Recipient (:func:`recipient_zone`): the Patient's timezone extension
(``patient-extension``), then the Patient's current home address (``patient-address``;
same table), then the place of care's decision (its source kept, noted
``recipient-at-place-of-care``). A home address that is only approximate yields to the
place of care when the place's zone is one of the zones the patient's state spans.

Notes never carry a value from the resource (no ZIP Code, no street): only codes and zone
names, so traces stay free of PHI.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache, lru_cache
from importlib import resources
from math import isfinite
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml

from rules.fhir_json import TIMEZONE_EXTENSION, extension_value, parse_date
from rules.timing import zone_or_none

US_ZONES_PATH: Final = Path(__file__).with_name("places") / "us_zones.yaml"

SOURCES: Final = (
    "location-extension",
    "location-position",
    "location-address",
    "location-config",
    "default",
)
RECIPIENT_SOURCES: Final = ("patient-extension", "patient-address")


@dataclass(frozen=True)
class ZoneDecision:
    """A zone, where it came from, and what was noticed on the way (for the trace)."""

    zone: ZoneInfo
    source: str
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The IANA name of the zone."""
        return self.zone.key


# --------------------------------------------------------------------------------------
# Place of care
# --------------------------------------------------------------------------------------


def zone_of_place(
    location: Mapping[str, Any] | None,
    *,
    appointment_start: str | None,
    configured: str | None,
    default: str,
) -> ZoneDecision:
    """The zone of the place of care, by the precedence in the module docstring."""
    notes: list[str] = []
    configured_zone = zone_or_none(configured)
    if configured and configured_zone is None:
        notes.append("config-invalid")

    decision = _from_location(location, configured_zone, notes)
    if decision is None:
        if configured_zone is not None:
            decision = ZoneDecision(configured_zone, "location-config")
        else:
            decision = ZoneDecision(ZoneInfo(default), "default")
    elif (
        configured_zone is not None
        and decision.source != "location-config"
        and configured_zone.key != decision.zone.key
    ):
        notes.append(f"config-disagrees:{configured_zone.key}")

    notes.extend(start_offset_check(appointment_start, decision.zone))
    return replace(decision, notes=(*decision.notes, *notes))


def _from_location(
    location: Mapping[str, Any] | None,
    configured_zone: ZoneInfo | None,
    notes: list[str],
) -> ZoneDecision | None:
    if not isinstance(location, (dict, Mapping)):
        return None
    stated = extension_value(location, TIMEZONE_EXTENSION)
    zone = zone_or_none(stated)
    if zone is not None:
        return ZoneDecision(zone, "location-extension")
    if stated is not None:
        notes.append("location-extension-invalid")

    address = _address_zone(location.get("address"), notes)
    position = _position_zone(location.get("position"), notes)
    if position is not None:
        if address is not None and not address.approximate and address.zone.key != position.key:
            notes.append(f"address-disagrees:{address.zone.key}")
        return ZoneDecision(position, "location-position")
    if address is None:
        return None
    if address.approximate:
        if configured_zone is not None:
            notes.append("address-approximate")
            return ZoneDecision(configured_zone, "location-config")
        notes.append("address-approximate")
    return ZoneDecision(address.zone, "location-address")


def start_offset_check(start: str | None, zone: ZoneInfo) -> list[str]:
    """Compare the offset written in ``Appointment.start`` with ``zone`` at that instant."""
    if not isinstance(start, str) or "T" not in start:
        return []
    return list(_start_offset_check(start, zone))


@lru_cache(maxsize=4096)
def _start_offset_check(start: str, zone: ZoneInfo) -> tuple[str, ...]:
    """:func:`start_offset_check`, once per distinct start text and zone (a day's
    appointments start at a few hundred instants)."""
    try:
        written = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return ()
    offset = written.utcoffset()
    if offset is None:
        return ()
    actual = written.astimezone(zone).utcoffset()
    if actual == offset:
        return ("start-offset-used-as-check",)
    if offset == timedelta(0):
        return ("start-offset-utc-ignored",)
    return (f"start-offset-disagrees:{_format_offset(offset)}",)


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


# --------------------------------------------------------------------------------------
# Recipient
# --------------------------------------------------------------------------------------


def recipient_zone(
    patient: Mapping[str, Any] | None,
    place: ZoneDecision,
    *,
    today: date | None = None,
) -> ZoneDecision:
    """Where the patient reads the message: their extension, home address, else the place.

    ``today`` decides which addresses are current (``period``); without it an address
    whose ``period`` has an end is treated as no longer current.
    """
    return recipient_at(patient_zone(patient, today=today), place)


@dataclass(frozen=True)
class PatientZone:
    """What the Patient says about their zone, before any place of care is considered.

    ``decided`` is the answer whatever the place (the extension, an exact home
    address); otherwise ``address`` is an approximate home address, if any, and
    ``notes`` what was noticed reading the Patient.
    """

    decided: ZoneDecision | None
    address: AddressZone | None
    notes: tuple[str, ...]


PATIENT_SAYS_NOTHING: Final = PatientZone(None, None, ())
"""A Patient without a timezone extension or an address: the place of care decides."""


def patient_zone(patient: Mapping[str, Any] | None, *, today: date | None = None) -> PatientZone:
    """The Patient's half of :func:`recipient_zone` (read once, for every place of care)."""
    notes: list[str] = []
    if isinstance(patient, (dict, Mapping)):
        if not patient.get("extension") and patient.get("address") is None:
            return PATIENT_SAYS_NOTHING
        stated = extension_value(patient, TIMEZONE_EXTENSION)
        zone = zone_or_none(stated)
        if zone is not None:
            return PatientZone(ZoneDecision(zone, "patient-extension"), None, ())
        if stated is not None:
            notes.append("patient-extension-invalid")
        address = _address_zone(_home_address(patient.get("address"), today), notes)
        if address is not None:
            if not address.approximate:
                return PatientZone(
                    ZoneDecision(address.zone, "patient-address", tuple(notes)), None, ()
                )
            return PatientZone(None, address, tuple(notes))
    return PatientZone(None, None, tuple(notes)) if notes else PATIENT_SAYS_NOTHING


def recipient_at(patient: PatientZone, place: ZoneDecision) -> ZoneDecision:
    """:func:`recipient_zone` from the Patient's half and the place of care."""
    if patient.decided is not None:
        return patient.decided
    notes = patient.notes
    address = patient.address
    if address is not None:
        if place.source == "default" or place.zone.key not in address.possible:
            return ZoneDecision(address.zone, "patient-address", (*notes, "address-approximate"))
        notes = (*notes, "patient-address-approximate")
    return ZoneDecision(
        place.zone, place.source, (*place.notes, *notes, "recipient-at-place-of-care")
    )


def _home_address(addresses: Any, today: date | None) -> Mapping[str, Any] | None:
    """The current home address, else the first current one; ``None`` if none is current."""
    if isinstance(addresses, (dict, Mapping)):
        addresses = [addresses]
    if not isinstance(addresses, list):
        return None
    current = [
        a
        for a in addresses
        if isinstance(a, (dict, Mapping)) and a.get("use") != "old" and _is_current(a, today)
    ]
    for address in current:
        if address.get("use") == "home":
            return address
    return current[0] if current else None


def _is_current(address: Mapping[str, Any], today: date | None) -> bool:
    period = address.get("period")
    if not isinstance(period, (dict, Mapping)):
        return True
    end = parse_date(period.get("end"))
    start = parse_date(period.get("start"))
    if today is None:
        return period.get("end") is None
    if end is not None and end < today:
        return False
    return not (start is not None and start > today)


# --------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------

_FINDER_LOCK = threading.Lock()


@cache
def _finder() -> Any:
    """The TimezoneFinder, built on first use (it maps its data files when constructed)."""
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def zone_at(latitude: float, longitude: float) -> ZoneInfo | None:
    """The land time zone at a WGS84 point, or ``None`` at sea or for an unknown zone."""
    with _FINDER_LOCK:
        name = _finder().timezone_at_land(lat=latitude, lng=longitude)
    return zone_or_none(name)


def _position_zone(position: Any, notes: list[str]) -> ZoneInfo | None:
    if not isinstance(position, (dict, Mapping)):
        return None
    latitude = _number(position.get("latitude"))
    longitude = _number(position.get("longitude"))
    if (
        latitude is None
        or longitude is None
        or not -90 <= latitude <= 90
        or not -180 <= longitude <= 180
        or (latitude == 0 and longitude == 0)
    ):
        notes.append("position-invalid")
        return None
    zone = zone_at(latitude, longitude)
    if zone is None:
        notes.append("position-not-on-land")
    return zone


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if isfinite(number) else None


# --------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    zone: ZoneInfo
    mixed: bool
    zones: frozenset[str]


@dataclass(frozen=True)
class _Prefix:
    zone: ZoneInfo
    mixed: bool


@dataclass(frozen=True)
class _Tables:
    states: dict[str, _Region]
    state_names: dict[str, str]
    zip3: dict[str, _Prefix]
    zip5: dict[str, ZoneInfo]
    zip3_state: dict[str, str]
    provinces: dict[str, _Region]
    province_names: dict[str, str]
    countries: dict[str, str]
    single_zone_countries: dict[str, ZoneInfo]


@dataclass(frozen=True)
class AddressZone:
    """What an address says about its zone: the zone, whether only approximately, and
    every zone its region spans (for deciding whether a nearer source should win)."""

    zone: ZoneInfo
    approximate: bool
    possible: frozenset[str]


def _fold(text: str) -> str:
    """Case-, accent-, dot- and space-insensitive key (``"Nuevo México"`` -> ``nuevo mexico``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    bare = bare.replace("\u02bb", "").replace("'", "").replace(".", " ")
    return " ".join(bare.casefold().split())


def _expand_range(spec: str) -> Iterable[str]:
    first, _, last = spec.partition("-")
    for number in range(int(first), int(last or first) + 1):
        yield f"{number:03d}"


def _region(entry: Mapping[str, Any]) -> _Region:
    return _Region(ZoneInfo(entry["zone"]), bool(entry.get("mixed")), frozenset({entry["zone"]}))


@cache
def _tables() -> _Tables:
    data = yaml.safe_load(US_ZONES_PATH.read_text(encoding="utf-8"))
    states: dict[str, _Region] = {}
    state_names: dict[str, str] = {}
    zip3_state: dict[str, str] = {}
    for code, entry in data["states"].items():
        states[code] = _region(entry)
        for name in (code, entry["name"], *entry.get("aliases", ())):
            state_names[_fold(name)] = code
        for spec in entry.get("zip3_ranges", ()):
            for prefix in _expand_range(spec):
                if prefix in zip3_state:
                    raise ValueError(f"ZIP prefix {prefix} assigned to two states")
                zip3_state[prefix] = code
    zip3 = {
        prefix: (
            _Prefix(ZoneInfo(entry), False)
            if isinstance(entry, str)
            else _Prefix(ZoneInfo(entry["zone"]), bool(entry.get("mixed")))
        )
        for prefix, entry in data["zip3"].items()
    }
    zip5 = {code: ZoneInfo(name) for code, name in data["zip5"].items()}
    # Every zone a state spans, so an approximate address can defer to a nearer source.
    spans: dict[str, set[str]] = {code: {region.zone.key} for code, region in states.items()}
    for prefix, entry in zip3.items():
        spans[zip3_state[prefix]].add(entry.zone.key)
    for code, zone in zip5.items():
        spans[zip3_state[code[:3]]].add(zone.key)
    states = {
        code: _Region(region.zone, region.mixed, frozenset(spans[code]))
        for code, region in states.items()
    }
    provinces: dict[str, _Region] = {}
    province_names: dict[str, str] = {}
    for code, entry in data["canada"].items():
        provinces[code] = _region(entry)
        for name in (code, entry["name"], *entry.get("aliases", ())):
            province_names[_fold(name)] = code
    countries, single = _tz_countries()
    for code, aliases in data["countries"].items():
        for alias in (code, *aliases):
            countries[_fold(alias)] = code
    return _Tables(
        states=states,
        state_names=state_names,
        zip3=zip3,
        zip5=zip5,
        zip3_state=zip3_state,
        provinces=provinces,
        province_names=province_names,
        countries=countries,
        single_zone_countries=single,
    )


def _tz_countries() -> tuple[dict[str, str], dict[str, ZoneInfo]]:
    """Country names and single-zone countries from the tz database shipped in ``tzdata``."""
    folder = resources.files("tzdata") / "zoneinfo"
    names: dict[str, str] = {}
    for line in (folder / "iso3166.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[_fold(code)] = code
            names[_fold(name)] = code
    zones: dict[str, list[str]] = {}
    for line in (folder / "zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            zones.setdefault(fields[0], []).append(fields[2])
    single = {code: ZoneInfo(found[0]) for code, found in zones.items() if len(found) == 1}
    return names, single


_US_TERRITORIES: Final = frozenset({"PR", "VI", "GU", "MP", "AS"})
_ZIP = re.compile(r"^\s*(\d{5})(?:[-\s]?\d{4})?\s*$")
_TOKENS = re.compile(r"[^\W\d_][\w.'\u02bb-]*|\b\d{5}(?:-\d{4})?\b")


def address_zone(address: Any) -> AddressZone | None:
    """The zone an R4 ``Address`` points to, or ``None`` when it does not say."""
    return _address_zone(address, [])


def _address_zone(address: Any, notes: list[str]) -> AddressZone | None:
    if isinstance(address, list):  # Patient.address arrives as a list; Location's is one
        address = next((a for a in address if isinstance(a, (dict, Mapping))), None)
    if not isinstance(address, (dict, Mapping)):
        return None
    tables = _tables()
    country = _country(address.get("country"), tables, notes)
    state, postal = _state_and_zip(address, tables)

    if country == "?":
        return None
    if country not in (None, "US"):
        if country == "CA":
            return _province(state, tables)
        if country in _US_TERRITORIES:  # written as countries ("Puerto Rico", "PRI")
            return _us_zone(country, None, tables, notes)
        zone = tables.single_zone_countries.get(country)
        if zone is None:
            notes.append("address-country-multizone")
            return None
        return AddressZone(zone, False, frozenset({zone.key}))

    code = tables.state_names.get(_fold(state)) if state else None
    if code is None and state and country is None:
        province = _province(state, tables)
        if province is not None:
            return province
    if code is None and postal is not None:
        code = tables.zip3_state.get(postal[:3])
    if code is None:
        if state or postal:
            notes.append("address-unrecognized")
        return None
    return _us_zone(code, postal, tables, notes)


def _us_zone(code: str, postal: str | None, tables: _Tables, notes: list[str]) -> AddressZone:
    region = tables.states[code]
    if postal is not None and tables.zip3_state.get(postal[:3]) not in (code, None):
        notes.append("address-zip-state-mismatch")
        postal = None
    if postal is not None and tables.zip3_state.get(postal[:3]) == code:
        exact = tables.zip5.get(postal)
        if exact is not None:
            return AddressZone(exact, False, region.zones)
        prefix = tables.zip3.get(postal[:3])
        if prefix is not None:
            return AddressZone(prefix.zone, prefix.mixed, region.zones)
        return AddressZone(region.zone, False, region.zones)
    return AddressZone(region.zone, region.mixed, region.zones)


def _province(state: str | None, tables: _Tables) -> AddressZone | None:
    code = tables.province_names.get(_fold(state)) if state else None
    if code is None:
        return None
    region = tables.provinces[code]
    return AddressZone(region.zone, region.mixed, region.zones)


def _country(value: Any, tables: _Tables, notes: list[str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    code = tables.countries.get(_fold(value))
    if code is None:
        notes.append("address-country-unrecognized")
        return "?"
    return code


def _state_and_zip(address: Mapping[str, Any], tables: _Tables) -> tuple[str | None, str | None]:
    """Structured ``state``/``postalCode`` first; else read them off ``text`` and ``line``."""
    raw_state = address.get("state")
    state = raw_state.strip() or None if isinstance(raw_state, str) else None
    postal: str | None = None
    match = _ZIP.match(str(address.get("postalCode") or ""))
    if match:
        postal = match.group(1)
    if state and postal:
        return state, postal
    for text in _free_text(address):
        found_state, found_zip = _parse_free_text(text, tables)
        state = state or found_state
        postal = postal or found_zip
        if state and postal:
            break
    return state, postal


def _free_text(address: Mapping[str, Any]) -> list[str]:
    texts = []
    if isinstance(address.get("text"), str):
        texts.append(address["text"])
    lines = [line for line in address.get("line") or () if isinstance(line, str)]
    if lines:
        texts.append(", ".join(lines))
    return texts


_COUNTRY_TAIL = re.compile(
    r"[,\s]+(?:USA|U\.S\.A\.?|US|U\.S\.?|United States(?: of America)?)\s*$", re.IGNORECASE
)


def _parse_free_text(text: str, tables: _Tables) -> tuple[str | None, str | None]:
    """``"1200 Wilshire Blvd, Los Angeles, CA 90017"`` -> ``("CA", "90017")``."""
    text = _COUNTRY_TAIL.sub("", text.strip())
    tokens = _TOKENS.findall(text)
    zip_at = max((i for i, t in enumerate(tokens) if t[0].isdigit()), default=None)
    if zip_at is not None:
        postal = tokens[zip_at][:5]
        for width in (3, 2, 1):  # "District of Columbia", "New York", "CA"
            if zip_at - width < 0:
                continue
            candidate = " ".join(tokens[zip_at - width : zip_at])
            if _fold(candidate) in tables.state_names:
                return candidate, postal
        return None, postal
    # No ZIP Code: accept a trailing comma-separated segment that is exactly a state.
    last = text.rsplit(",", 1)[-1].strip() if "," in text else ""
    if last and _fold(last) in tables.state_names:
        return last, None
    return None, None
