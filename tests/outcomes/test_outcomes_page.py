"""The staff panel's "How outreach is doing" page: a staff session, clinic-wide, no patient."""

from __future__ import annotations

import re

from tests.outcomes.history import seed_large_history
from tests.smart_app.conftest import NOW, PanelApp


def test_the_page_shows_the_measures_with_four_svg_charts_and_names_no_patient(
    panel: PanelApp,
) -> None:
    history = seed_large_history(panel.sessions, NOW)
    panel.sign_in()
    response = panel.client.get(panel.url("/outcomes"))
    assert response.status_code == 200
    page = response.text
    assert "How outreach is doing" in page
    assert len(re.findall(r"<svg [^>]*role=\"img\"", page)) == 4
    assert 'id="kpi-messages">' in page and '<table class="measures" id="measures">' in page
    assert not [value for value in history.phi if value in page]
    assert "Patient/" not in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_the_table_groups_by_the_chosen_dimension(panel: PanelApp) -> None:
    seed_large_history(panel.sessions, NOW)
    panel.sign_in()
    page = panel.client.get(panel.url("/outcomes?weeks=4&by=language")).text
    assert re.findall(r'<tr data-key="([^"]+)">', page) == ["en", "es"]
    assert 'option value="4" selected' in page


def test_the_panel_links_to_the_page(panel: PanelApp) -> None:
    panel.sign_in()
    page = panel.client.get(panel.url("/panel")).text
    assert f'href="{panel.base}/outcomes"' in page


def test_without_a_session_the_page_is_refused(panel: PanelApp) -> None:
    response = panel.client.get("/smart/l/not-a-launch-handle-0123456789abcdef/outcomes")
    assert response.status_code in (401, 403)
    assert "How outreach is doing" not in response.text
