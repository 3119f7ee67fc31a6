"""Keeping our copy of EHR resources current: notifications, catch-up, polling, Subscriptions."""
