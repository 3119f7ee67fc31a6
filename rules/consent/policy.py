"""The ``consent:`` section of the rules file: what is allowed when nobody said anything.

Defaults live here rather than in code paths so that compliance staff can read
(and change) in one place which purposes may be sent without explicit consent,
and which need an explicit opt-in because they are promotional.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.answer_config import PURPOSE_CARE_COORDINATION
from rules.consent.codes import (
    CHANNELS,
    OUTREACH_PURPOSE_SYSTEM,
    PURPOSE_HEALTH_TIPS,
    V3_ACT_REASON,
)
from rules.model import (
    PURPOSE_APPOINTMENT_REMINDER,
    PURPOSE_DISCHARGE_CHECKIN,
    PURPOSE_REFILL_NOTICE,
)


class PurposeRule(BaseModel):
    """How one outreach purpose is treated when no Consent or ledger entry decides.

    ``default_channels``: channels on which the purpose is allowed without explicit
    consent (where the law permits, e.g. treatment-related reminders).
    ``promotional``: only an explicit, purpose-specific opt-in allows it; general
    permits ("yes to everything") never do.
    ``codes``: extra ``system|code`` tokens that mean this purpose when they appear
    in ``Consent.provision.purpose`` (the fhir-bridge outreach-purpose code is
    always recognised).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_channels: tuple[str, ...] = ()
    promotional: bool = False
    codes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _promotional_has_no_default(self) -> PurposeRule:
        if self.promotional and self.default_channels:
            raise ValueError("a promotional purpose cannot be allowed by default on any channel")
        unknown = sorted(set(self.default_channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) in default_channels: {unknown}")
        return self


_TREATMENT = f"{V3_ACT_REASON}|TREAT"
_MARKETING = f"{V3_ACT_REASON}|HMARKT"


def _shipped_purposes() -> dict[str, PurposeRule]:
    care_channels = ("sms", "email")
    return {
        PURPOSE_APPOINTMENT_REMINDER: PurposeRule(
            default_channels=care_channels, codes=(_TREATMENT,)
        ),
        PURPOSE_REFILL_NOTICE: PurposeRule(default_channels=care_channels, codes=(_TREATMENT,)),
        PURPOSE_DISCHARGE_CHECKIN: PurposeRule(default_channels=care_channels, codes=(_TREATMENT,)),
        PURPOSE_HEALTH_TIPS: PurposeRule(promotional=True, codes=(_MARKETING,)),
        PURPOSE_CARE_COORDINATION: PurposeRule(default_channels=care_channels, codes=(_TREATMENT,)),
    }


class ConsentPolicy(BaseModel):
    """Consent defaults, channel order, SMS opt-in style and patient protections.

    Unknown purposes and channels are denied: only what is listed here can ever
    be sent. ``purposes`` in the rules file extends the shipped ones; to stop a
    shipped purpose from being sent by default, give it ``default_channels: []``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    purposes: dict[str, PurposeRule] = Field(default_factory=_shipped_purposes)
    channel_order: tuple[str, ...] = ("sms", "email", "voice")
    sms_double_opt_in: bool = False
    default_region: str = "US"
    minor_age: int = Field(default=18, ge=0, le=30)
    message_minors: bool = False
    minor_allowed_purposes: tuple[str, ...] = ()
    consent_scopes: tuple[str, ...] = ("patient-privacy", "treatment")

    @field_validator("purposes", mode="before")
    @classmethod
    def _extend_shipped_purposes(cls, value: Any) -> Any:
        """Configured purposes add to (or replace one by one) the shipped ones."""
        if isinstance(value, dict):
            return {**_shipped_purposes(), **value}
        return value

    @model_validator(mode="after")
    def _channels_are_known(self) -> ConsentPolicy:
        unknown = sorted(set(self.channel_order) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) in channel_order: {unknown}")
        return self

    def rule_for(self, purpose: str) -> PurposeRule | None:
        """The rule for ``purpose``; ``None`` means unknown, which callers must deny."""
        return self.purposes.get(purpose)

    def purposes_for_coding(self, system: str, code: str) -> frozenset[str]:
        """Which configured purposes a ``Consent.provision.purpose`` coding stands for."""
        if system == OUTREACH_PURPOSE_SYSTEM:
            return frozenset({code}) if code in self.purposes else frozenset()
        token = f"{system}|{code}"
        return frozenset(name for name, rule in self.purposes.items() if token in rule.codes)
