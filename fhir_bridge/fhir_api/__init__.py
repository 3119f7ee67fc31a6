"""Read-only FHIR R4 API for auditors under ``/fhir``: Communications as written, AuditEvents.

``search`` parses (pure), ``repository`` holds the SQL, ``resources`` builds what leaves,
``auth`` runs our SMART Backend Services token endpoint, ``trail`` audits every query,
``routes`` is the thin shell.
"""
