"""Consent, contact selection and delivery choice for patient outreach (pure logic).

See :mod:`rules.consent.codes` for how channel and purpose are read from R4
``Consent`` resources.
"""

from rules.consent.builders import mask_address, opt_in_consent, opt_out_consent
from rules.consent.codes import CHANNELS, OUTREACH_CHANNEL_SYSTEM, OUTREACH_PURPOSE_SYSTEM
from rules.consent.contact import ContactChoice, normalize_address, select_contact
from rules.consent.decision import ConsentDecision, decide_consent
from rules.consent.delivery import DeliveryChoice, choose_delivery
from rules.consent.ledger import LedgerEntry
from rules.consent.policy import ConsentPolicy, PurposeRule

__all__ = [
    "CHANNELS",
    "OUTREACH_CHANNEL_SYSTEM",
    "OUTREACH_PURPOSE_SYSTEM",
    "ConsentDecision",
    "ConsentPolicy",
    "ContactChoice",
    "DeliveryChoice",
    "LedgerEntry",
    "PurposeRule",
    "choose_delivery",
    "decide_consent",
    "mask_address",
    "normalize_address",
    "opt_in_consent",
    "opt_out_consent",
    "select_contact",
]
