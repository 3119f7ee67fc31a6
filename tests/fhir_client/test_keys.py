"""Signing keys: what we accept, the key id, and the JWKS clinic IT registers with the EHR."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fhir_bridge.fhir import (
    SigningKeyError,
    generate_private_key,
    load_signing_key,
    load_signing_key_file,
    public_jwks,
)
from fhir_bridge.fhir.keys import jwk_thumbprint

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def pem_of(
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    password: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return generate_private_key("RS384", rsa_bits=2048)


@pytest.fixture(scope="module")
def ec_pem() -> str:
    return generate_private_key("ES384")


def test_rsa_key_signs_with_rs384(rsa_pem: str) -> None:
    assert load_signing_key(rsa_pem).alg == "RS384"


def test_ec_p384_key_signs_with_es384(ec_pem: str) -> None:
    assert load_signing_key(ec_pem).alg == "ES384"


@pytest.mark.parametrize("pem_fixture", ["rsa_pem", "ec_pem"])
def test_kid_is_the_rfc7638_thumbprint_of_the_public_key(
    pem_fixture: str, request: pytest.FixtureRequest
) -> None:
    key = load_signing_key(request.getfixturevalue(pem_fixture))

    assert key.kid == jwk_thumbprint(key.public_jwk())


def test_kid_is_stable_across_loads(ec_pem: str) -> None:
    assert load_signing_key(ec_pem).kid == load_signing_key(ec_pem.encode()).kid


def test_thumbprint_matches_rfc7638_example() -> None:
    rfc7638_example = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }

    assert jwk_thumbprint(rfc7638_example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("pem_fixture", ["rsa_pem", "ec_pem"])
def test_jwks_never_exposes_private_parameters(
    pem_fixture: str, request: pytest.FixtureRequest
) -> None:
    jwks = public_jwks(load_signing_key(request.getfixturevalue(pem_fixture)))

    (published,) = jwks["keys"]
    assert not PRIVATE_JWK_MEMBERS & published.keys()


def test_jwks_entry_declares_verification_use(ec_pem: str) -> None:
    key = load_signing_key(ec_pem)

    (published,) = public_jwks(key)["keys"]

    assert published["kid"] == key.kid
    assert (published["alg"], published["use"], published["key_ops"]) == (
        "ES384",
        "sig",
        ["verify"],
    )
    assert (published["kty"], published["crv"]) == ("EC", "P-384")


def test_jwks_lists_old_and_new_keys_for_rotation(rsa_pem: str, ec_pem: str) -> None:
    jwks = public_jwks(load_signing_key(rsa_pem), load_signing_key(ec_pem))

    assert [entry["alg"] for entry in jwks["keys"]] == ["RS384", "ES384"]


def test_key_is_loaded_from_a_pem_file(ec_pem: str, tmp_path: Path) -> None:
    key_file = tmp_path / "fhir-bridge-signing.pem"
    key_file.write_text(ec_pem)

    assert load_signing_key_file(key_file).kid == load_signing_key(ec_pem).kid


def test_encrypted_pem_needs_its_password() -> None:
    encrypted = pem_of(ec.generate_private_key(ec.SECP384R1()), password=b"correct horse")

    assert load_signing_key(encrypted, password=b"correct horse").alg == "ES384"
    with pytest.raises(SigningKeyError):
        load_signing_key(encrypted)


def test_missing_key_file_is_a_signing_key_error(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError):
        load_signing_key_file(tmp_path / "absent.pem")


@pytest.mark.parametrize(
    "weak_pem",
    [
        pytest.param(
            lambda: pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - weak on purpose
            id="rsa-1024",
        ),
        pytest.param(lambda: pem_of(ec.generate_private_key(ec.SECP256R1())), id="ec-p256"),
        pytest.param(lambda: pem_of(ed25519.Ed25519PrivateKey.generate()), id="ed25519"),
        pytest.param(lambda: b"-----BEGIN PRIVATE KEY-----\nnot a key\n", id="garbage"),
    ],
)
def test_unsupported_or_weak_keys_are_refused(weak_pem: object) -> None:
    assert callable(weak_pem)
    with pytest.raises(SigningKeyError):
        load_signing_key(weak_pem())


def test_generating_an_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(SigningKeyError):
        generate_private_key("HS256")
