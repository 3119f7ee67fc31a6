"""The outcomes page in Chromium: from the patient's panel to the clinic-wide numbers.

Real processes on 127.0.0.1 (the fake EHR, fhir-bridge's API under uvicorn on a migrated
SQLite file) and Debian's Chromium; the page is screenshot to docs/screenshots/outcomes.png.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.store.db import make_engine, make_session_factory
from tests.outcomes.history import seed_large_history
from tests.smart_app.test_browser import (  # noqa: F401  (fixtures)
    SCREENSHOTS,
    _launch_url,
    bridge,
    browser,
    database_url,
)
from tests.support.bridge import BridgeProcesses

pytestmark = pytest.mark.integration


def test_staff_open_how_outreach_is_doing_from_the_panel_in_chromium(
    browser: Browser,  # noqa: F811  (the panel's browser fixtures, imported above)
    ehr: EhrServer,
    bridge: BridgeProcesses,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    engine = make_engine(database_url)
    history = seed_large_history(make_session_factory(engine), datetime.now(UTC))
    engine.dispose()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)

    page.goto(_launch_url(ehr, bridge))
    expect(page).to_have_url(re.compile(r"/smart/.*panel"))
    page.locator("#outcomes-link").click()
    expect(page).to_have_url(re.compile(r"/smart/l/[^/]+/outcomes$"))
    expect(page.locator("h1")).to_have_text("How outreach is doing")
    expect(page.locator("svg.chart")).to_have_count(4)
    expect(page.locator("#measures tbody tr")).to_have_count(3)  # one row per rule
    assert int(page.locator("#kpi-messages").inner_text()) >= 1000
    body = page.locator("body").inner_text()
    assert not [value for value in history.phi if value in body]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "outcomes.png"), full_page=True)

    page.locator("select[name=by]").select_option("location")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#by-title")).to_have_text("By location")
    riverside = page.locator("#measures tbody tr", has_text="Riverside Family Medicine")
    expect(riverside).to_have_count(1)
