"""Two-way SMS: provider status callbacks, inbound replies (STOP/START/HELP/C/R/crisis/free
text), the replies we send back, and the EHR updates they lead to.

Webhooks only store and enqueue (``fhir_bridge.api.twilio_webhooks``); Celery tasks do the
work from the stored rows, so a lost task or a killed worker is picked up by the relay.
"""
