"""AuditEvents the standard way (IHE Basic Audit Log Patterns), one facility for the service.

``events`` builds strictly valid R4 ``AuditEvent`` resources (pure); ``service.record`` keeps
one as a row inside the caller's transaction (the row is the record); ``service.push``
writes pending rows to the EHR after commit, driven by the relay; an EHR that refuses keeps
them here, ``rejected`` with a reason, still queryable locally.
"""
