"""Rendering: allowlisted variables, SMS footer and segments, languages, email parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.config import RulesConfigError
from rules.sms_length import sms_segments
from rules.templates import (
    DisallowedVariableError,
    MessageTooLongError,
    TemplateRenderError,
    render,
)
from tests.rules.factories import DEFAULT_RULES_PATH, config_with, default_config

VARIABLES = {
    "first_name": "Mari",
    "date": "Tuesday, December 1",
    "time": "10:30 AM",
    "location_name": "Riverside Family Medicine",
    "clinic_name": "Riverside Health",
    "clinic_phone": "(555) 010-0100",
    "link": "https://portal.example.org/visits",
}


def test_sms_names_clinic_and_callback_and_ends_with_opt_out_hint() -> None:
    rendered = render("appointment-reminder", "en", "sms", VARIABLES, default_config())

    assert rendered.text == (
        "Hi Mari, reminder: appointment on Tue Dec 1 at 10:30 AM at "
        "Riverside Family Medicine. Riverside Health (555) 010-0100. Reply STOP to opt out."
    )
    assert rendered.segments == 1


def test_reply_instructions_are_added_when_the_whole_text_still_fits_one_segment() -> None:
    variables = VARIABLES | {"location_name": "Main Clinic"}

    rendered = render("appointment-reminder", "en", "sms", variables, default_config())

    assert rendered.text == (
        "Hi Mari, reminder: appointment on Tue Dec 1 at 10:30 AM at Main Clinic. "
        "Reply C=confirm, R=reschedule. "
        "Riverside Health (555) 010-0100. Reply STOP to opt out."
    )
    assert rendered.segments == 1


def test_reply_instructions_disappear_when_two_way_is_off() -> None:
    config = config_with({"channels": {"sms": {"two_way": False}}})

    rendered = render("appointment-reminder", "en", "sms", VARIABLES, config)

    assert "Reply C" not in rendered.text
    assert rendered.text.endswith("Reply STOP to opt out.")


def test_spanish_template_set_is_used_for_spanish() -> None:
    rendered = render("discharge-checkin", "es", "sms", VARIABLES, default_config())

    assert rendered.language == "es"
    assert rendered.text.startswith("Hola Mari,")
    assert rendered.text.endswith("Responda BAJA para no recibir SMS.")


def test_unsupported_language_falls_back_to_the_default_set() -> None:
    rendered = render("discharge-checkin", "fr", "sms", VARIABLES, default_config())

    assert rendered.language == "en"


def test_email_has_subject_text_and_escaped_html_from_the_same_set() -> None:
    variables = VARIABLES | {"location_name": "Smith & Jones <Annex>"}

    rendered = render("appointment-reminder", "en", "email", variables, default_config())

    assert rendered.subject == "Appointment reminder from Riverside Health"
    assert "Smith & Jones <Annex>" in rendered.text
    assert rendered.html is not None and "Smith &amp; Jones &lt;Annex&gt;" in rendered.html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a" * 160, ("gsm7", 1), id="160-gsm7-is-one"),
        pytest.param("a" * 161, ("gsm7", 2), id="161-gsm7-is-two"),
        pytest.param("[" * 80, ("gsm7", 1), id="extension-chars-count-double"),
        pytest.param("[" * 81, ("gsm7", 2), id="extension-chars-overflow"),
        pytest.param("ó" * 70, ("ucs2", 1), id="70-ucs2-is-one"),
        pytest.param("ó" * 71, ("ucs2", 2), id="71-ucs2-is-two"),
        pytest.param("😀" * 36, ("ucs2", 2), id="emoji-are-two-utf16-units"),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2_limits(text: str, expected: tuple[str, int]) -> None:
    assert sms_segments(text) == expected


def test_accents_outside_gsm7_are_smart_encoded_to_stay_in_gsm7() -> None:
    variables = VARIABLES | {"clinic_name": "Clínica del Río"}

    rendered = render("refill-notice", "es", "sms", variables, default_config())

    assert "Clinica del Rio (555) 010-0100." in rendered.text
    assert sms_segments(rendered.text) == ("gsm7", 1)


def test_sms_that_cannot_fit_even_without_place_and_name_is_refused() -> None:
    ten_times = "8:00 AM, 9:00 AM, 10:00 AM, 11:00 AM, 1:00 PM, 2:00 PM, 3:00 PM and 4:00 PM"

    with pytest.raises(MessageTooLongError):
        render(
            "appointment-reminder-combined",
            "en",
            "sms",
            VARIABLES | {"time": ten_times},
            default_config(),
        )


def test_a_higher_segment_cap_allows_a_longer_sms() -> None:
    config = config_with({"channels": {"sms": {"max_segments": 2}}})
    ten_times = "8:00 AM, 9:00 AM, 10:00 AM, 11:00 AM, 1:00 PM, 2:00 PM, 3:00 PM and 4:00 PM"
    variables = VARIABLES | {"time": ten_times}

    rendered = render("appointment-reminder-combined", "en", "sms", variables, config)

    assert rendered.segments == 2
    assert "Hi Mari," in rendered.text and "Riverside Family Medicine" in rendered.text


def test_caller_cannot_pass_a_variable_outside_the_allowlist() -> None:
    with pytest.raises(DisallowedVariableError):
        render("refill-notice", "en", "sms", VARIABLES | {"medication": "x"}, default_config())


def _template_copy(tmp_path: Path) -> Path:
    source = DEFAULT_RULES_PATH.with_name("templates")
    for path in source.rglob("*.j2"):
        target = tmp_path / "templates" / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path / "templates"


def test_template_using_a_variable_outside_the_allowlist_is_rejected_at_load(
    tmp_path: Path,
) -> None:
    templates = _template_copy(tmp_path)
    (templates / "en" / "refill-notice.sms.j2").write_text("Refill {{ medication_name }} soon.")

    with pytest.raises(RulesConfigError) as caught:
        config_with({"templates": {"directory": str(templates)}})

    assert caught.value.problems[0].startswith(
        "template en/refill-notice.sms.j2: uses variable(s) not in the allowlist: medication_name"
    )


def test_missing_template_part_is_reported_by_name(tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    (templates / "en" / "discharge-checkin-generic.html.j2").unlink()

    with pytest.raises(RulesConfigError) as caught:
        config_with({"templates": {"directory": str(templates)}})

    assert caught.value.problems == ["template en/discharge-checkin-generic.html.j2: missing"]


def test_template_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    (templates / "es" / "refill-notice.sms.j2").write_text("Hola\n{% if first_name %}sin cerrar")

    with pytest.raises(RulesConfigError) as caught:
        config_with({"templates": {"directory": str(templates)}})

    assert caught.value.problems[0].startswith("template es/refill-notice.sms.j2:2: syntax error")


def test_sandbox_blocks_attribute_tricks_even_on_allowed_variables(tmp_path: Path) -> None:
    templates = _template_copy(tmp_path)
    (templates / "en" / "refill-notice.sms.j2").write_text(
        "{{ first_name.__class__.__mro__[1].__subclasses__() }}"
    )
    config = config_with({"templates": {"directory": str(templates)}})

    with pytest.raises(TemplateRenderError):
        render("refill-notice", "en", "sms", VARIABLES, config)
