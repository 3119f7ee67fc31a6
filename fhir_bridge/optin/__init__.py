"""Double opt-in for health tips: the SMS invitation ("reply YES"), the open-invitation
lookup the inbound YES needs, and the ``campaigns invite`` command (rules: ``rules.optin``)."""
