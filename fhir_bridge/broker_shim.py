"""Keep the Celery worker alive when Redis drops with messages in flight (issue #9).

Written against kombu 5.7.0 (Celery 5.7.0, redis-py 8.1.0); check it again on upgrade.

How it fails without this: the consumer's BRPOP connection dies (Redis killed, restarted,
failed over). Celery cleans up with ``Connection.collect()``, which closes the default
channel, then drops the transport (``kombu/connection.py`` ``_do_close_transport`` sets
``transport.client = None``). When the channel was in the middle of a BRPOP, its
``close()`` stops at ``_brpop_read()`` with a connection error, so the channel survives
still holding its delivered-but-unacknowledged messages. Celery then closes the connection
(``connection.close()``), which closes that channel again; this time it gets as far as
``QoS.restore_unacked_once()`` → ``QoS.restore_unacked()`` → ``conn_or_acquire()`` →
``_create_client()`` → ``_connparams()``, which reads ``self.connection.client.hostname``
from the dropped transport: ``AttributeError: 'NoneType' object has no attribute
'hostname'``. That is not a connection error, so Celery logs "Unrecoverable error" and the
worker process ends (with status 0). Whether the BRPOP was in flight is timing, hence "about
one outage in three". An acknowledgement on such a channel (a task that finishes after the
outage began) takes the same path.

The fix: a channel whose transport was dropped raises ``redis.ConnectionError`` instead,
which is what the situation is. Celery already handles that everywhere it can happen: the
close is ignored and the consumer reconnects; a failed ack is logged and the message comes
back after the visibility timeout. Nothing is lost by not restoring: the database is the
record and the relay re-enqueues unfinished work (a Redis that restarted empty has lost the
unacknowledged messages anyway). With a live transport nothing changes.

The ``worker`` role's supervisor (``fhir_bridge/cli.py``) still restarts a Celery worker
that ends unasked, for whatever else may end it.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_INSTALLED = "_fhir_bridge_dropped_transport_is_a_connection_error"


def install() -> None:
    """Patch kombu's Redis channel (idempotent): a dropped transport is a connection error."""
    original = kombu_redis.Channel._connparams
    if getattr(original, _INSTALLED, False):
        return

    @functools.wraps(original)
    def connparams(self: kombu_redis.Channel, *args: Any, **kwargs: Any) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection was closed")
        return original(self, *args, **kwargs)

    setattr(connparams, _INSTALLED, True)
    kombu_redis.Channel._connparams = connparams  # type: ignore[method-assign]
