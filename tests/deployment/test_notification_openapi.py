"""The notification routes check credentials themselves (no per-request FastAPI security
dependency) and still document both ways an EHR authenticates in the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings

NOTIFICATION_OPERATIONS = [
    ("/notifications/{subscription_id}", "post"),
    ("/notifications/{subscription_id}/{resource_type}/{resource_id}", "post"),
    ("/notifications/{subscription_id}/{resource_type}/{resource_id}", "put"),
]


def test_each_notification_route_documents_the_bearer_token_and_the_body_signature(
    tmp_path: Path,
) -> None:
    client = TestClient(create_app(Runtime(settings=load_settings(data_dir=tmp_path))))

    schema = client.get("/openapi.json").json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes["subscriptionToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The per-Subscription token given to the EHR as the Subscription's header.",
    }
    assert schemes["bodySignature"]["in"] == "header"
    assert schemes["bodySignature"]["name"] == "X-Signature"
    for path, method in NOTIFICATION_OPERATIONS:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"subscriptionToken": []}, {"bodySignature": []}]
        assert "application/fhir+json" in operation["requestBody"]["content"]
