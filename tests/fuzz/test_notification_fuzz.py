"""Notifications with a wrong JSON type at any level never get a 5xx and never half-apply.

Hypothesis builds Backport IG notification Bundles (and classic resources) in which every
level — bundle, entry, resource, parameter, part, value — is either well-formed or a value
of some other JSON type, sends them with valid credentials, and checks the answer is below
500 and that a refused notification changed nothing.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import SUBSCRIPTION_ID, FuzzedApi
from tests.pipeline.samples import EHR_BASE, appointment

FHIR_JSON = "application/fhir+json"

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any JSON value, kept small; with the odd ones that have broken parsers before.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["\u0000", "²", "٣", "-1", "2147483648", "x" * 300, "Núñez"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid shape, sometimes any other JSON value."""
    return st.one_of(valid, valid, json_values)


event_numbers = st.one_of(
    st.integers(min_value=0, max_value=2**31 - 1).map(str),
    st.integers(min_value=-5, max_value=2**64),
    st.sampled_from(["", " 7 ", "²", "1e3"]),
)
references = st.one_of(
    st.just(f"{EHR_BASE}/Appointment/eWLhfjXHp4RUczv2VLqhCGQ3"),
    st.just("Appointment/eWLhfjXHp4RUczv2VLqhCGQ3/_history/2"),
    st.text(max_size=20),
    st.just("Appointment/" + "é" * 70),
)
event_parts = st.lists(
    either(
        st.one_of(
            st.fixed_dictionaries(
                {"name": st.just("event-number"), "valueString": either(event_numbers)}
            ),
            st.fixed_dictionaries(
                {
                    "name": st.just("focus"),
                    "valueReference": either(
                        st.fixed_dictionaries({"reference": either(references)})
                    ),
                }
            ),
            st.fixed_dictionaries(
                {"name": st.just("timestamp"), "valueInstant": st.just("2026-11-23T14:00:00Z")}
            ),
        )
    ),
    max_size=4,
)
parameters = st.lists(
    either(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "name": st.just("type"),
                    "valueCode": either(
                        st.sampled_from(["event-notification", "heartbeat", "handshake"])
                    ),
                }
            ),
            st.fixed_dictionaries(
                {
                    "name": st.just("events-since-subscription-start"),
                    "valueString": either(event_numbers),
                }
            ),
            st.fixed_dictionaries(
                {
                    "name": st.just("subscription"),
                    "valueReference": either(
                        st.fixed_dictionaries(
                            {"reference": st.just(f"{EHR_BASE}/Subscription/sub-appointment-7731")}
                        )
                    ),
                }
            ),
            st.fixed_dictionaries(
                {"name": st.just("status"), "valueCode": either(st.just("active"))}
            ),
            st.fixed_dictionaries(
                {"name": st.just("notification-event"), "part": either(event_parts)}
            ),
        )
    ),
    max_size=6,
)
status_resources = st.one_of(
    st.fixed_dictionaries({"resourceType": st.just("Parameters"), "parameter": either(parameters)}),
    st.fixed_dictionaries(
        {
            "resourceType": st.just("SubscriptionStatus"),
            "type": either(st.just("event-notification")),
            "eventsSinceSubscriptionStart": either(event_numbers),
            "notificationEvent": either(
                st.lists(
                    either(
                        st.fixed_dictionaries(
                            {
                                "eventNumber": either(event_numbers),
                                "focus": either(
                                    st.fixed_dictionaries({"reference": either(references)})
                                ),
                            }
                        )
                    ),
                    max_size=3,
                )
            ),
        }
    ),
)


@st.composite
def appointments(draw: st.DrawFn) -> Any:
    """A realistic Appointment, sometimes with one field replaced by any JSON value."""
    resource = appointment()
    if draw(st.booleans()):
        field = draw(
            st.sampled_from(["id", "status", "start", "participant", "meta", "description"])
        )
        resource[field] = draw(json_values)
    return resource


entries = st.fixed_dictionaries(
    {"fullUrl": st.just(f"{EHR_BASE}/Parameters/7d0c"), "resource": either(status_resources)}
)
bundles = st.fixed_dictionaries(
    {
        "resourceType": st.just("Bundle"),
        "type": either(st.just("history")),
        "entry": either(
            st.tuples(
                either(entries),
                st.lists(
                    either(st.fixed_dictionaries({"resource": either(appointments())})), max_size=2
                ),
            ).map(lambda t: [t[0], *t[1]])
        ),
    }
)
notifications = st.one_of(bundles, bundles, appointments(), json_values)


@FUZZ_SETTINGS
@given(body=notifications)
def test_no_notification_shape_gets_a_5xx_or_half_applies(api: FuzzedApi, body: Any) -> None:
    before = api.state()

    response = api.client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=json.dumps(body),
        headers={"Authorization": api.bearer, "Content-Type": FHIR_JSON},
    )

    assert response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    if response.status_code != 200:
        assert api.state() == before


@FUZZ_SETTINGS
@given(resource=appointments(), path_id=either(st.just("eWLhfjXHp4RUczv2VLqhCGQ3")))
def test_no_hapi_style_resource_gets_a_5xx_or_half_applies(
    api: FuzzedApi, resource: Any, path_id: Any
) -> None:
    before = api.state()

    response = api.client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/{path_id}",
        content=json.dumps(resource),
        headers={"Authorization": api.bearer, "Content-Type": FHIR_JSON},
    )

    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert api.state() == before
