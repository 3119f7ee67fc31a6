"""Celery tasks: thin shells that run a job and enqueue what follows after commit.

The Celery app is configured lazily from settings (never at import). Tasks carry
ids only; the database says what to do. Periodic tasks re-enqueue anything a
lost message or a killed worker left behind, so the queue is a wake-up call,
not the record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu.exceptions import KombuError
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask

from fhir_bridge import broker_shim, jobs
from fhir_bridge.audit import jobs as audit_jobs
from fhir_bridge.inbound import jobs as inbound_jobs
from fhir_bridge.runtime import get_runtime
from fhir_bridge.settings import get_settings
from fhir_bridge.store.db import transaction
from smart_app import service as smart_service

log = logging.getLogger(__name__)


class _LazyCeleryConfig:
    """Celery reads this object only when the app is first used."""

    def __getattr__(self, name: str) -> Any:
        try:
            return celery_config()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return list(celery_config())


def celery_config() -> dict[str, Any]:
    settings = get_settings()
    # Redis: bounded socket waits so a dead broker is noticed (and reconnected to) quickly,
    # and a message a worker took but never acknowledged comes back after a lease.
    broker_options: dict[str, Any] = {
        "visibility_timeout": settings.lease_seconds,
        "socket_timeout": 10,
        "socket_connect_timeout": 3,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_dir
        # Every folder kombu's filesystem transport uses, "control" (its exchange table)
        # included, lives in the broker folder, never in the current directory.
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        broker_options = {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    interval = settings.dispatch_interval_seconds
    schedule: dict[str, Any] = {
        "dispatch-due": {"task": "fhir_bridge.dispatch_due", "schedule": interval},
        "relay": {"task": "fhir_bridge.relay", "schedule": settings.relay_interval_seconds},
        "reconcile-ehr": {"task": "fhir_bridge.reconcile_ehr", "schedule": DAILY_SECONDS},
        "purge-retention": {"task": "fhir_bridge.purge_retention", "schedule": DAILY_SECONDS},
        "run-campaigns": {"task": "fhir_bridge.run_campaigns", "schedule": CAMPAIGN_SECONDS},
    }
    if settings.ingest_mode == "subscriptions":
        schedule["check-subscriptions"] = {
            "task": "fhir_bridge.check_subscriptions",
            "schedule": settings.subscription_check_interval_seconds,
        }
    else:
        schedule["poll"] = {"task": "fhir_bridge.poll", "schedule": settings.poll_interval_seconds}
    queues = queue_names(settings.queue_name)
    return {
        "broker_url": settings.broker_url,
        "task_default_queue": settings.queue_name,
        # Each kind of work has its own queue, so none waits behind another's backlog.
        "task_routes": {task: queues[kind] for task, kind in TASK_KINDS.items()},
        "broker_transport_options": broker_options,
        # A broker outage is waited out, however long: the worker keeps its process and
        # reconnects (the relay re-enqueues whatever the broker lost from the database).
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A task running when the connection drops finishes; its unacknowledged message comes
        # back and the rerun finds its row settled. Cancelling it mid-send would be worse.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "beat_schedule": schedule,
        "worker_hijack_root_logger": False,
        "broker_connection_timeout": 3,
        "task_publish_retry": False,
    }


DAILY_SECONDS = 86400
CAMPAIGN_SECONDS = 300
"""How often campaign cadence is checked (runs are days apart; each is claimed once)."""
QUEUE_KINDS = ("ingest", "delivery", "writeback", "periodic")
"""Kinds of work with a queue of their own; anything else goes to the default queue."""

TASK_KINDS = {
    "fhir_bridge.process_notification": "ingest",
    "fhir_bridge.process_notifications": "ingest",
    "fhir_bridge.process_inbound_sms": "ingest",
    "fhir_bridge.deliver": "delivery",
    "fhir_bridge.write_communication": "writeback",
    "fhir_bridge.sync_communication": "writeback",
    "fhir_bridge.push_audit_event": "writeback",
    "fhir_bridge.dispatch_due": "periodic",
    "fhir_bridge.relay": "periodic",
    "fhir_bridge.check_subscriptions": "periodic",
    "fhir_bridge.poll": "periodic",
    "fhir_bridge.reconcile_ehr": "periodic",
    "fhir_bridge.purge_retention": "periodic",
    "fhir_bridge.run_campaigns": "periodic",
}


def queue_names(base: str) -> dict[str, str]:
    """``{kind: queue}`` derived from ``FHIR_BRIDGE_QUEUE_NAME`` (``base.ingest``, …)."""
    return {kind: f"{base}.{kind}" for kind in QUEUE_KINDS}


def worker_queues(base: str, kinds: list[str] | None = None) -> list[str]:
    """The queues a worker consumes: every kind and the default queue, or only ``kinds``."""
    named = queue_names(base)
    if not kinds:
        return [base, *named.values()]
    unknown = sorted(set(kinds) - {*named, "default"})
    if unknown:
        raise ValueError(f"unknown queue kind(s): {', '.join(unknown)}")
    return [base if kind == "default" else named[kind] for kind in kinds]


celery_app = Celery("fhir_bridge")
celery_app.config_from_object(_LazyCeleryConfig())


@worker_process_init.connect
def _fresh_runtime_after_fork(**_kwargs: Any) -> None:
    """Connections must not be shared across a fork."""
    get_runtime.cache_clear()


@worker_init.connect
def _survive_broker_outages(**_kwargs: Any) -> None:
    """A Redis outage with messages in flight must not end the worker (``broker_shim``)."""
    broker_shim.install()


def try_enqueue(task_name: str, *args: Any) -> bool:
    """Enqueue a task; a broker outage is logged, not raised (the relay will retry)."""
    try:
        celery_app.send_task(task_name, args=args)
    except (KombuError, OSError) as exc:
        log.warning(
            "broker unavailable; work stays in the database",
            extra={"task": task_name, "error": type(exc).__name__},
        )
        return False
    return True


class AfterCommit:
    """Tasks to hand to the broker once the unit of work that created them has committed.

    The one way work is enqueued: collect with :meth:`add` while the transaction runs,
    then :meth:`send` after commit (:func:`unit_of_work` does both). An async handler
    never calls the broker itself: it returns ``background=after.background()``, so the
    send runs after the response, in a worker thread, never on the event loop.
    """

    def __init__(self) -> None:
        self._tasks: list[tuple[str, tuple[Any, ...]]] = []

    def add(self, task_name: str, *args: Any) -> None:
        self._tasks.append((task_name, args))

    def send(self) -> int:
        """Enqueue everything collected (never raises); returns how many the broker took."""
        tasks, self._tasks = self._tasks, []
        return sum(try_enqueue(task_name, *args) for task_name, args in tasks)

    def discard(self) -> None:
        self._tasks = []

    def background(self) -> BackgroundTask | None:
        """For a response: send after it has gone out (Starlette runs it in a thread)."""
        return BackgroundTask(self.send) if self._tasks else None


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[tuple[Session, AfterCommit]]:
    """One transaction and the tasks it enqueues; the tasks are sent only after commit.

    If the body raises, the transaction rolls back and nothing is enqueued.
    """
    after = AfterCommit()
    with transaction(factory) as session:
        yield session, after
    after.send()


def session_after_commit(session: Session) -> AfterCommit:
    """The :class:`AfterCommit` of a session whose transaction someone else commits.

    For work decided deep inside a job's transaction (planning finds a message due now):
    the tasks are sent when that session commits, and dropped if it rolls back.
    """
    after: AfterCommit | None = session.info.get("after_commit")
    if after is None:
        after = session.info["after_commit"] = AfterCommit()
        event.listen(session, "after_commit", lambda _session: after.send())
        event.listen(session, "after_rollback", lambda _session: after.discard())
    return after


INBOX_BATCH = 50
"""At most this many notifications per wake-up task, so several workers share a backlog."""


def enqueue_inbox_batch(inbox_ids: list[int]) -> bool:
    """Wake the worker for many stored notifications (in order); False on a broker outage."""
    sent = True
    for start in range(0, len(inbox_ids), INBOX_BATCH):
        chunk = inbox_ids[start : start + INBOX_BATCH]
        sent = try_enqueue("fhir_bridge.process_notifications", chunk) and sent
    return sent


@celery_app.task(name="fhir_bridge.process_notification")
def process_notification(inbox_id: int) -> str:
    return jobs.process_inbox(get_runtime(), inbox_id)


@celery_app.task(name="fhir_bridge.process_notifications")
def process_notifications(inbox_ids: list[int]) -> dict[str, int]:
    """Apply notifications in the order they were stored (claimed a few per statement;
    one that fails unexpectedly stays leased for the relay, the rest go on)."""
    outcomes: dict[str, int] = {}
    for outcome in jobs.process_inbox_batch(get_runtime(), inbox_ids).values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@celery_app.task(name="fhir_bridge.deliver")
def deliver(message_id: str) -> str:
    """Deliver, then write the Communication in the same task (its commit is done and no
    transaction is open); the relay writes it later if the EHR does not answer now."""
    rt = get_runtime()
    outcome = jobs.deliver_message(rt, message_id)
    if outcome in ("sent", "withheld", "failed"):
        jobs.write_back_after_delivery(rt, message_id)
    return outcome


@celery_app.task(name="fhir_bridge.write_communication")
def write_communication(message_id: str) -> str:
    return jobs.write_back(get_runtime(), message_id)


def _ehr_configured() -> bool:
    """Periodic work that talks to the EHR waits quietly until one is configured."""
    return bool(get_runtime().settings.ehr_base_url)


@celery_app.task(name="fhir_bridge.dispatch_due")
def dispatch_due() -> int:
    rt = get_runtime()
    if not _ehr_configured():
        return 0
    jobs.reconcile(rt)
    claimed = jobs.claim_due_messages(rt)
    for message_id in claimed:
        try_enqueue("fhir_bridge.deliver", message_id)
    return len(claimed)


@celery_app.task(name="fhir_bridge.relay")
def relay() -> int:
    """Re-enqueue every kind of work a lost message or a killed worker left behind."""
    rt = get_runtime()
    jobs.refresh_subscription_clocks(rt)
    inbox = jobs.inbox_to_relay(rt)
    if not enqueue_inbox_batch(inbox):
        jobs.forget_inbox_enqueued(rt, inbox)
    writebacks = jobs.writebacks_to_relay(rt)
    for message_id in writebacks:
        try_enqueue("fhir_bridge.write_communication", message_id)
    inbound, syncs = inbound_jobs.relay(rt)
    for inbound_id in inbound:
        try_enqueue("fhir_bridge.process_inbound_sms", inbound_id)
    for message_id in syncs:
        try_enqueue("fhir_bridge.sync_communication", message_id)
    staff_consents = smart_service.staff_consents_to_relay(rt)
    for action_id in staff_consents:
        try_enqueue("fhir_bridge.write_staff_consent", action_id)
    for audit_id in audit_jobs.audit_events_to_push(rt):
        try_enqueue("fhir_bridge.push_audit_event", audit_id)
    jobs.warn_about_stalls(rt)
    return len(inbox) + len(writebacks) + len(inbound) + len(syncs) + len(staff_consents)


@celery_app.task(name="fhir_bridge.write_staff_consent")
def write_staff_consent(action_id: int) -> str:
    """A staff opt-in/out's Consent in the EHR (``smart_app.service``), once."""
    return smart_service.write_staff_consent(get_runtime(), action_id)


@celery_app.task(name="fhir_bridge.check_subscriptions")
def check_subscriptions() -> dict[str, str]:
    return jobs.check_subscriptions(get_runtime()) if _ehr_configured() else {}


@celery_app.task(name="fhir_bridge.poll")
def poll() -> dict[str, int]:
    return jobs.poll(get_runtime()) if _ehr_configured() else {}


@celery_app.task(name="fhir_bridge.process_inbound_sms")
def process_inbound_sms(inbound_id: int) -> str:
    return inbound_jobs.process_inbound_message(get_runtime(), inbound_id)


@celery_app.task(name="fhir_bridge.sync_communication")
def sync_communication(message_id: str) -> str:
    return inbound_jobs.sync_message_communication(get_runtime(), message_id)


@celery_app.task(name="fhir_bridge.push_audit_event")
def push_audit_event(audit_id: str) -> str:
    """One AuditEvent to the EHR after commit (``fhir_bridge.audit.service.push``)."""
    return audit_jobs.push_audit_event(get_runtime(), audit_id)


@celery_app.task(name="fhir_bridge.reconcile_ehr")
def reconcile_ehr() -> str:
    """Daily: our Communications against the EHR's (``fhir_bridge.audit.reconcile``)."""
    from fhir_bridge.audit.cli import reconcile_job

    return reconcile_job(get_runtime())


@celery_app.task(name="fhir_bridge.run_campaigns")
def run_campaigns() -> int:
    """Campaign cadence: each running campaign's next run when due, ``done`` past its end
    (``fhir_bridge.campaigns.service.run_due``); returns the messages queued."""
    if not _ehr_configured():
        return 0
    from fhir_bridge.campaigns.service import run_due

    return sum(result.enqueued for result in run_due(get_runtime()))


@celery_app.task(name="fhir_bridge.purge_retention")
def purge_retention() -> dict[str, Any]:
    """Daily: bodies and records past their retention (``fhir_bridge.audit.retention``)."""
    from fhir_bridge.audit.cli import purge_job

    return purge_job(get_runtime())
