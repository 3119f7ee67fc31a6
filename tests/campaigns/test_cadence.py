"""Campaign cadence: the periodic ``run_campaigns`` job (``service.run_due``).

Against the development EHR: two adult patients, one opted in to health tips by SMS. A
weekly tip campaign is approved and its first run started by staff; after that the job
starts each next run when it is due, once, and ends the campaign past its end date.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.campaigns import service
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import EhrServer
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Campaign, PlannedMessage
from rules.consent import opt_in_consent
from tests.campaigns.test_campaigns_end_to_end import DRAFTER, patient
from tests.pipeline.conftest import make_runtime
from tests.support.databases import sqlite_database

MONDAY = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 10:00 in New York
WEEK = timedelta(days=7)
APPROVER = "Practitioner/pr-ben-cole"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
def rt(ehr_server: EhrServer, tmp_path: Path, clock: Clock) -> Iterator[Runtime]:
    ehr_server.reset()
    ehr_server.update(patient("pt-tips", "Rosa", "+16175550111", "es"))
    ehr_server.update(patient("pt-no-tips", "Walter", "+16175550112"))
    ehr_server.create(
        opt_in_consent(
            "Patient/pt-tips", "sms", None, MONDAY - timedelta(days=40), purposes=["health-tips"]
        )
    )
    with sqlite_database(tmp_path) as url:
        runtime = make_runtime(url, tmp_path, ehr_base_url=ehr_server.base_url)
        runtime.clock = clock
        yield runtime
        runtime.ehr.close()
        runtime.engine.dispose()


def weekly_tips(rt: Runtime, ends_at: datetime | None = None) -> str:
    """Approved by a second person, first run started by staff on Monday at 10:00."""
    campaign_id = service.draft(
        rt,
        service.Draft(
            name="Weekly tips",
            kind="health-tips",
            audience=service.audience_of(rt, "adults"),
            by=DRAFTER,
            cadence_days=7,
            ends_at=ends_at,
        ),
    )
    service.approve(rt, campaign_id, APPROVER)
    service.run(rt, campaign_id, enqueue=lambda ids: None)
    return campaign_id


def campaign(rt: Runtime, campaign_id: str) -> Campaign:
    with transaction(rt.sessions) as session:
        row = session.get(Campaign, campaign_id)
        assert row is not None
        session.expunge(row)
        return row


def runs_planned(rt: Runtime) -> list[tuple[int, str, str]]:
    """(run, patient, status) of every campaign message, run by run."""
    with transaction(rt.sessions) as session:
        keys = session.query(PlannedMessage.key, PlannedMessage.status).all()
    found = []
    for key, status in keys:
        _, _, run, ref = key.split("|")
        found.append((int(run), ref, status))
    return sorted(found)


def test_the_next_run_starts_when_the_cadence_comes_round_and_not_before(
    rt: Runtime, clock: Clock
) -> None:
    campaign_id = weekly_tips(rt)
    queued: list[str] = []

    clock.now = MONDAY + timedelta(days=6, hours=23)
    assert service.run_due(rt, enqueue=queued.extend) == []
    clock.now = MONDAY + WEEK + timedelta(minutes=4)  # the job comes a few minutes late
    (result,) = service.run_due(rt, enqueue=queued.extend)

    assert (result.run, result.planned, dict(result.withheld)) == (2, 1, {"opt-in-required": 1})
    assert len(queued) == 1
    assert [(run, ref) for run, ref, _ in runs_planned(rt)] == [
        (1, "Patient/pt-no-tips"),
        (1, "Patient/pt-tips"),
        (2, "Patient/pt-no-tips"),
        (2, "Patient/pt-tips"),
    ]
    # The next run keeps Monday 10:00 however late the job came.
    assert campaign(rt, campaign_id).next_run_at == MONDAY + 2 * WEEK


def test_a_scheduler_that_finds_the_run_started_by_another_plans_nothing(
    rt: Runtime, clock: Clock
) -> None:
    campaign_id = weekly_tips(rt)
    clock.now = MONDAY + WEEK
    search_all = rt.ehr.search_all
    raced: list[list[service.RunResult]] = []

    def other_scheduler_runs_meanwhile(*args: Any, **kwargs: Any) -> Any:
        """The second scheduler's EHR read: the first one starts and plans run 2 now."""
        if not raced:
            raced.append([])
            raced[0] += service.run_due(rt, enqueue=lambda ids: None)
        return search_all(*args, **kwargs)

    rt.ehr.search_all = other_scheduler_runs_meanwhile  # type: ignore[method-assign]
    second = service.run_due(rt, enqueue=lambda ids: None)
    rt.ehr.search_all = search_all  # type: ignore[method-assign]

    assert [r.run for r in raced[0]] == [2]
    assert second == []  # its claim of run 2 lost: nothing planned twice
    assert [run for run, _, _ in runs_planned(rt)].count(2) == 2  # one per patient
    assert campaign(rt, campaign_id).runs == 2
    with pytest.raises(service.RunTaken):
        service.run(rt, campaign_id, enqueue=lambda ids: None, expected_run=2)


def test_a_campaign_past_its_end_date_is_marked_done_and_runs_no_more(
    rt: Runtime, clock: Clock
) -> None:
    campaign_id = weekly_tips(rt, ends_at=MONDAY + timedelta(days=10))
    clock.now = MONDAY + WEEK
    service.run_due(rt, enqueue=lambda ids: None)

    clock.now = MONDAY + timedelta(days=10, minutes=5)
    assert service.run_due(rt, enqueue=lambda ids: None) == []
    clock.now = MONDAY + 2 * WEEK
    assert service.run_due(rt, enqueue=lambda ids: None) == []

    ended = campaign(rt, campaign_id)
    assert (ended.status, ended.runs, ended.next_run_at) == ("done", 2, None)
    assert max(run for run, _, _ in runs_planned(rt)) == 2


def test_the_job_is_on_the_beat_schedule() -> None:
    from fhir_bridge.tasks import TASK_KINDS, celery_config

    schedule = celery_config()["beat_schedule"]
    assert schedule["run-campaigns"]["task"] == "fhir_bridge.run_campaigns"
    assert TASK_KINDS["fhir_bridge.run_campaigns"] == "periodic"
