"""The consent fixtures are what an EHR could really send: valid R4 (4.0.1) JSON."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.consent.fhir_fixtures import FIXTURES, load

NAMES = sorted(path.stem for path in Path(FIXTURES).glob("*.json"))


@pytest.mark.parametrize("name", NAMES)
def test_fixture_parses_as_strict_r4(name: str) -> None:
    resource = load(name)
    resource_type = resource["resourceType"]
    module = importlib.import_module(f"fhirclient.models.{resource_type.lower()}")
    parsed = getattr(module, resource_type)(resource, strict=True)
    assert parsed.id == resource["id"]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_parses_with_fhir_resources_r4b(name: str) -> None:
    resource = load(name)
    resource_type = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    assert getattr(module, resource_type).model_validate(resource).id == resource["id"]
