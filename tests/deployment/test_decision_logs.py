"""Every outreach decision is one INFO line with ids, rule and times: no names, no numbers.

A clinic's IT person watching the console (or a log collector) sees what was planned,
withheld and why, sent, and written back, without the log ever holding PHI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from fhir_bridge.logging_setup import SafeTextFormatter
from fhir_bridge.outreach.planning import replan_patient
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from rules.engine import plan_for_patient
from rules.model import PatientSnapshot, Plan
from tests.rules.factories import (
    PATIENT_REF,
    appointment,
    encounter,
    english_patient,
    snapshot,
    utc,
)
from tests.support.databases import sqlite_database

NOW = utc("2026-11-28T14:00:00")
PHI = ("Maria", "Gonzalez", "617", "@", "Pneumonia", "Riverside Family Medicine")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with sqlite_database(tmp_path) as url:
        yield Runtime(settings=load_settings(database_url=url, data_dir=tmp_path))


def _replan(rt: Runtime, *resources: dict[str, object]) -> None:
    patient = english_patient()

    def planner(_snapshot: PatientSnapshot, config: object, now: datetime) -> Plan:
        return plan_for_patient(snapshot(*resources, patient_resource=patient), rt.rules, now)

    with transaction(rt.sessions) as session:
        replan_patient(
            session,
            patient_ref=PATIENT_REF,
            patient=patient,
            config=rt.rules,
            now=NOW,
            planner=planner,
        )


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = SafeTextFormatter()
    return [
        formatter.format(r)
        for r in caplog.records
        if r.name.startswith("fhir_bridge") and r.levelno == logging.INFO
    ]


def test_each_planned_reminder_is_one_line_with_its_id_rule_local_time_and_offset(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _replan(runtime, appointment("2026-12-01T15:30:00Z"))
    lines = _lines(caplog)
    pattern = re.compile(
        r"planned message [0-9a-f-]{36} \(appointment-reminder\) for Appointment/\S+ "
        r"at 2026-1\d-\d\dT\d\d:\d\d:\d\d-05:00 \((P3D|P1D|PT2H)\)"
    )
    assert len(lines) == 3 and all(pattern.search(line) for line in lines), lines


def test_a_withheld_check_in_is_one_line_with_its_reason_code(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    died = {
        "dischargeDisposition": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "code": "exp",
                    "display": "Expired",
                }
            ]
        }
    }
    _replan(runtime, encounter(hospitalization=died))
    withheld = [line for line in _lines(caplog) if "withheld message" in line]
    assert len(withheld) == 1
    assert re.search(r"withheld message [0-9a-f-]{36}: discharge-disposition-exp", withheld[0])


def test_decision_lines_hold_no_phi(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _replan(runtime, appointment("2026-12-01T15:30:00Z"), encounter())
    text = "\n".join(_lines(caplog))
    assert text and not [term for term in PHI if term in text]


def test_replanning_the_same_resources_logs_nothing_new(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    _replan(runtime, appointment("2026-12-01T15:30:00Z"))
    caplog.set_level(logging.INFO)
    caplog.clear()
    _replan(runtime, appointment("2026-12-01T15:30:00Z"))
    assert _lines(caplog) == []
