"""Specifications of the event pipeline: ingest, store, sync, planning, delivery, write-back."""
