"""``fhir-bridge report`` as a clinic manager runs it, in a folder holding a small history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_bridge.store.db import make_engine, make_session_factory
from tests.outcomes.history import History
from tests.outcomes.small_history import seed_small_history
from tests.support.databases import sqlite_database


def fhir_bridge(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "fhir_bridge", *args],
        cwd=folder,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, History]:
    """A data folder (``var/``) whose database holds the hand-counted history."""
    (tmp_path / "var").mkdir(mode=0o700)
    with sqlite_database(tmp_path / "var") as url:
        engine = make_engine(url)
        history = seed_small_history(make_session_factory(engine))
        engine.dispose()
    return tmp_path, history


def test_report_by_week_prints_one_row_per_week_and_the_total(
    clinic: tuple[Path, History],
) -> None:
    folder, history = clinic
    result = fhir_bridge(folder, "report", "--since", "2026-11-02", "--until", "2026-11-16")
    assert result.returncode == 0, result.stderr
    title, table, *_ = result.stdout.split("\n\n")
    assert title == "How outreach is doing, 2026-11-02 to 2026-11-16 (UTC), by week"
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line[0] != "-"}
    assert rows["2026-W45"].split()[1:5] == ["3", "2", "1", "0"]
    assert rows["2026-W46"].split()[1:5] == ["5", "3", "1", "1"]
    assert rows["All"].split()[1:5] == ["8", "5", "2", "1"]
    assert "1 of 4" in rows["All"]  # confirmations: a small count, not "25.0%"
    assert "%" not in rows["All"]
    assert not [value for value in history.phi if value in result.stdout]


def test_report_shows_withheld_reasons_and_no_shows_by_location(
    clinic: tuple[Path, History],
) -> None:
    folder, _ = clinic
    result = fhir_bridge(folder, "report", "--since", "2026-11-02", "--by", "location")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Withheld, by reason" in text and "opted-out" in text
    assert "Riverside Family Medicine (Location/e4W4rmGe9QzuGm2Dy4NBqVc0)" in text
    no_shows = text[text.index("No-shows") :].splitlines()
    assert [line.split()[1:] for line in no_shows if line.startswith("All")] == [
        ["1", "of", "4", "2", "of", "3"]
    ]


def test_report_json_is_the_measures_for_scripts(clinic: tuple[Path, History]) -> None:
    folder, _ = clinic
    result = fhir_bridge(folder, "report", "--since", "2026-11-02", "--by", "rule", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["by"] == "rule" and report["small_count"] == 10
    assert report["total"]["confirmation_rate"] == {
        "numerator": 1,
        "denominator": 4,
        "percent": None,
    }
    assert [g["key"] for g in report["groups"]] == [
        "appointment-reminder",
        "discharge-checkin",
        "refill-notice",
    ]


def test_a_malformed_date_is_one_line_naming_the_option(tmp_path: Path) -> None:
    result = fhir_bridge(tmp_path, "report", "--since", "last tuesday")
    assert result.returncode == 2
    assert "--since" in result.stderr and "YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.stderr
