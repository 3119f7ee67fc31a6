"""The staff panel in a real browser: EHR launch → panel → cancel → staff SMS opt-out.

Real processes on 127.0.0.1: the fake EHR (authorize + token), fhir-bridge's API
under uvicorn on a migrated SQLite file, and Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.migrate import upgrade
from fhir_bridge.store.models import LedgerEntry, PlannedMessage
from tests.smart_app.conftest import CLIENT_ID
from tests.smart_app.records import PATIENT_ID, PRACTITIONER_ID, SENT_TEXT, seed_messages
from tests.support.bridge import BridgeProcesses

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
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


def test_staff_launch_review_cancel_and_opt_out_in_chromium(
    browser: Browser, ehr: EhrServer, bridge: BridgeProcesses, database_url: str, tmp_path: Path
) -> None:
    factory = make_session_factory(make_engine(database_url))
    ids = seed_messages(factory, datetime.now(UTC))
    page = browser.new_page()
    page.set_default_timeout(10_000)

    page.goto(_launch_url(ehr, bridge))
    expect(page).to_have_url(f"{bridge.base_url}/smart/panel")
    expect(page.locator("#patient-ref")).to_have_text(f"Patient/{PATIENT_ID}")
    expect(page.locator("tr.message")).to_have_count(3)
    expect(_row(page, ids["sent"]).locator(".badge")).to_have_text("sent")
    expect(_row(page, ids["withheld"]).locator(".badge")).to_have_text("withheld")
    expect(_row(page, ids["withheld"]).locator(".reason")).to_contain_text("opted-out")
    expect(_row(page, ids["planned"]).locator(".badge")).to_have_text("planned")
    expect(page.locator("#timeline")).to_contain_text(SENT_TEXT)

    _row(page, ids["planned"]).get_by_role("button", name="Cancel").click()
    expect(page.locator("#notice")).to_have_text("Message cancelled.")
    expect(_row(page, ids["planned"]).locator(".badge")).to_have_text("cancelled")
    with transaction(factory) as session:
        cancelled = session.get(PlannedMessage, ids["planned"])
        assert cancelled is not None
        assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled-by-staff")

    sms_reminder = page.locator("tr[data-channel='sms'] td[data-purpose='appointment-reminder']")
    expect(sms_reminder).to_have_attribute("data-allowed", "yes")
    page.locator("#opt-out-sms").click()
    expect(page.locator("#notice")).to_have_text("Opt-out recorded.")
    expect(sms_reminder).to_have_attribute("data-allowed", "no")
    expect(sms_reminder).to_contain_text("opted-out")
    with transaction(factory) as session:
        assert session.query(LedgerEntry).filter_by(source="staff", channel="sms").count() == 1

    page.screenshot(path=str(tmp_path / "staff-panel.png"), full_page=True)
    assert (tmp_path / "staff-panel.png").stat().st_size > 0
