"""How long a MedicationRequest's supply lasts, from dispenseRequest or dosage timing.

EHRs fill these fields very unevenly: some send ``expectedSupplyDuration``, some
only a quantity and a sig. Each estimate records which fields it used, and any
doubt (as-needed dosing, mismatched units) yields "unknown" rather than a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DAYS_PER_UNIT = {
    "s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0,
    "second": 1 / 86400, "seconds": 1 / 86400, "minute": 1 / 1440, "minutes": 1 / 1440,
    "hour": 1 / 24, "hours": 1 / 24, "day": 1.0, "days": 1.0, "week": 7.0, "weeks": 7.0,
    "month": 30.0, "months": 30.0, "year": 365.0, "years": 365.0,
}  # fmt: skip
_DOSES_PER_DAY_BY_CODE = {
    "QD": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0, "QOD": 0.5, "AM": 1.0, "PM": 1.0,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "Q12H": 2.0, "WK": 1 / 7, "MO": 1 / 30,
}  # fmt: skip


@dataclass
class SupplyEstimate:
    """Days covered by the first fill and by each repeat, with the fields used."""

    initial_days: float | None
    repeat_days: float | None
    sources: dict[str, str] = field(default_factory=dict)


def duration_days(duration: Any) -> float | None:
    """A FHIR Duration in days (UCUM ``code`` preferred over free-text ``unit``)."""
    if not isinstance(duration, Mapping) or not isinstance(duration.get("value"), int | float):
        return None
    unit = str(duration.get("code") or duration.get("unit") or "").lower()
    factor = _DAYS_PER_UNIT.get(unit)
    return float(duration["value"]) * factor if factor and duration["value"] > 0 else None


def _unit(quantity: Mapping[str, Any]) -> str:
    text = str(quantity.get("code") or quantity.get("unit") or "").strip().lower()
    return text.strip("{}").removesuffix("s")


def _amount(quantity: Any) -> tuple[float, str] | None:
    if not isinstance(quantity, Mapping) or not isinstance(quantity.get("value"), int | float):
        return None
    value = float(quantity["value"])
    return (value, _unit(quantity)) if value > 0 else None


def _doses_per_day(timing: Any) -> float | None:
    if not isinstance(timing, Mapping):
        return None
    repeat = timing.get("repeat")
    if isinstance(repeat, Mapping):
        per_day_unit = _DAYS_PER_UNIT.get(str(repeat.get("periodUnit", "")))
        period = repeat.get("period")
        if per_day_unit and isinstance(period, int | float) and period > 0:
            return float(repeat.get("frequency") or 1) / (period * per_day_unit)
        times = len(repeat.get("when") or ()) or len(repeat.get("timeOfDay") or ())
        if times:
            return float(times)
    for _system, code in sorted(
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in (timing.get("code") or {}).get("coding") or ()
    ):
        if code.upper() in _DOSES_PER_DAY_BY_CODE:
            return _DOSES_PER_DAY_BY_CODE[code.upper()]
    return None


def daily_dose(request: Mapping[str, Any]) -> tuple[float, str] | None:
    """Units taken per day across the first-sequence dosage instructions, if knowable."""
    instructions = [d for d in request.get("dosageInstruction") or () if isinstance(d, Mapping)]
    if not instructions:
        return None
    first_sequence = min((d.get("sequence", 1) for d in instructions), default=1)
    total, unit = 0.0, None
    for instruction in instructions:
        if instruction.get("sequence", 1) != first_sequence:
            continue
        if instruction.get("asNeededBoolean") or instruction.get("asNeededCodeableConcept"):
            return None
        dose_and_rate = (instruction.get("doseAndRate") or [{}])[0]
        dose = _amount(dose_and_rate.get("doseQuantity")) or _amount(
            (dose_and_rate.get("doseRange") or {}).get("high")
        )
        per_day = _doses_per_day(instruction.get("timing"))
        if dose is None or per_day is None or (unit is not None and dose[1] != unit):
            return None
        total += dose[0] * per_day
        unit = dose[1]
    return (total, unit or "") if total > 0 else None


def _days_from_quantity(quantity: Any, dose: tuple[float, str] | None) -> float | None:
    amount = _amount(quantity)
    if amount is None or dose is None:
        return None
    if amount[1] and dose[1] and amount[1] != dose[1]:
        return None
    return amount[0] / dose[0]


def estimate_supply(request: Mapping[str, Any]) -> SupplyEstimate:
    """Days of supply for the initial fill and each repeat of a MedicationRequest."""
    dispense = request.get("dispenseRequest") or {}
    initial_fill = dispense.get("initialFill") or {}
    expected = duration_days(dispense.get("expectedSupplyDuration"))
    dose = daily_dose(request)
    estimate = SupplyEstimate(initial_days=None, repeat_days=None)

    repeat_candidates = [
        ("dispenseRequest.expectedSupplyDuration", expected),
        (
            "dispenseRequest.quantity/dosageInstruction",
            _days_from_quantity(dispense.get("quantity"), dose),
        ),
    ]
    for source, days in repeat_candidates:
        if days is not None:
            estimate.repeat_days, estimate.sources["repeat"] = days, source
            break
    initial_candidates = [
        ("dispenseRequest.initialFill.duration", duration_days(initial_fill.get("duration"))),
        (
            "dispenseRequest.initialFill.quantity/dosageInstruction",
            _days_from_quantity(initial_fill.get("quantity"), dose),
        ),
        (estimate.sources.get("repeat", ""), estimate.repeat_days),
    ]
    for source, days in initial_candidates:
        if days is not None:
            estimate.initial_days, estimate.sources["initial"] = days, source
            break
    if dose is not None:
        estimate.sources["daily_dose"] = f"{dose[0]:g} {dose[1]}".strip()
    return estimate
