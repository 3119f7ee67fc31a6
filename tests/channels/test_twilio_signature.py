"""X-Twilio-Signature computation and validation."""

from __future__ import annotations

import pytest

from channels.twilio_signature import compute_signature, is_valid_signature

# Values from Twilio's own request-validator test suite (twilio-python), i.e. signatures
# produced by Twilio's reference implementation.
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_compute_signature_matches_twilio_reference_value() -> None:
    assert compute_signature(TOKEN, URL, PARAMS) == EXPECTED


def test_repeated_parameters_are_signed_with_values_sorted() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]

    assert compute_signature(TOKEN, URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_mapping_with_list_values_signs_like_repeated_pairs() -> None:
    as_mapping = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}

    assert compute_signature(TOKEN, URL, as_mapping) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_genuine_signature_is_valid() -> None:
    assert is_valid_signature(TOKEN, URL, PARAMS, EXPECTED)


@pytest.mark.parametrize(
    ("url", "params", "token"),
    [
        pytest.param(URL, {**PARAMS, "Digits": "9999"}, TOKEN, id="tampered-param-value"),
        pytest.param(URL, {**PARAMS, "Extra": "1"}, TOKEN, id="added-param"),
        pytest.param(
            URL, {k: v for k, v in PARAMS.items() if k != "To"}, TOKEN, id="removed-param"
        ),
        pytest.param(URL.replace("foo=1", "foo=2"), PARAMS, TOKEN, id="tampered-query"),
        pytest.param(URL.replace("myapp", "other"), PARAMS, TOKEN, id="other-path"),
        pytest.param(URL.replace("https", "http"), PARAMS, TOKEN, id="other-scheme"),
        pytest.param(URL, PARAMS, "54321", id="wrong-auth-token"),
    ],
)
def test_tampered_request_is_rejected(url: str, params: dict[str, str], token: str) -> None:
    assert not is_valid_signature(token, url, params, EXPECTED)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        pytest.param(URL.replace(".com", ".com:1234"), EXPECTED, id="proxy-added-port"),
        pytest.param(URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", id="signed-with-explicit-443"),
        pytest.param(
            URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4=", id="http-signed-with-80"
        ),
    ],
)
def test_default_port_differences_are_tolerated_like_twilio_sdks(url: str, signature: str) -> None:
    assert is_valid_signature(TOKEN, url, PARAMS, signature)


@pytest.mark.parametrize("garbage", ["", "not-base64", EXPECTED[:-2], EXPECTED.lower()])
def test_malformed_signature_is_rejected(garbage: str) -> None:
    assert not is_valid_signature(TOKEN, URL, PARAMS, garbage)
