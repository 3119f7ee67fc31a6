"""The staff panel in a real browser: EHR launch → panel → cancel → answer a reply →
staff SMS opt-out.

Real processes on 127.0.0.1: the fake EHR (authorize + token), fhir-bridge's API
under uvicorn on a migrated SQLite file, a Celery worker (delivery to the outbox and
write-back to the EHR), and Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from channels.outbox import read_outbox
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.migrate import upgrade
from fhir_bridge.store.models import PlannedMessage, StaffInboxItem
from rules.config import DEFAULT_RULES_PATH
from tests.smart_app.conftest import CLIENT_ID
from tests.smart_app.records import (
    CRISIS_TEXT,
    PATIENT_ID,
    PRACTITIONER_ID,
    SENT_TEXT,
    seed_inbox,
    seed_messages,
)
from tests.support.bridge import BridgeProcesses

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CALL_US = "Thank you for your message. Please call us so we can help you."
ANSWER_WAIT_SECONDS = 45.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "./dev test installs Debian's chromium; run it first"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fhir-bridge.db'}"
    upgrade(url)
    return url


def _rules_without_quiet_hours(path: Path) -> Path:
    """The shipped rules, sending at any hour: the test runs whatever the time of day."""
    rules = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rules["quiet_hours"] = {"start": "00:00", "end": "23:59:59"}
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


@pytest.fixture
def bridge(tmp_path: Path, ehr: EhrServer, database_url: str) -> Iterator[BridgeProcesses]:
    processes = BridgeProcesses(
        {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_STATIC_TOKEN": ehr.static_token,
            "FHIR_BRIDGE_NOTIFICATION_SECRET": "test-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
            "FHIR_BRIDGE_SMART_CLIENT_ID": CLIENT_ID,
            "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"),
            "FHIR_BRIDGE_RULES_FILE": str(_rules_without_quiet_hours(tmp_path / "rules.yaml")),
        },
        tmp_path,
    )
    try:
        processes.start_api()
        yield processes
    finally:
        processes.stop()


def _launch_url(ehr: EhrServer, bridge: BridgeProcesses) -> str:
    """What the EHR opens when staff click the app in the chart."""
    launch = httpx.post(
        f"{ehr.admin_url}/launch",
        json={"patient": PATIENT_ID, "fhirUser": f"Practitioner/{PRACTITIONER_ID}"},
    ).json()["launch"]
    return f"{bridge.base_url}/smart/launch?{urlencode({'iss': ehr.base_url, 'launch': launch})}"


def _row(page: Page, message_id: str) -> Locator:
    return page.locator(f"tr.message[data-message-id='{message_id}']")


def _answer_settled(factory: Any) -> PlannedMessage:
    """The staff answer once sent and written to the EHR (bounded wait for the worker)."""
    deadline = time.monotonic() + ANSWER_WAIT_SECONDS
    while True:
        with transaction(factory) as session:
            row = session.query(PlannedMessage).filter(PlannedMessage.rule == "staff-answer").one()
            session.expunge(row)
        if (row.status, row.communication_status) == ("sent", "written"):
            return row
        assert time.monotonic() < deadline, (row.status, row.communication_status)
        time.sleep(0.2)


def _inbound_id(factory: Any) -> int:
    with transaction(factory) as session:
        item = session.query(StaffInboxItem).filter(StaffInboxItem.kind == "message").one()
        return item.inbound_id


def _consents_by_staff(ehr: EhrServer) -> list[dict[str, Any]]:
    bundle = ehr.search("Consent", patient=f"Patient/{PATIENT_ID}")
    return [e["resource"] for e in bundle.get("entry") or [] if e["resource"].get("performer")]


def test_staff_launch_review_cancel_and_opt_out_in_chromium(
    browser: Browser, ehr: EhrServer, bridge: BridgeProcesses, database_url: str
) -> None:
    factory = make_session_factory(make_engine(database_url))
    ids = seed_messages(factory, datetime.now(UTC))
    inbox = seed_inbox(factory, datetime.now(UTC))
    bridge.start_worker(beat=False, concurrency=1)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(10_000)

    page.goto(_launch_url(ehr, bridge))
    expect(page).to_have_url(re.compile(r"/smart/.*panel"))
    expect(page.locator("#patient-ref")).to_have_text(f"Patient/{PATIENT_ID}")
    expect(page.locator("tr.message")).to_have_count(3)
    expect(_row(page, ids["sent"]).locator(".badge")).to_have_text("Sent")
    expect(_row(page, ids["withheld"]).locator(".badge")).to_have_text("Not sent")
    expect(_row(page, ids["withheld"]).locator(".reason")).to_have_text("Patient opted out")
    expect(_row(page, ids["planned"]).locator(".about")).to_contain_text("Appointment")
    expect(page.locator("#timeline")).to_contain_text(SENT_TEXT)
    expect(page.locator("#crisis-alert")).to_be_visible()
    expect(page.locator("li.reply").first).to_contain_text(CRISIS_TEXT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "panel.png"), full_page=True)

    _row(page, ids["planned"]).get_by_role("button", name="Cancel…").click()
    dialog = page.locator(f"#cancel-{ids['planned']}")
    dialog.get_by_label("Reason").select_option("wrong-details")
    dialog.get_by_role("button", name="Cancel message").click()
    expect(page.locator("#notice")).to_have_text("Message cancelled.")
    expect(_row(page, ids["planned"]).locator(".badge")).to_have_text("Cancelled")
    with transaction(factory) as session:
        cancelled = session.get(PlannedMessage, ids["planned"])
        assert cancelled is not None
        assert (cancelled.reason, cancelled.communication_status) == (
            "cancelled-by-staff",
            "written",
        )
    communication = ehr.read("Communication", str(cancelled.communication_id))
    assert communication["status"] == "not-done"

    reply = page.locator("li.reply[data-kind='message']")
    reply.get_by_role("button", name="Reply…").click()
    dialog = page.locator(f"#answer-{inbox['message']}")
    expect(dialog).to_contain_text("The patient reads it in English")
    dialog.get_by_role("radio", name=re.compile("Please call us")).check()
    page.screenshot(path=str(SCREENSHOTS / "panel-answer.png"))
    dialog.get_by_role("button", name="Send answer").click()
    expect(page.locator("#notice")).to_contain_text("Answer sent to the patient by text")
    answer = _answer_settled(factory)
    (texted,) = read_outbox(bridge.workdir / "var" / "outbox" / "sms.jsonl")
    assert texted["text"].startswith(CALL_US)
    answered = ehr.read("Communication", str(answer.communication_id))
    assert answered["inResponseTo"] == [{"reference": f"Communication/in-{_inbound_id(factory)}"}]
    assert answered["payload"] == [{"contentString": texted["text"]}]
    page.reload()
    expect(page.locator("li.reply[data-kind='message'] .answer-note")).to_contain_text(
        "Answered with \u201cPlease call us\u201d \u00b7 Sent"
    )

    sms_reminder = page.locator("tr[data-channel='sms'] td[data-purpose='appointment-reminder']")
    expect(sms_reminder).to_have_attribute("data-allowed", "yes")
    page.locator("#opt-out-sms").click()
    dialog = page.locator("#dialog-opt-out-sms")
    dialog.get_by_label("Reason").select_option("patient-request-phone")
    page.screenshot(path=str(SCREENSHOTS / "panel-opt-out.png"))
    dialog.get_by_role("button", name="Record opt out").click()
    expect(page.locator("#notice")).to_have_text("Opt-out recorded.")
    expect(sms_reminder).to_have_attribute("data-allowed", "no")
    expect(sms_reminder).to_have_attribute("data-source", "staff")
    (consent,) = _consents_by_staff(ehr)
    assert consent["performer"] == [{"reference": f"Practitioner/{PRACTITIONER_ID}"}]

    crisis = page.locator("li.reply[data-kind='crisis']")
    crisis.get_by_role("button", name="Assign").click()
    expect(page.locator("li.reply[data-kind='crisis'] .assigned")).to_have_text("You")
    page.locator("li.reply[data-kind='crisis']").get_by_role("button", name="Mark handled").click()
    expect(page.locator("#crisis-alert")).to_have_count(0)
    page.locator("#inbox-section").screenshot(path=str(SCREENSHOTS / "panel-inbox.png"))
