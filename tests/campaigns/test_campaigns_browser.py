"""Campaigns in the staff panel, in Chromium: draft, refused self-approval, a second
person's approval, and progress as the messages go out.

Real processes on 127.0.0.1: the development EHR (standalone sign-in for two members of
staff), fhir-bridge's API under uvicorn on a migrated SQLite file, a Celery worker
(delivery to the outbox, write-back) and Debian's Chromium; the campaign list is
screenshot to docs/screenshots/campaigns.png.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from fhir_bridge.sandbox import EhrServer
from rules.consent import opt_in_consent
from tests.campaigns.test_campaigns_end_to_end import patient
from tests.smart_app.conftest import ehr, ehr_server  # noqa: F401  (fixtures)
from tests.smart_app.test_browser import (  # noqa: F401  (fixtures)
    SCREENSHOTS,
    bridge,
    browser,
    database_url,
)
from tests.support.bridge import BridgeProcesses

pytestmark = pytest.mark.integration
DRAFTER = "Practitioner/pr-ana-ortiz"
APPROVER = "Practitioner/pr-ben-cole"
SENT_WAIT_SECONDS = 45.0
NAMES = ("Rosa", "Reyes", "Walter", "Miller", "+16175550111", "+16175550112")


def sign_in(chromium: Browser, fhir: EhrServer, api: BridgeProcesses, who: str) -> Page:
    """A standalone launch (the EHR's app list) as ``who``; lands on the clinic view."""
    httpx.post(f"{fhir.admin_url}/standalone-user", json={"fhirUser": who}).raise_for_status()
    page = chromium.new_context(viewport={"width": 1280, "height": 860}).new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{api.base_url}/smart/standalone")
    expect(page).to_have_url(re.compile(r"/smart/l/[^/]+/clinic$"))
    expect(page.locator("#staff-user")).to_have_text(who)
    return page


def wait_for_sent(page: Page, expected: str) -> None:
    """Reload the campaign page until the worker has sent (bounded)."""
    deadline = time.monotonic() + SENT_WAIT_SECONDS
    while page.locator("#kpi-sent").inner_text() != expected:
        assert time.monotonic() < deadline, page.locator("#progress").inner_text()
        time.sleep(0.5)
        page.reload()


def test_a_campaign_is_drafted_approved_by_a_second_person_and_sends_in_chromium(
    browser: Browser,  # noqa: F811  (the panel's browser fixtures, imported above)
    ehr: EhrServer,  # noqa: F811
    bridge: BridgeProcesses,  # noqa: F811
) -> None:
    ehr.update(patient("pt-tips", "Rosa", "+16175550111", "es"))
    ehr.update(patient("pt-no-tips", "Walter", "+16175550112"))
    ehr.create(
        opt_in_consent(
            "Patient/pt-tips",
            "sms",
            None,
            datetime.now(UTC) - timedelta(days=30),
            purposes=["health-tips"],
        )
    )
    bridge.start_worker(beat=False, concurrency=1)

    ana = sign_in(browser, ehr, bridge, DRAFTER)
    ana.locator("#campaigns-link").click()
    expect(ana.locator("h1")).to_have_text("Campaigns and broadcasts")
    expect(ana.locator("#no-campaigns")).to_be_visible()
    ana.get_by_role("button", name="New campaign…").click()
    form = ana.locator("#draft-dialog")
    form.get_by_label("Name").fill("Winter walking tips")
    form.get_by_label("Kind").select_option("health-tips")
    form.get_by_label("Audience (from the rules file)").select_option("adults")
    form.get_by_role("button", name="Save draft").click()

    expect(ana.locator("#notice")).to_contain_text("A second member of staff must approve it")
    expect(ana.locator("#campaign-status")).to_have_attribute("data-status", "draft")
    expect(ana.locator("#audience-count")).to_have_text("3")  # the two above and Mary Okafor
    expect(ana.locator("table[data-breakdown='withheld']")).to_contain_text("opt-in-required")
    expect(ana.locator(".sample[data-language='es'] .sms")).not_to_contain_text("not rendered")
    expect(ana.locator(".sample[data-language='en'] .sms")).to_contain_text("Reply STOP")
    campaign_url = ana.url.split("?")[0]
    campaign_id = campaign_url.rsplit("/", 1)[1]

    ana.get_by_role("button", name="Approve…").click()
    ana.locator("#confirm-approve").get_by_role("button", name="Approve").click()
    expect(ana.locator("#error")).to_contain_text("You drafted this campaign")
    expect(ana.locator("#campaign-status")).to_have_attribute("data-status", "draft")

    ana.locator("#back-link").click()
    ana.get_by_role("button", name="New campaign…").click()
    form.get_by_label("Name").fill("Eastside closed Wednesday (water main)")
    form.get_by_label("Kind").select_option("broadcast")
    form.get_by_label("Message").select_option("closure")
    form.get_by_label("To everyone with an appointment at").fill("Location/loc-eastside")
    form.get_by_label("From (clinic time)").fill("2026-12-02T00:00")
    form.get_by_label("To (clinic time)").fill("2026-12-03T00:00")
    form.get_by_label("The appointments are cancelled").check()
    form.get_by_role("button", name="Save draft").click()
    expect(ana.locator("#campaign-status")).to_have_attribute("data-status", "draft")
    expect(ana.locator("#campaign-name")).to_have_text("Eastside closed Wednesday (water main)")

    ben = sign_in(browser, ehr, bridge, APPROVER)
    ben.locator("#campaigns-link").click()
    ben.locator(f"tr[data-campaign-id='{campaign_id}'] a").click()
    ben.get_by_role("button", name="Approve…").click()
    ben.locator("#confirm-approve").get_by_role("button", name="Approve").click()
    expect(ben.locator("#notice")).to_have_text("Campaign approved. Start it when you are ready.")
    expect(ben.locator("#approved-by")).to_have_text(APPROVER)
    ben.get_by_role("button", name="Start sending…").click()
    ben.locator("#confirm-run").get_by_role("button", name="Start sending").click()
    expect(ben.locator("#notice")).to_contain_text("Sending started")

    wait_for_sent(ben, "1")
    expect(ben.locator("#kpi-withheld")).to_have_text("2")
    expect(ben.locator("#withheld")).to_contain_text("opt-in-required")
    expect(ben.locator("#out-recipients")).to_have_text("1")
    body = ben.locator("body").inner_text()
    assert not [value for value in NAMES if value in body]

    ben.locator("#back-link").click()
    row = ben.locator(f"tr[data-campaign-id='{campaign_id}']")
    expect(row.locator("td.num").nth(1)).to_have_text("1")  # sent
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ben.screenshot(path=str(SCREENSHOTS / "campaigns.png"), full_page=True)
