"""The fake EHR's ``latency`` chaos option: answers as slowly as a real EHR would."""

from __future__ import annotations

import pytest

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.process import EhrRequestError

from .samples import patient


def test_a_slow_ehr_still_answers_reads_and_reports_its_latency(ehr: EhrServer) -> None:
    ehr.set_chaos(latency=0.02)
    created = ehr.create(patient("E7731"))

    assert ehr.read("Patient", created["id"])["name"] == created["name"]
    assert ehr.stats()["chaos"]["latency"] == 0.02


def test_a_reset_makes_the_ehr_answer_at_full_speed_again(ehr: EhrServer) -> None:
    ehr.set_chaos(latency=0.02)
    ehr.reset()

    assert ehr.stats()["chaos"]["latency"] == 0


def test_a_negative_latency_is_refused_with_an_operation_outcome(ehr: EhrServer) -> None:
    with pytest.raises(EhrRequestError) as refused:
        ehr.set_chaos(latency=-1)

    assert refused.value.status_code == 400
    assert refused.value.outcome["resourceType"] == "OperationOutcome"
