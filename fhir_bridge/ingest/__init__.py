"""Receiving notifications from the EHR: authenticate, validate, store, answer."""
