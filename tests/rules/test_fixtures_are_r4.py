"""The fixtures are valid R4 4.0.1, so the rules are tested against what EHRs really send."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.rules.factories import FIXTURES


def _strict_r4(resource: dict) -> None:
    kind = resource["resourceType"]
    module = importlib.import_module(f"fhirclient.models.{kind.lower()}")
    getattr(module, kind)(resource, strict=True)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: Path(p).stem)
def test_fixture_parses_as_strict_r4(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))

    _strict_r4(document)
