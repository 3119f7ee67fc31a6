"""``/docs`` works on a clinic network without internet, and can be turned off."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings


def _client(tmp_path: Path, **settings: object) -> TestClient:
    rt = Runtime(settings=load_settings(data_dir=tmp_path, **settings))
    return TestClient(create_app(rt))


def test_the_docs_page_loads_its_scripts_and_styles_from_the_app_itself(tmp_path: Path) -> None:
    client = _client(tmp_path)
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_api_docs_false_turns_off_docs_and_the_openapi_document(tmp_path: Path) -> None:
    client = _client(tmp_path, api_docs=False)
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
    assert client.get("/health").status_code == 200
