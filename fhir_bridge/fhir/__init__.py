"""Talking to the clinic's EHR over FHIR R4: HTTP client, SMART Backend Services auth, keys."""

from fhir_bridge.fhir.auth import SmartBackendServicesAuth, StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.fhir.errors import (
    EhrAuthError,
    EhrError,
    EhrNotFound,
    EhrNotSupported,
    EhrPreconditionFailed,
    EhrProtocolError,
    EhrUnavailable,
    SigningKeyError,
)
from fhir_bridge.fhir.keys import (
    SigningKey,
    generate_private_key,
    load_signing_key,
    load_signing_key_file,
    public_jwks,
)

__all__ = [
    "EhrAuthError",
    "EhrClient",
    "EhrError",
    "EhrNotFound",
    "EhrNotSupported",
    "EhrPreconditionFailed",
    "EhrProtocolError",
    "EhrUnavailable",
    "RetryPolicy",
    "SigningKey",
    "SigningKeyError",
    "SmartBackendServicesAuth",
    "StaticBearerAuth",
    "generate_private_key",
    "load_signing_key",
    "load_signing_key_file",
    "public_jwks",
]
