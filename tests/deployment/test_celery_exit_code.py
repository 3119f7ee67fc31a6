"""The worker and scheduler roles exit with Celery's own exit code.

Celery's ``start`` drops the code click returns for ``ctx.exit(code)``, so a worker that
stopped on an unrecoverable error used to exit 0 and `restart: on-failure` left it down.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery.bin.celery import celery as celery_command

from fhir_bridge.cli import EXIT_UNEXPECTED, _run_celery
from fhir_bridge.tasks import celery_app


@pytest.mark.parametrize(
    ("celery_code", "ours"),
    [(None, 0), (0, 0), (1, 1), (70, 70), ("odd", EXIT_UNEXPECTED)],
)
def test_the_exit_code_celery_returns_is_the_one_we_exit_with(
    monkeypatch: pytest.MonkeyPatch, celery_code: Any, ours: int
) -> None:
    monkeypatch.setattr(celery_command, "main", lambda **_kwargs: celery_code)
    assert _run_celery(celery_app, ["worker"]) == ours


def test_the_app_is_handed_to_celerys_command_line_only_for_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []
    monkeypatch.setattr(
        celery_command, "main", lambda **_kwargs: seen.append(celery_command.params[0].default)
    )
    _run_celery(celery_app, ["worker"])
    assert seen == [celery_app]
    assert celery_command.params[0].default is None
