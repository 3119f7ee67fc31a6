"""CapabilityStatement and SMART configuration, what clients read before anything else."""

from __future__ import annotations

from typing import Any

from fhir_bridge.fhir.assertions import ASSERTION_ALGORITHMS
from fhir_bridge.sandbox.auth import DEFAULT_SCOPE
from fhir_bridge.sandbox.state import EhrState
from fhir_bridge.sandbox.subscription_model import BACKPORT

ADVERTISED_TYPES = (
    "Appointment",
    "Communication",
    "Consent",
    "Encounter",
    "MedicationRequest",
    "Organization",
    "Patient",
    "Practitioner",
    "Subscription",
)
TOPIC_CANONICAL_URL = (
    f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"
)
_SEARCH_PARAMS = (
    ("_id", "token"),
    ("_lastUpdated", "date"),
    ("identifier", "token"),
    ("status", "token"),
    ("subject", "reference"),
    ("patient", "reference"),
    ("date", "date"),
    ("location", "reference"),
)
_INTERACTIONS = ("read", "vread", "update", "delete", "create", "search-type")


def capability_statement(state: EhrState) -> dict[str, Any]:
    """The `/metadata` answer, declaring the Backport IG server capability when relevant."""
    config = state.config
    r4b = config.fhir_version == "R4B"
    instantiates = f"{BACKPORT}/CapabilityStatement/backport-subscription-server" + (
        "" if r4b else "-r4"
    )
    return {
        "resourceType": "CapabilityStatement",
        "id": "fake-ehr",
        "url": f"{config.base_url}/metadata",
        "name": "FhirBridgeFakeEhr",
        "status": "active",
        "date": "2026-01-01",
        "publisher": "fhir-bridge test suite",
        "kind": "instance",
        "instantiates": [instantiates] if config.supports_subscriptions else [],
        "software": {"name": "fhir-bridge fake EHR", "version": "1.0.0"},
        "implementation": {"description": "In-memory FHIR server", "url": config.base_url},
        "fhirVersion": "4.3.0" if r4b else "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": _security(state),
                "interaction": [{"code": "batch"}],
                "resource": [
                    _resource(state, type_)
                    for type_ in ADVERTISED_TYPES
                    if type_ != "Subscription" or config.supports_subscriptions
                ],
            }
        ],
    }


def smart_configuration(state: EhrState) -> dict[str, Any]:
    """`.well-known/smart-configuration`: Backend Services and the EHR launch (SMART 2.x)."""
    return {
        "issuer": state.config.origin,
        "jwks_uri": f"{state.config.origin}/auth/jwks",
        "authorization_endpoint": f"{state.config.origin}/auth/authorize",
        "token_endpoint": state.config.token_url,
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "none",
        ],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": sorted(
            {*DEFAULT_SCOPE.split(), "system/*.read", "system/*.rs", "system/*.cruds"}
        ),
        "capabilities": [
            "launch-ehr",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-ehr-encounter",
            "sso-openid-connect",
            "permission-v1",
            "permission-v2",
            "permission-patient",
        ],
    }


def _security(state: EhrState) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": state.config.token_url}],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
    }


def _resource(state: EhrState, type_: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": type_}
    if type_ == "Subscription":
        resource["extension"] = [
            {"url": TOPIC_CANONICAL_URL, "valueCanonical": topic} for topic in state.topic_urls()
        ]
    resource["interaction"] = [{"code": code} for code in _INTERACTIONS]
    resource["versioning"] = "versioned"
    resource["readHistory"] = True
    resource["updateCreate"] = True
    resource["conditionalCreate"] = True
    resource["searchParam"] = [{"name": name, "type": kind} for name, kind in _SEARCH_PARAMS]
    if type_ == "Subscription":
        operations = [
            {
                "name": "$status",
                "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-status",
            }
        ]
        if state.settings.supports_events:
            operations.append(
                {
                    "name": "$events",
                    "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-events",
                }
            )
        resource["operation"] = operations
    return resource
