"""The panel embedded in a chart on another site, in real Chromium: the launch completes in the
cross-site frame over plain HTTP (no cookie needed), the banner names the patient, and two tabs
on two patients never show or act on each other's patient, across reloads and actions.

Chart pages come from the development EHR (``/chart``) at ``http://localhost:<port>``; the
panel is served by fhir-bridge's API under uvicorn at ``http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, FrameLocator, Page, expect, sync_playwright

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import make_engine, make_session_factory, transaction
from fhir_bridge.store.migrate import upgrade
from fhir_bridge.store.models import PlannedMessage
from tests.smart_app.conftest import CLIENT_ID
from tests.smart_app.records import OTHER_PATIENT_ID, PATIENT_ID, PRACTITIONER_ID, seed_messages
from tests.smart_app.test_launch import spanish_patient
from tests.support.bridge import BridgeProcesses

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
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
    ehr.update(spanish_patient())
    processes = BridgeProcesses(
        {
            "FHIR_BRIDGE_DATABASE_URL": database_url,
            "FHIR_BRIDGE_EHR_BASE_URL": ehr.base_url,
            "FHIR_BRIDGE_EHR_STATIC_TOKEN": ehr.static_token,
            "FHIR_BRIDGE_NOTIFICATION_SECRET": "test-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
            "FHIR_BRIDGE_SMART_CLIENT_ID": CLIENT_ID,
            # The chart's origin (another site than the panel's 127.0.0.1) may frame the panel.
            "FHIR_BRIDGE_SMART_FRAME_ANCESTORS": f"'self' http://localhost:{ehr.port}",
            "FHIR_BRIDGE_LOG_LEVEL": "DEBUG",  # access lines are DEBUG; we check what they say
            "FHIR_BRIDGE_DATA_DIR": str(tmp_path / "var"),
        },
        tmp_path,
    )
    try:
        processes.start_api()
        yield processes
    finally:
        processes.stop()


def _open_chart(page: Page, ehr: EhrServer, bridge: BridgeProcesses, patient: str) -> FrameLocator:
    """What staff do: open the patient's chart in the EHR, which embeds the panel."""
    query = urlencode(
        {
            "patient": patient,
            "fhirUser": f"Practitioner/{PRACTITIONER_ID}",
            "app": f"{bridge.base_url}/smart/launch",
        }
    )
    page.goto(f"http://localhost:{ehr.port}/chart?{query}")
    return page.frame_locator("#app")


def _panel_frame_url(page: Page) -> str:
    return next(frame.url for frame in page.frames if "/smart/" in frame.url)


def _status(database_url: str, message_id: str) -> str:
    with transaction(make_session_factory(make_engine(database_url))) as session:
        row = session.get(PlannedMessage, message_id)
        assert row is not None
        return row.status


def test_launch_completes_inside_a_cross_site_chart_frame_with_the_patient_banner(
    browser: Browser, ehr: EhrServer, bridge: BridgeProcesses
) -> None:
    page = browser.new_page()
    page.set_default_timeout(10_000)

    panel = _open_chart(page, ehr, bridge, PATIENT_ID)

    expect(panel.locator("#patient-banner")).to_have_class(re.compile(r"\bfull\b"))
    expect(panel.locator("#banner-name")).to_have_text("Okafor, Mary")
    expect(panel.locator("#banner-dob")).to_have_text("Apr 12, 1968")
    expect(panel.locator("#banner-id")).to_have_text("203713")
    assert re.fullmatch(
        rf"{re.escape(bridge.base_url)}/smart/l/[\w-]{{43}}/panel", _panel_frame_url(page)
    )
    page.close()


def test_the_access_log_shows_the_launch_without_its_codes_state_or_handle(
    browser: Browser, ehr: EhrServer, bridge: BridgeProcesses
) -> None:
    page = browser.new_page()
    panel = _open_chart(page, ehr, bridge, PATIENT_ID)
    expect(panel.locator("#banner-name")).to_have_text("Okafor, Mary", timeout=10_000)
    handle = _panel_frame_url(page).split("/")[5]
    page.close()

    log = "".join(path.read_text() for path in bridge.workdir.glob("api-*.log"))
    assert "/smart/callback?code=…&state=…" in log
    assert "/smart/launch?iss=…&launch=…" in log
    assert "/smart/l/…/panel" in log
    assert handle not in log
    assert not re.search(r"(code|state|launch)=(?!…)", log)


def test_two_tabs_on_two_patients_never_show_or_act_on_the_other_patient(
    browser: Browser, ehr: EhrServer, bridge: BridgeProcesses, database_url: str
) -> None:
    factory = make_session_factory(make_engine(database_url))
    mary = seed_messages(factory, datetime.now(UTC))
    jorge = seed_messages(factory, datetime.now(UTC), patient_id=OTHER_PATIENT_ID)
    context = browser.new_context()
    context.set_default_timeout(10_000)
    tab_mary, tab_jorge = context.new_page(), context.new_page()

    panel_mary = _open_chart(tab_mary, ehr, bridge, PATIENT_ID)
    expect(panel_mary.locator("#banner-name")).to_have_text("Okafor, Mary")
    panel_jorge = _open_chart(tab_jorge, ehr, bridge, OTHER_PATIENT_ID)
    expect(panel_jorge.locator("#banner-name")).to_have_text("Ramírez García, Jorge Luis")

    # Mary's tab, opened before Jorge's launch, reloads and acts on Mary only.
    tab_mary.reload()
    panel_mary = tab_mary.frame_locator("#app")
    expect(panel_mary.locator("#banner-name")).to_have_text("Okafor, Mary")
    panel_mary.locator(f"form[action$='/messages/{mary['planned']}/cancel']").evaluate(
        "form => { form.elements.reason.value = 'patient-request'; form.submit(); }"
    )
    expect(panel_mary.locator("#notice")).to_be_visible()
    expect(panel_mary.locator("#banner-name")).to_have_text("Okafor, Mary")
    assert _status(database_url, mary["planned"]) == "cancelled"
    assert _status(database_url, jorge["planned"]) == "planned"
    expect(panel_mary.locator(f"tr.message[data-message-id='{jorge['planned']}']")).to_have_count(0)

    # Jorge's tab still shows Jorge after Mary's action, and after a reload of its own.
    tab_jorge.reload()
    panel_jorge = tab_jorge.frame_locator("#app")
    expect(panel_jorge.locator("#banner-name")).to_have_text("Ramírez García, Jorge Luis")
    row = panel_jorge.locator(f"tr.message[data-message-id='{jorge['planned']}']")
    expect(row).to_have_attribute("data-status", "planned")
    expect(panel_jorge.locator(f"tr.message[data-message-id='{mary['planned']}']")).to_have_count(0)
    context.close()
