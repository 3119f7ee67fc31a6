"""Email tells the patient how to unsubscribe (the link in the email, or a call), never to
"reply STOP": there is no inbound email path, so a reply would be lost."""

from __future__ import annotations

import pytest

from rules.templates import render
from tests.rules.factories import default_config

VARIABLES = {
    "first_name": "Camila",
    "date": "jueves, 3 de diciembre",
    "time": "9:30 AM",
    "location_name": "Riverside Family Medicine",
    "clinic_name": "Riverside Health",
    "clinic_phone": "(555) 010-0100",
    "link": "https://portal.riverside.example.org/visits",
}
HOW_TO_UNSUBSCRIBE = {
    "en": "To stop these emails, use the unsubscribe link below or call (555) 010-0100.",
    "es": (
        "Para dejar de recibir estos correos, use el enlace para darse de baja que aparece "
        "abajo o llame al (555) 010-0100."
    ),
}


def _email_templates() -> list[str]:
    directory = default_config().template_dir / "en"
    return sorted(path.name.removesuffix(".txt.j2") for path in directory.glob("*.txt.j2"))


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("template", _email_templates())
def test_email_never_says_reply_stop(template: str, language: str) -> None:
    rendered = render(template, language, "email", VARIABLES, default_config())

    for part in (rendered.subject, rendered.text, rendered.html):
        assert "STOP" not in (part or "")


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("template", _email_templates())
def test_email_text_and_html_say_how_to_unsubscribe(template: str, language: str) -> None:
    rendered = render(template, language, "email", VARIABLES, default_config())

    assert rendered.text.rstrip().endswith(HOW_TO_UNSUBSCRIBE[language])
    assert HOW_TO_UNSUBSCRIBE[language] in (rendered.html or "")
