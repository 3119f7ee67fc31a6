"""Every SMS fits one segment (TCPA healthcare exemption: 160 characters or fewer).

Each shipped SMS template, in English and Spanish, with and without the two-way
hint, is rendered at realistic values (a 12-letter first name, a 20-character
place, a 25-character clinic name, the longest date and two same-day times) and
at the longest values ``rules check`` allows; the text must be one GSM-7 segment
that still names the clinic with its callback number and ends with the opt-out.
"""

from __future__ import annotations

import argparse
from datetime import date, time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.cli import register
from rules.config import DEFAULT_TEMPLATE_DIR, RulesConfig, RulesConfigError
from rules.formatting import format_date, format_time, join_words
from rules.sms_length import gsm7_variable, sms_segments
from rules.templates import (
    SMS_VARIABLE_LIMITS,
    check_templates,
    longest_sms_variables,
    render,
)
from tests.rules.factories import DEFAULT_RULES_PATH, config_with, default_config

OPT_OUT = {"en": "Reply STOP to opt out.", "es": "Responda BAJA para no recibir SMS."}
SHIPPED_SMS = sorted(
    (path.parent.name, path.name.removesuffix(".sms.j2"))
    for path in DEFAULT_TEMPLATE_DIR.glob("*/*.sms.j2")
    # staff answers and campaign messages never greet by name: tests/rules/
    # test_staff_answers.py and tests/campaigns/test_campaign_rules.py check them
    if not path.name.startswith(("_", "staff-answer-", "tip-", "broadcast-"))
)
LONGEST_DAY = date(2026, 9, 30)  # "Wednesday, September 30" / "miércoles 30 de septiembre"
PHONE = "(555) 010-0100"


def _times(language: str, template: str) -> str:
    """``10:30 AM`` or, for a combined message, ``10:30 AM and 2:15 PM``."""
    times = [format_time(time(10, 30), language), format_time(time(14, 15), language)]
    return join_words(times if "combined" in template else times[:1], language)


def _realistic(language: str, template: str, **changes: str) -> dict[str, str]:
    """Values as planning stores them: the long date, real names, the org's link."""
    return {
        "first_name": "Christabella",
        "location_name": "Eastside Family Care",
        "date": format_date(LONGEST_DAY, language),
        "time": _times(language, template),
        "clinic_name": "Riverside Health",
        "clinic_phone": PHONE,
        "link": "https://portal.example.org/visits",
    } | changes


def _two_way(enabled: bool) -> RulesConfig:
    return CONFIGS[enabled]


CONFIGS = {
    True: default_config(),
    False: config_with({"channels": {"sms": {"two_way": False}}}),
}


def _assert_one_lawful_segment(text: str, language: str, clinic: str) -> None:
    assert sms_segments(text) == ("gsm7", 1)
    assert len(text) <= 160
    assert f"{clinic} {PHONE}." in text
    assert text.endswith(OPT_OUT[language])


def test_every_shipped_language_has_sms_templates_to_check() -> None:
    assert {language for language, _ in SHIPPED_SMS} == {"en", "es"}
    assert len(SHIPPED_SMS) == 20


@pytest.mark.parametrize("two_way", [True, False], ids=["two-way", "one-way"])
@pytest.mark.parametrize(("language", "template"), SHIPPED_SMS)
def test_realistic_values_fit_one_segment_without_leaving_anything_out(
    language: str, template: str, two_way: bool
) -> None:
    variables = _realistic(language, template)

    rendered = render(template, language, "sms", variables, _two_way(two_way))

    _assert_one_lawful_segment(rendered.text, language, "Riverside Health")
    assert rendered.text.startswith(("Hi Christabella,", "Hola Christabella,"))
    if "appointment" in template:
        assert "Eastside Family Care" in rendered.text


@pytest.mark.parametrize("two_way", [True, False], ids=["two-way", "one-way"])
@pytest.mark.parametrize(("language", "template"), SHIPPED_SMS)
def test_a_25_character_clinic_name_still_fits_one_segment(
    language: str, template: str, two_way: bool
) -> None:
    clinic = "Lakeshore Family Medicine"
    variables = _realistic(language, template, clinic_name=clinic)

    rendered = render(template, language, "sms", variables, _two_way(two_way))

    _assert_one_lawful_segment(rendered.text, language, clinic)


@pytest.mark.parametrize("two_way", [True, False], ids=["two-way", "one-way"])
@pytest.mark.parametrize(("language", "template"), SHIPPED_SMS)
def test_the_longest_allowed_values_fit_one_segment_with_nothing_left_out(
    language: str, template: str, two_way: bool
) -> None:
    config = _two_way(two_way)
    variables = longest_sms_variables(config, language, template)

    rendered = render(template, language, "sms", variables, config)

    _assert_one_lawful_segment(rendered.text, language, "Riverside Health")
    assert "M" * SMS_VARIABLE_LIMITS["first_name"] in rendered.text
    if "appointment" in template:
        assert "W" * SMS_VARIABLE_LIMITS["location_name"] in rendered.text


def test_the_shipped_rules_and_templates_pass_the_length_check() -> None:
    assert check_templates(default_config()) == []


def test_sms_shows_the_short_date_while_email_keeps_the_long_one() -> None:
    variables = _realistic("es", "appointment-reminder")

    sms = render("appointment-reminder", "es", "sms", variables, default_config())
    email = render("appointment-reminder", "es", "email", variables, default_config())

    assert "el mié 30 sep a las 10:30" in sms.text
    assert "miércoles 30 de septiembre" in email.text


def test_place_is_left_out_before_the_first_name() -> None:
    variables = _realistic(
        "es",
        "appointment-reminder-combined",
        clinic_name="Lakeshore Family Medicine",
        time="9:00, 10:30 y 14:15",
    )

    rendered = render("appointment-reminder-combined", "es", "sms", variables, default_config())

    assert rendered.text == (
        "Hola Christabella, citas el mié 30 sep a las 9:00, 10:30 y 14:15. "
        "Lakeshore Family Medicine (555) 010-0100. Responda BAJA para no recibir SMS."
    )


def test_first_name_is_left_out_when_dropping_the_place_is_not_enough() -> None:
    variables = _realistic("es", "refill-notice", clinic_name="Lakeshore Family Medicine")

    rendered = render("refill-notice", "es", "sms", variables, default_config())

    assert rendered.text == (
        "Hola, pida su receta antes del mié 30 sep: https://portal.example.org/visits "
        "Lakeshore Family Medicine (555) 010-0100. Responda BAJA para no recibir SMS."
    )


def test_a_name_over_its_limit_goes_before_a_place_within_its_limit() -> None:
    variables = _realistic(
        "en",
        "appointment-reminder-combined",
        first_name="Bartholomew-Alexander",
        location_name="Eastside Family Care",
        clinic_name="Lakeshore Community Medical Grp",
        time="9:00 AM, 10:30 AM and 2:15 PM",
    )

    rendered = render("appointment-reminder-combined", "en", "sms", variables, default_config())

    assert rendered.text == (
        "Hi, appointments on Wed Sep 30 at 9:00 AM, 10:30 AM and 2:15 PM at Eastside Family "
        "Care. Lakeshore Community Medical Grp (555) 010-0100. Reply STOP to opt out."
    )


def test_a_long_name_is_kept_when_the_message_has_room_for_it() -> None:
    variables = _realistic("en", "discharge-checkin", first_name="Bartholomew-Alexander")

    rendered = render("discharge-checkin", "en", "sms", variables, default_config())

    assert rendered.text.startswith("Hi Bartholomew-Alexander, checking in")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        pytest.param("Zoë", "Hi Zoe,", id="diaeresis-outside-gsm7"),
        pytest.param("Nguyễn", "Hi Nguyen,", id="vietnamese"),
        pytest.param("José", "Hi José,", id="e-acute-is-gsm7"),
        pytest.param("Begoña", "Hi Begoña,", id="enye-is-gsm7"),
        pytest.param("María", "Hi Maria,", id="i-acute-outside-gsm7"),
        pytest.param("Ana 🌸", "Hi Ana,", id="emoji-removed"),
        pytest.param("\U0001f469\u200d\u2695\ufe0f", "Hi,", id="only-emoji"),
    ],
)
def test_names_outside_gsm7_are_transliterated_before_they_force_ucs2(
    name: str, shown: str
) -> None:
    variables = _realistic("en", "appointment-reminder", first_name=name)

    rendered = render("appointment-reminder", "en", "sms", variables, default_config())

    assert rendered.text.startswith(shown)
    assert sms_segments(rendered.text) == ("gsm7", 1)


def test_place_names_outside_gsm7_are_transliterated_too() -> None:
    variables = _realistic("es", "appointment-reminder", location_name="Clínica Nuñez Ōta")

    rendered = render("appointment-reminder", "es", "sms", variables, default_config())

    assert " en Clinica Nuñez Ota." in rendered.text
    assert sms_segments(rendered.text) == ("gsm7", 1)


def _copy_templates(tmp_path: Path) -> Path:
    for path in DEFAULT_TEMPLATE_DIR.rglob("*.j2"):
        target = tmp_path / "templates" / path.relative_to(DEFAULT_TEMPLATE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path / "templates"


OLD_SPANISH_REMINDER = (
    "Hola {{ first_name }}, recordatorio: su cita es el {{ date }} a las {{ time }}"
    "{% if location_name %} en {{ location_name }}{% endif %}."
)


def test_rules_check_names_a_template_that_can_exceed_one_segment(tmp_path: Path) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "es" / "appointment-reminder.sms.j2").write_text(OLD_SPANISH_REMINDER)

    with pytest.raises(RulesConfigError) as caught:
        config_with({"templates": {"directory": str(templates)}})

    assert caught.value.problems == [
        "template es/appointment-reminder.sms.j2: 162 characters at the longest values, "
        "over the 160 allowed"
    ]


def test_rules_check_counts_a_template_outside_gsm7_against_the_ucs2_limit(
    tmp_path: Path,
) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "en" / "discharge-checkin-generic.sms.j2").write_text("Hi, checking in ✓")

    with pytest.raises(RulesConfigError) as caught:
        config_with(
            {
                "templates": {"directory": str(templates)},
                "channels": {"sms": {"smart_encoding": False}},
            }
        )

    assert caught.value.problems == [
        "template en/discharge-checkin-generic.sms.j2: 73 characters at the longest values, "
        "over the 70 allowed (UCS-2: it has characters outside GSM-7)"
    ]


def test_rules_check_uses_the_longest_clinic_name_of_any_location_override() -> None:
    pavilion = {
        "clinic_name": "Riverside Health Lakeshore Pavilion",
        "clinic_phone": "(555) 010-0199",
    }

    with pytest.raises(RulesConfigError) as caught:
        config_with({"locations": {"Location/lakeshore": pavilion}})

    assert "template en/refill-notice.sms.j2: 169 characters at the longest values, " in (
        "\n".join(caught.value.problems)
    )
    assert all("at the longest values, over the 160 allowed" in p for p in caught.value.problems)


def test_rules_check_accepts_longer_templates_when_more_segments_are_allowed(
    tmp_path: Path,
) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "es" / "appointment-reminder.sms.j2").write_text(OLD_SPANISH_REMINDER)

    config = config_with(
        {"templates": {"directory": str(templates)}, "channels": {"sms": {"max_segments": 2}}}
    )

    assert config.channels.sms.max_segments == 2


def test_one_segment_is_the_default_cap() -> None:
    assert default_config().channels.sms.max_segments == 1
    assert (
        RulesConfig.model_validate(
            {"organization": {"clinic_name": "Riverside Health", "clinic_phone": PHONE}}
        ).channels.sms.max_segments
        == 1
    )


def test_cli_rules_check_prints_the_template_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = _copy_templates(tmp_path)
    (templates / "es" / "appointment-reminder.sms.j2").write_text(OLD_SPANISH_REMINDER)
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    data["templates"] = {"directory": "templates"}
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    parser = argparse.ArgumentParser(prog="fhir-bridge")
    register(parser.add_subparsers())
    args = parser.parse_args(["rules", "check", str(rules_file)])

    assert args.func(args) == 1
    assert capsys.readouterr().err == (
        "template es/appointment-reminder.sms.j2: 162 characters at the longest values, "
        "over the 160 allowed\n"
    )


# Property: whatever the EHR sends as a name or place, the SMS is one GSM-7 segment
# that names the clinic and ends with the opt-out, and a variable is shown whole or
# not at all (never cut).

NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30
) | st.sampled_from(["Zoë", "Nguyễn", "José", "Ana 🌸", "Mary-Elizabeth", "O\u2019Brien", "李小龙"])
PLACES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=45
) | st.sampled_from(["Eastside Family Care", "Clínica del Río", "Main Street Annex"])
CLINICS = st.sampled_from(["Riverside Health", "Lakeshore Family Medicine", "RHC"])
ROOMY = config_with({"channels": {"sms": {"max_segments": 10}}})
ROOMY_ONE_WAY = config_with({"channels": {"sms": {"max_segments": 10, "two_way": False}}})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.sampled_from(SHIPPED_SMS),
    name=NAMES,
    place=PLACES,
    clinic=CLINICS,
    two_way=st.booleans(),
)
def test_any_name_and_place_give_one_lawful_segment_and_are_never_cut(
    template: tuple[str, str], name: str, place: str, clinic: str, two_way: bool
) -> None:
    language, name_of_template = template
    variables = _realistic(
        language, name_of_template, first_name=name, location_name=place, clinic_name=clinic
    )

    rendered = render(name_of_template, language, "sms", variables, CONFIGS[two_way])

    _assert_one_lawful_segment(rendered.text, language, clinic)
    whole_or_nothing = {
        render(
            name_of_template,
            language,
            "sms",
            variables | {"first_name": shown_name, "location_name": shown_place},
            roomy,
        ).text
        for shown_name in (name, "")
        for shown_place in (place, "")
        for roomy in ((ROOMY, ROOMY_ONE_WAY) if two_way else (ROOMY_ONE_WAY,))
    }
    assert rendered.text in whole_or_nothing


@settings(max_examples=100, deadline=None)
@given(
    template=st.sampled_from(SHIPPED_SMS),
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyzñéü -'", min_size=1, max_size=12),
    place=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ &.", min_size=1, max_size=20),
)
def test_names_and_places_within_their_limits_are_always_shown(
    template: tuple[str, str], name: str, place: str
) -> None:
    language, name_of_template = template
    variables = _realistic(language, name_of_template, first_name=name, location_name=place)

    rendered = render(name_of_template, language, "sms", variables, default_config())

    assert gsm7_variable(name) in rendered.text
    if "appointment" in name_of_template:
        assert gsm7_variable(place) in rendered.text
