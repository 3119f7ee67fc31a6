"""How a rate is shown: a count under ten cases, a percentage from ten."""

from __future__ import annotations

from fhir_bridge.outcomes.measures import NO_CASES, Rate, ResponseTime


def test_a_rate_over_fewer_than_ten_cases_is_shown_as_a_count() -> None:
    assert Rate(3, 7).text() == "3 of 7"
    assert Rate(3, 7).percent is None


def test_a_rate_over_ten_cases_or_more_is_a_percentage() -> None:
    assert Rate(3, 10).text() == "30.0%"
    assert Rate(1, 3).as_json() == {"numerator": 1, "denominator": 3, "percent": None}
    assert Rate(50, 400).as_json()["percent"] == 12.5


def test_a_rate_with_no_cases_is_a_dash() -> None:
    assert Rate(0, 0).text() == NO_CASES == "\N{EN DASH}"


def test_a_median_response_time_over_few_items_says_how_many() -> None:
    assert ResponseTime(handled=3, still_open=0, median_minutes=48.0).text() == "48 min (n=3)"
    assert ResponseTime(handled=12, still_open=1, median_minutes=150.0).text() == "2.5 h"
    assert ResponseTime(handled=0, still_open=2, median_minutes=None).text() == (
        "none handled (2 open)"
    )
