"""A bounded schemathesis run over the notification and Twilio routes: no answer is a 5xx.

Requests are generated from the app's own OpenAPI schema (which describes the request
bodies), carry a valid bearer token for a real Subscription, and Twilio forms are signed
like Twilio signs them, so the run reaches parsing and storage, not only authentication.
Deterministic (derandomized) and bounded per operation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from channels.twilio_signature import compute_signature
from tests.fuzz.conftest import PUBLIC_BASE, SUBSCRIPTION_ID, TWILIO_AUTH_TOKEN, FuzzedApi

OPERATIONS = [
    ("POST", "/notifications/{subscription_id}"),
    ("POST", "/notifications/{subscription_id}/{resource_type}/{resource_id}"),
    ("PUT", "/notifications/{subscription_id}/{resource_type}/{resource_id}"),
    ("POST", "/twilio/status"),
    ("POST", "/twilio/inbound"),
]
RUN = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _operation(api: FuzzedApi, method: str, path: str) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == (method, path):
            return operation
    raise AssertionError(f"{method} {path} is not in the OpenAPI schema")


def _send_notification(api: FuzzedApi, case: Any) -> Any:
    case.path_parameters["subscription_id"] = SUBSCRIPTION_ID
    body = case.body if isinstance(case.body, dict) else {}
    # Point HAPI-style URLs at the resource in the body, so some get past the URL check.
    if "resource_type" in case.path_parameters and isinstance(body.get("resourceType"), str):
        case.path_parameters["resource_type"] = body["resourceType"]
    if "resource_id" in case.path_parameters and isinstance(body.get("id"), str) and body["id"]:
        case.path_parameters["resource_id"] = body["id"]
    headers = dict(case.headers or {})
    headers["Authorization"] = api.bearer
    return case.call(headers=headers)


def _send_twilio(api: FuzzedApi, case: Any) -> Any:
    form = case.body if isinstance(case.body, dict) else {}
    content = urlencode({str(k): str(v) for k, v in form.items()})
    query = urlencode({str(k): str(v) for k, v in (case.query or {}).items()})
    path = case.formatted_path + (f"?{query}" if query else "")
    signature = compute_signature(
        TWILIO_AUTH_TOKEN, PUBLIC_BASE + path, parse_qsl(content, keep_blank_values=True)
    )
    return api.client.post(
        path,
        content=content,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_generated_request_gets_a_5xx(api: FuzzedApi, method: str, path: str) -> None:
    operation = _operation(api, method, path)
    statuses: dict[int, int] = {}

    @RUN
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        if path.startswith("/twilio"):
            response = _send_twilio(api, case)
        else:
            response = _send_notification(api, case)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.body, response.text)

    run()

    assert statuses
    assert max(statuses) < 500
    # The run got past authentication: some answers are not 401/403.
    assert set(statuses) - {401, 403}, statuses
