"""Message rendering: sandboxed Jinja2 with an explicit variable allowlist.

Templates are edited by clinic staff, so they run in a sandbox, fail loudly on
unknown variables, and may only see the few harmless values listed in
``ALLOWED_VARIABLES``: never a diagnosis, medication, procedure or service line.
Every SMS is closed by the language's footer (clinic name, callback number,
"Reply STOP to opt out") so no template can forget it.

SMS length (TCPA healthcare exemption, 47 CFR 64.1200(a)(9)(iv): 160 characters or
fewer). By default an SMS is one segment: 160 GSM-7 characters, or 70 when a
single character forces UCS-2 (``channels.sms.max_segments`` raises the cap for
messages outside the exemption). An SMS is rendered in these steps:

1. The variable values that come from the EHR, ``first_name`` and ``location_name``,
   are transliterated to GSM-7 (:func:`rules.sms_length.gsm7_variable`: ``Zoë`` ->
   ``Zoe``, emoji removed, ``ñ``/``é``/``ü`` kept). The date is shown in its
   short form (``Tue Dec 1`` / ``mar 1 dic``, :func:`rules.formatting.sms_date`).
2. The two-way hint (``*.reply.j2``: "Reply C=confirm, R=reschedule") is
   added only when the whole text, with every variable in full, fits the cap
   with it. Variables are never shortened to make room for the hint.
3. Otherwise, without the hint, variables are shortened until the text fits, in
   ``SHORTENING_ORDER``: first the place name is left out, then the first name
   ("Hi," / "Hola,"); a value longer than its limit in ``SMS_VARIABLE_LIMITS``
   goes before any value within its limit. A place name is dropped whole rather
   than cut at a word, because a cut name can name another site ("Main Street
   Annex" -> "Main Street"). The clinic name, the callback number, the date, the
   time, the link and the opt-out line are never shortened.
4. If the text still does not fit, :class:`MessageTooLongError` (the message is
   withheld as ``message-too-long``).

``check_templates`` (``fhir-bridge rules check``) renders every SMS template of
every supported language at the longest values a message can carry (variables at
their limits, the longest date and time of the language, the longest clinic name
and callback number of the organisation and of every location override) and
reports each template that would exceed the cap, so that step 3 never has to
drop a name or place within those limits, and step 4 never happens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, meta
from jinja2.sandbox import SandboxedEnvironment

from rules.formatting import longest_sms_date, longest_time, sms_date
from rules.model import RenderedMessage
from rules.sms_length import (
    gsm7_variable,
    is_gsm7,
    smart_encode,
    sms_capacity,
    sms_segments,
    sms_units,
)

if TYPE_CHECKING:
    from rules.config import RulesConfig

ALLOWED_VARIABLES = frozenset(
    {"first_name", "date", "time", "location_name", "clinic_name", "clinic_phone", "link"}
)
PARTS_BY_CHANNEL = {"sms": ("sms",), "email": ("subject", "txt", "html")}
SMS_FOOTER = "_footer.sms.j2"
SMS_SUFFIX = ".sms.j2"
SMS_VARIABLE_LIMITS: Mapping[str, int] = {"first_name": 12, "location_name": 20}
"""The longest value, in GSM-7 characters, an SMS carries for each EHR-supplied variable.

``rules check`` proves that every template fits the cap with values of exactly
these lengths, so a value within its limit is never left out; a longer value is
printed when it fits and otherwise left out first (never cut).
"""
SHORTENING_ORDER = ("location_name", "first_name")
"""The variables left out, in this order, when an SMS would exceed the cap."""
COMBINED_TIMES = 2
"""Appointments a combined template is checked with (``10:30 AM and 2:15 PM``)."""
GENERIC_SUFFIX = "-generic"
_WHITESPACE = re.compile(r"\s+")


class TemplateRenderError(ValueError):
    """A message could not be rendered; the text names the template, never the data."""


class MessageTooLongError(TemplateRenderError):
    """The rendered SMS needs more segments than the configuration allows."""


class DisallowedVariableError(TemplateRenderError):
    """A caller offered a variable outside the allowlist."""


@lru_cache(maxsize=8)
def _environment(directory: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def generic_variant(template: str) -> str:
    """The non-revealing variant used when a message is about something sensitive."""
    return template if template.endswith(GENERIC_SUFFIX) else template + GENERIC_SUFFIX


def _file_name(language: str, template: str, part: str) -> str:
    return f"{language}/{template}.{part}.j2"


def _exists(directory: Path, name: str) -> bool:
    return (directory / name).is_file()


def resolve_language(language: str, template: str, config: RulesConfig) -> str:
    """``language`` if that template set exists for it, else the configured fallback."""
    directory = config.template_dir
    if language in config.languages.supported and _exists(
        directory, _file_name(language, template, "sms")
    ):
        return language
    return config.languages.default


def _render_file(environment: SandboxedEnvironment, name: str, values: Mapping[str, str]) -> str:
    try:
        return environment.get_template(name).render(**values)
    except TemplateNotFound as error:
        raise TemplateRenderError(f"template {name} is missing") from error
    except TemplateError as error:
        raise TemplateRenderError(f"template {name} failed: {type(error).__name__}") from error


def render(
    template: str,
    language: str,
    channel: str,
    variables: Mapping[str, str],
    config: RulesConfig,
) -> RenderedMessage:
    """Render one message for one channel exactly as it will be delivered."""
    unknown = set(variables) - ALLOWED_VARIABLES
    if unknown:
        raise DisallowedVariableError(f"variables not allowed: {', '.join(sorted(unknown))}")
    if channel not in PARTS_BY_CHANNEL:
        raise TemplateRenderError(f"unknown channel {channel!r}")
    language = resolve_language(language, template, config)
    environment = _environment(str(config.template_dir))
    values = {name: "" for name in ALLOWED_VARIABLES} | dict(variables)
    if channel == "sms":
        return _render_sms(environment, template, language, values, config)
    return RenderedMessage(
        channel="email",
        subject=_squash(
            _render_file(environment, _file_name(language, template, "subject"), values)
        ),
        text=_render_file(environment, _file_name(language, template, "txt"), values).strip()
        + "\n",
        html=_render_file(environment, _file_name(language, template, "html"), values),
        template=template,
        language=language,
    )


def _squash(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def sms_variables(values: Mapping[str, str], language: str) -> dict[str, str]:
    """Step 1: names and places spelled in GSM-7, and the date in its short form."""
    prepared = dict(values)
    for name in SMS_VARIABLE_LIMITS:
        prepared[name] = gsm7_variable(prepared.get(name, ""))
    prepared["date"] = sms_date(prepared.get("date", ""), language)
    return prepared


def _compose_sms(
    environment: SandboxedEnvironment,
    template: str,
    language: str,
    values: Mapping[str, str],
    config: RulesConfig,
    *,
    with_hint: bool,
) -> str:
    pieces = [_render_file(environment, _file_name(language, template, "sms"), values)]
    if with_hint:
        pieces.append(_render_file(environment, _file_name(language, template, "reply"), values))
    pieces.append(_render_file(environment, f"{language}/{SMS_FOOTER}", values))
    text = " ".join(_squash(piece) for piece in pieces if piece.strip())
    if config.channels.sms.smart_encoding:
        text = smart_encode(text)
    return text


def _sms_attempts(values: Mapping[str, str], hint: bool) -> list[tuple[Mapping[str, str], bool]]:
    """Steps 2 and 3: full text with the hint, without it, then with fewer variables.

    Values longer than their limit are left out before any value within it, so a
    name or place within its limit is only ever left out when the template fails
    ``rules check``.
    """
    attempts: list[tuple[Mapping[str, str], bool]] = [(values, True)] if hint else []
    attempts.append((values, False))
    over_limit = [n for n in SHORTENING_ORDER if len(values.get(n, "")) > SMS_VARIABLE_LIMITS[n]]
    for name in over_limit + [n for n in SHORTENING_ORDER if n not in over_limit]:
        if values.get(name):
            values = {**values, name: ""}
            attempts.append((values, False))
    return attempts


def _render_sms(
    environment: SandboxedEnvironment,
    template: str,
    language: str,
    values: Mapping[str, str],
    config: RulesConfig,
) -> RenderedMessage:
    cap = config.channels.sms.max_segments
    hint = config.channels.sms.two_way and _exists(
        config.template_dir, _file_name(language, template, "reply")
    )
    segments = 0
    for attempt, with_hint in _sms_attempts(sms_variables(values, language), hint):
        text = _compose_sms(environment, template, language, attempt, config, with_hint=with_hint)
        _encoding, segments = sms_segments(text)
        if segments <= cap:
            return RenderedMessage(
                channel="sms",
                subject=None,
                text=text,
                html=None,
                template=template,
                language=language,
                segments=segments,
            )
    raise MessageTooLongError(
        f"template {template} ({language}) renders to {segments} SMS segments even "
        f"without the place and first name, more than the {cap} allowed"
    )


def longest_sms_variables(config: RulesConfig, language: str, template: str) -> dict[str, str]:
    """The longest values an SMS of ``template`` can carry in ``language`` (for checks).

    Names and places at their limits, the longest short date and time of the
    language (two times for a combined template), and the longest clinic name and
    callback number among the organisation and every location override.
    """
    organization = config.organization
    overrides = config.locations.values()
    clinic_names = [organization.clinic_name] + [o.clinic_name for o in overrides if o.clinic_name]
    phones = [organization.clinic_phone] + [o.clinic_phone for o in overrides if o.clinic_phone]
    times = COMBINED_TIMES if "combined" in template else 1
    return {
        "first_name": "M" * SMS_VARIABLE_LIMITS["first_name"],
        "location_name": "W" * SMS_VARIABLE_LIMITS["location_name"],
        "date": longest_sms_date(language),
        "time": longest_time(language, times),
        "clinic_name": max(clinic_names, key=sms_units),
        "clinic_phone": max(phones, key=sms_units),
        "link": organization.link,
    }


def _check_sms_lengths(config: RulesConfig, environment: SandboxedEnvironment) -> list[str]:
    """Every SMS template that can exceed the cap at the longest values, by file name."""
    problems: list[str] = []
    cap = config.channels.sms.max_segments
    for language in config.languages.supported:
        for path in sorted((config.template_dir / language).glob("*" + SMS_SUFFIX)):
            if path.name == SMS_FOOTER:
                continue
            template = path.name.removesuffix(SMS_SUFFIX)
            values = longest_sms_variables(config, language, template)
            try:
                text = _compose_sms(
                    environment, template, language, values, config, with_hint=False
                )
            except TemplateRenderError:
                continue  # reported by the syntax, allowlist and missing-file checks
            encoding = "gsm7" if is_gsm7(text) else "ucs2"
            units, allowed = sms_units(text), sms_capacity(encoding, cap)
            if units > allowed:
                note = "" if encoding == "gsm7" else " (UCS-2: it has characters outside GSM-7)"
                problems.append(
                    f"template {language}/{path.name}: {units} characters at the longest "
                    f"values, over the {allowed} allowed{note}"
                )
    return problems


def required_templates(config: RulesConfig) -> list[str]:
    """Template names the configured rules will ask for (each with a generic variant)."""
    names = [
        config.appointment_reminders.template,
        config.appointment_reminders.combined_template,
        config.refill_notices.template,
        config.refill_notices.last_fill_template,
        config.discharge_checkins.template,
    ]
    return [variant for name in names for variant in (name, generic_variant(name))]


def check_templates(config: RulesConfig) -> list[str]:
    """Every problem with the template set, each naming the template file.

    Parses every ``{lang}/*.j2`` for supported languages, rejects variables outside
    the allowlist (found with ``jinja2.meta``) and requires every part of every
    template the rules use in the default language, plus the SMS footer. When all
    that holds, every ``*.sms.j2`` of every supported language is rendered at the
    longest values (:func:`longest_sms_variables`) and must fit the SMS cap.
    """
    directory = config.template_dir
    if not directory.is_dir():
        return [f"templates: directory {directory} does not exist"]
    environment = _environment(str(directory))
    problems: list[str] = []
    for language in config.languages.supported:
        for path in sorted((directory / language).glob("*.j2")):
            name = f"{language}/{path.name}"
            try:
                parsed = environment.parse(path.read_text(encoding="utf-8"), name=name)
            except TemplateError as error:
                line = getattr(error, "lineno", None)
                problems.append(f"template {name}:{line}: syntax error: {error}")
                continue
            outside = meta.find_undeclared_variables(parsed) - ALLOWED_VARIABLES
            if outside:
                problems.append(
                    f"template {name}: uses variable(s) not in the allowlist: "
                    f"{', '.join(sorted(outside))} "
                    f"(allowed: {', '.join(sorted(ALLOWED_VARIABLES))})"
                )
    default = config.languages.default
    wanted = [
        _file_name(default, name, part)
        for name in required_templates(config)
        for part in ("sms", "subject", "txt", "html")
    ]
    wanted += [f"{language}/{SMS_FOOTER}" for language in config.languages.supported]
    problems += [f"template {name}: missing" for name in wanted if not _exists(directory, name)]
    if not problems:
        problems += _check_sms_lengths(config, environment)
    return problems


def limited_template_problem(
    environment: SandboxedEnvironment,
    config: RulesConfig,
    name: str,
    allowed: frozenset[str] | set[str],
    kind: str,
) -> str | None:
    """The first problem with template file ``name`` that may use only ``allowed`` variables:
    a syntax error, another variable (``kind`` says whose template it is), sensitive care."""
    source = (config.template_dir / name).read_text(encoding="utf-8")
    try:
        used = meta.find_undeclared_variables(environment.parse(source, name=name))
    except TemplateError as error:
        return f"template {name}: syntax error: {error}"
    outside = used - allowed
    if outside:
        return (
            f"template {name}: a {kind} may only use "
            f"{', '.join(sorted(allowed))}, not {', '.join(sorted(outside))}"
        )
    if config.privacy.name_is_revealing(source):
        return f"template {name}: names sensitive care"
    return None


UNSUBSCRIBE_PLACEHOLDER = "<unsubscribe link>"


def with_unsubscribe_line(text: str, url: str) -> str:
    """An email's plain text with its one-click unsubscribe link on its own last line.

    Delivery calls it with the message's signed link; ``preview`` with
    :data:`UNSUBSCRIBE_PLACEHOLDER`, so both show the same closing.
    """
    return f"{text.rstrip()}\n\n{url}\n"
