"""Message rendering: sandboxed Jinja2 with an explicit variable allowlist.

Templates are edited by clinic staff, so they run in a sandbox, fail loudly on
unknown variables, and may only see the few harmless values listed in
``ALLOWED_VARIABLES``: never a diagnosis, medication, procedure or service line.
Every SMS is closed by the language's footer (clinic name, callback number,
"Reply STOP to opt out") so no template can forget it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, meta
from jinja2.sandbox import SandboxedEnvironment

from rules.model import RenderedMessage
from rules.sms_length import smart_encode, sms_segments

if TYPE_CHECKING:
    from rules.config import RulesConfig

ALLOWED_VARIABLES = frozenset(
    {"first_name", "date", "time", "location_name", "clinic_name", "clinic_phone", "link"}
)
PARTS_BY_CHANNEL = {"sms": ("sms",), "email": ("subject", "txt", "html")}
SMS_FOOTER = "_footer.sms.j2"
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


def _render_sms(
    environment: SandboxedEnvironment,
    template: str,
    language: str,
    values: Mapping[str, str],
    config: RulesConfig,
) -> RenderedMessage:
    pieces = [_render_file(environment, _file_name(language, template, "sms"), values)]
    reply_name = _file_name(language, template, "reply")
    if config.channels.sms.two_way and _exists(config.template_dir, reply_name):
        pieces.append(_render_file(environment, reply_name, values))
    pieces.append(_render_file(environment, f"{language}/{SMS_FOOTER}", values))
    text = " ".join(_squash(piece) for piece in pieces if piece.strip())
    if config.channels.sms.smart_encoding:
        text = smart_encode(text)
    _encoding, segments = sms_segments(text)
    if segments > config.channels.sms.max_segments:
        raise MessageTooLongError(
            f"template {template} ({language}) renders to {segments} SMS segments, "
            f"more than the {config.channels.sms.max_segments} allowed"
        )
    return RenderedMessage(
        channel="sms",
        subject=None,
        text=text,
        html=None,
        template=template,
        language=language,
        segments=segments,
    )


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
    template the rules use in the default language, plus the SMS footer.
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
    return problems
