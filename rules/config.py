"""The one declarative rules file, validated before the service starts.

A typo in a cadence or a template that leaks a variable must stop deployment,
not surface as a wrong SMS at 3 a.m., so everything is checked at load time and
every problem is reported with the YAML line it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from rules.answer_config import StaffAnswersConfig
from rules.audiences import AudienceDefinition, CampaignsConfig
from rules.consent import ConsentPolicy
from rules.privacy import PrivacyPolicy
from rules.timing import InvalidOffsetError, QuietHours, parse_offset, zone_or_none
from rules.yaml_source import RulesFileSyntaxError, load_yaml

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
DEFAULT_TEMPLATE_DIR = Path(__file__).with_name("templates")


class RulesConfigError(ValueError):
    """The rules file is invalid; ``problems`` lists each one as ``FILE:LINE: what``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid rules configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def _check_offset(text: str) -> str:
    try:
        parse_offset(text)
    except InvalidOffsetError as error:
        raise ValueError(str(error)) from error
    return text


def _check_zone(name: str) -> str:
    if zone_or_none(name) is None:
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


OffsetText = Annotated[str, AfterValidator(_check_offset)]
ZoneName = Annotated[str, AfterValidator(_check_zone)]
Channel = Literal["sms", "email"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrganizationConfig(_Section):
    """Who the messages come from; every SMS names the clinic and a callback number."""

    clinic_name: str = Field(min_length=1)
    clinic_phone: str = Field(min_length=3)
    link: str = ""
    timezone: ZoneName = "America/New_York"


class QuietHoursConfig(_Section):
    """The local sending window (inclusive), default 08:00-21:00."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    @model_validator(mode="after")
    def _start_before_end(self) -> QuietHoursConfig:
        if self.start >= self.end:
            raise ValueError("quiet_hours.start must be before quiet_hours.end")
        return self

    def window(self) -> QuietHours:
        """The window as the timing module uses it."""
        return self.sending_window

    @cached_property
    def sending_window(self) -> QuietHours:
        """:meth:`window`, made once (both are immutable; planning asks per message)."""
        return QuietHours(start=self.start, end=self.end)


class CapsConfig(_Section):
    """Messages per patient across all rules, counted in the patient's local days."""

    per_day: int = Field(default=1, ge=0)
    per_week: int = Field(default=3, ge=0)


class LanguagesConfig(_Section):
    """Template languages on offer and the fallback when the patient's is not one."""

    default: str = "en"
    supported: list[str] = Field(default_factory=lambda: ["en", "es"], min_length=1)

    @model_validator(mode="after")
    def _default_is_supported(self) -> LanguagesConfig:
        if self.default not in self.supported:
            raise ValueError(f"languages.default {self.default!r} is not in supported")
        return self


class SmsConfig(_Section):
    """SMS length cap (in segments) and whether replies like C/R are handled.

    One segment (160 GSM-7 characters, 70 UCS-2) by default: the TCPA healthcare
    exemption, 47 CFR 64.1200(a)(9)(iv), covers texts of 160 characters or fewer.
    """

    max_segments: int = Field(default=1, ge=1, le=10)
    two_way: bool = True
    smart_encoding: bool = True


class ChannelsConfig(_Section):
    """Channel preference order handed to consent/contact selection."""

    preferred: list[Channel] = Field(default_factory=lambda: list[Channel](["sms", "email"]))
    sms: SmsConfig = Field(default_factory=SmsConfig)


class CodeMatch(_Section):
    """A coding to match; without ``system`` any system's code matches."""

    system: str | None = None
    code: str


class AppointmentMatch(_Section):
    """Every non-empty criterion must match (any listed value within one criterion)."""

    appointment_type: list[CodeMatch] = Field(default_factory=list)
    service_type: list[CodeMatch] = Field(default_factory=list)
    location: list[str] = Field(default_factory=list)


class CadenceOverride(_Section):
    """A different cadence for matching appointments; the first match wins."""

    match: AppointmentMatch
    offsets: list[OffsetText]
    catch_up: bool | None = None


class AppointmentRulesConfig(_Section):
    """Appointment reminder cadence, catch-up and stop conditions (issue #3.1)."""

    enabled: bool = True
    offsets: list[OffsetText] = Field(default_factory=lambda: ["P3D", "P1D", "PT2H"])
    catch_up: bool = True
    catch_up_min_lead: OffsetText = "PT1H"
    catch_up_min_gap: OffsetText = "PT12H"
    combine_same_day: bool = True
    plan_statuses: list[str] = Field(default_factory=lambda: ["booked"])
    template: str = "appointment-reminder"
    combined_template: str = "appointment-reminder-combined"
    overrides: list[CadenceOverride] = Field(default_factory=list)


class RefillRulesConfig(_Section):
    """Refill notice lead time and wording (issue #3.2)."""

    enabled: bool = True
    notice_before: OffsetText = "P5D"
    send_time: time = time(10, 0)
    template: str = "refill-notice"
    last_fill_template: str = "refill-notice-last-fill"


SensitiveDischargeAction = Literal["generic", "staff-call"]
SHIPPED_SENSITIVE_DISCHARGE: dict[str, SensitiveDischargeAction] = {
    "default": "generic",
    "mental-health": "staff-call",
    "substance-use": "staff-call",
}
_ACTION_STRICTNESS: dict[str, int] = {"generic": 0, "staff-call": 1}


def _over_shipped_discharge_policy(value: object) -> object:
    """A clinic's entries override the shipped ones; unlisted categories keep theirs."""
    if isinstance(value, dict):
        return {**SHIPPED_SENSITIVE_DISCHARGE, **value}
    return value


class DischargeRulesConfig(_Section):
    """Post-discharge check-ins and when to stay silent (issue #3.3).

    ``sensitive`` says what happens after a stay that concerns sensitive care, per
    privacy category (``default`` for any other sensitive stay): ``generic`` sends the
    neutral check-in text; ``staff-call`` sends nothing automated and asks staff, with
    an urgent Task in the EHR, to call the patient instead. Shipped: ``staff-call``
    for mental health (psychiatric admissions, involuntary holds) and substance use.
    """

    enabled: bool = True
    encounter_classes: list[str] = Field(default_factory=lambda: ["IMP", "EMER", "OBSENC", "ACUTE"])
    readmission_classes: list[str] = Field(default_factory=lambda: ["IMP", "ACUTE"])
    offsets: list[OffsetText] = Field(default_factory=lambda: ["P1D", "P3D"])
    send_time: time = time(10, 0)
    suppress_dispositions: list[str] = Field(default_factory=lambda: ["exp", "hosp", "other-hcf"])
    template: str = "discharge-checkin"
    sensitive: Annotated[
        dict[str, SensitiveDischargeAction], BeforeValidator(_over_shipped_discharge_policy)
    ] = Field(default_factory=lambda: dict(SHIPPED_SENSITIVE_DISCHARGE))

    def sensitive_action(self, categories: Sequence[str]) -> tuple[SensitiveDischargeAction, str]:
        """The strictest action over the matched categories, and the entry that chose it.

        A category without an entry, or a sensitive stay without any category (a
        confidentiality code, unreadable data), takes the ``default`` entry.
        """
        default: SensitiveDischargeAction = self.sensitive.get("default", "generic")
        options = [
            (self.sensitive[c], c) if c in self.sensitive else (default, "default")
            for c in categories
        ] or [(default, "default")]
        return max(options, key=lambda option: _ACTION_STRICTNESS[option[0]])


class LocationOverride(_Section):
    """Settings for one ``Location/id`` that beat the organisation-wide ones.

    Place names are default-deny: a message names a place only when it is listed
    here as ``patient_facing`` (its own ``Location.name``) or with a neutral
    ``display_name`` alias; otherwise it names the organisation only. A message
    about sensitive care names a place only when ``safe_for_sensitive`` is set.
    """

    timezone: ZoneName | None = None
    display_name: str | None = None
    patient_facing: bool = False
    safe_for_sensitive: bool = False
    clinic_name: str | None = None
    clinic_phone: str | None = None
    quiet_hours: QuietHoursConfig | None = None
    appointment_offsets: list[OffsetText] | None = None


class TemplatesConfig(_Section):
    """Where the ``{lang}/*.j2`` files live; relative paths are to the rules file."""

    directory: str | None = None


class RulesConfig(_Section):
    """The whole rules file. Unknown keys are errors, so typos cannot hide."""

    version: Literal[1] = 1
    organization: OrganizationConfig
    quiet_hours: QuietHoursConfig = Field(default_factory=QuietHoursConfig)
    caps: CapsConfig = Field(default_factory=CapsConfig)
    languages: LanguagesConfig = Field(default_factory=LanguagesConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    appointment_reminders: AppointmentRulesConfig = Field(default_factory=AppointmentRulesConfig)
    refill_notices: RefillRulesConfig = Field(default_factory=RefillRulesConfig)
    discharge_checkins: DischargeRulesConfig = Field(default_factory=DischargeRulesConfig)
    locations: dict[str, LocationOverride] = Field(default_factory=dict)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    staff_answers: StaffAnswersConfig = Field(default_factory=StaffAnswersConfig)
    audiences: dict[str, AudienceDefinition] = Field(default_factory=dict)
    campaigns: CampaignsConfig = Field(default_factory=CampaignsConfig)
    source_path: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _sensitive_discharge_categories_are_known(self) -> RulesConfig:
        known = self.privacy.known_categories() | {"default"}
        unknown = sorted(set(self.discharge_checkins.sensitive) - known)
        if unknown:
            raise ValueError(
                "discharge_checkins.sensitive names unknown categories: " + ", ".join(unknown)
            )
        return self

    @cached_property
    def template_dir(self) -> Path:
        """The resolved template directory."""
        if self.templates.directory is None:
            return DEFAULT_TEMPLATE_DIR
        directory = Path(self.templates.directory)
        if not directory.is_absolute() and self.source_path:
            directory = Path(self.source_path).parent / directory
        return directory

    def location(self, reference: str | None) -> LocationOverride | None:
        """The override for a location reference (``Location/1`` or an absolute URL)."""
        if not reference:
            return None
        if reference in self.locations:
            return self.locations[reference]
        for key, override in self.locations.items():
            if reference.endswith("/" + key):
                return override
        return None


def _format_location(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def parse_rules_config(text: str, name: str = "<rules>", base: Path | None = None) -> RulesConfig:
    """Validate rules YAML text; raise :class:`RulesConfigError` with line numbers."""
    from rules.templates import check_templates

    try:
        source = load_yaml(text, name)
    except RulesFileSyntaxError as error:
        raise RulesConfigError([str(error)]) from error
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        raise RulesConfigError([f"{name}:1: the rules file must be a mapping"])
    if base is not None:
        data = {**data, "source_path": str(base)}
    try:
        config = RulesConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            location = tuple(item["loc"])
            line = source.line_of(location)
            where = f"{name}:{line}" if line is not None else name
            problems.append(f"{where}: {_format_location(location)}: {item['msg']}")
        raise RulesConfigError(problems) from error
    template_problems = check_templates(config)
    if not template_problems:
        from rules.answers import check_answer_templates

        template_problems = check_answer_templates(config)
    if not template_problems:
        from rules.campaigns import check_campaign_templates

        template_problems = check_campaign_templates(config)
    if template_problems:
        raise RulesConfigError(template_problems)
    return config


# The shipped example clinic: fine for trying fhir-bridge, wrong in any patient's phone.
EXAMPLE_CLINIC_NAME = "Riverside Health"
EXAMPLE_CLINIC_PHONE = "(555) 010-0100"
EXAMPLE_LINK_HOST = "portal.example.org"


def example_values_in_use(config: RulesConfig) -> list[str]:
    """Where the rules still use the shipped example clinic's name, phone or portal link.

    Empty when the file is the clinic's own. Each entry names the setting (its YAML path),
    so a warning or ``doctor`` can say exactly what to edit.
    """
    found = []
    org = config.organization
    if org.clinic_name.strip() == EXAMPLE_CLINIC_NAME:
        found.append("organization.clinic_name")
    if _is_example_phone(org.clinic_phone):
        found.append("organization.clinic_phone")
    if EXAMPLE_LINK_HOST in org.link.lower():
        found.append("organization.link")
    for key, location in config.locations.items():
        if location.clinic_name and location.clinic_name.strip() == EXAMPLE_CLINIC_NAME:
            found.append(f"locations.{key}.clinic_name")
        if location.clinic_phone and _is_example_phone(location.clinic_phone):
            found.append(f"locations.{key}.clinic_phone")
    return found


def _is_example_phone(phone: str) -> bool:
    """``(555) 010-0100`` however written (``555.010.0100``, ``+1 555 010 0100``)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits.removeprefix("1") == "".join(ch for ch in EXAMPLE_CLINIC_PHONE if ch.isdigit())


def load_rules_config(path: str | Path | None) -> RulesConfig:
    """Load and fully validate a rules file; ``None`` means the shipped defaults."""
    file_path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesConfigError([f"{file_path}: cannot read ({error.strerror})"]) from error
    return parse_rules_config(text, name=str(file_path), base=file_path.resolve())
