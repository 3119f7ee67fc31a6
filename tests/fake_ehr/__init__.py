"""Tests of the fake EHR used by fhir-bridge integration tests."""
