"""The Prometheus metrics of mailward (``prometheus_client``), one object each.

In one process they live in the default registry. ``mailward serve`` with several worker
processes sets ``PROMETHEUS_MULTIPROC_DIR`` (see :mod:`mailward.obs.multiproc`) before
this module is first imported, so every process writes its values to files there and
:func:`registry` aggregates them; gauges say how (sum over live processes, or the most
recent sample of the one process that samples the queue).
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from mailward.obs.multiproc import ENV

SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                          2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                          3600.0)  # the trace's latency buckets, in seconds
SCORE_BUCKETS: Final = (-5.0, -2.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 10.0, 12.5,
                        15.0, 20.0)
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                      5.0)

CONNECTIONS = Counter("mailward_connections", "Connections accepted, by role.", ["role"])
MESSAGES = Counter("mailward_messages", "Messages (per recipient) by outcome.", ["outcome"])
FILTER_VERDICTS = Counter("mailward_filter_verdicts", "Spam filter verdicts.", ["verdict"])
FILTER_SCORE = Histogram("mailward_filter_score", "Spam filter scores (points).",
                         buckets=SCORE_BUCKETS)
DELIVERY_ATTEMPTS = Counter("mailward_delivery_attempts", "Delivery attempts per recipient.",
                            ["outcome", "kind"])
DELIVERY_LATENCY = Histogram("mailward_delivery_latency_seconds",
                             "Time from queued to delivered.", buckets=LATENCY_BUCKETS)
QUEUE_SIZE = Gauge("mailward_queue_recipients", "Queued recipients by state (sampled).",
                   ["state"], multiprocess_mode="livemostrecent")
SESSIONS = Gauge("mailward_sessions", "Open sessions by protocol.", ["protocol"],
                 multiprocess_mode="livesum")
COMMAND_SECONDS = Histogram("mailward_command_seconds", "Time to answer a command.",
                            ["protocol", "command"], buckets=SECONDS_BUCKETS)
AUTH_FAILURES = Counter("mailward_auth_failures", "Failed mailbox logins.", ["protocol"])
LOCKOUTS = Counter("mailward_auth_lockouts", "Failed logins that locked a mailbox or client.",
                   ["protocol"])
DB_POOL = Gauge("mailward_db_pool_connections", "Database pool connections by state.",
                ["state"], multiprocess_mode="livesum")
LOOP_LAG = Histogram("mailward_event_loop_lag_seconds",
                     "How late a periodic wake-up of the event loop runs.", buckets=LAG_BUCKETS)
TRACE_EVENTS = Counter("mailward_trace_events", "Message trace events recorded.")
TRACE_DROPPED = Counter("mailward_trace_dropped_events",
                        "Message trace events dropped (the write buffer was full).")

# Series known in advance start at 0, so rate() sees their first increment.
for _role in ("mx", "submission", "imap", "pop3", "managesieve"):
    CONNECTIONS.labels(_role)
for _outcome in ("accepted", "refused", "quarantined", "delivered", "deferred", "bounced",
                 "released"):
    MESSAGES.labels(_outcome)
for _verdict in ("clean", "spam"):
    FILTER_VERDICTS.labels(_verdict)
for _protocol in ("imap", "pop3", "submission", "managesieve"):
    AUTH_FAILURES.labels(_protocol)
    LOCKOUTS.labels(_protocol)


def multiprocess_mode() -> bool:
    """Whether values go to the files of ``PROMETHEUS_MULTIPROC_DIR`` (decided when
    ``prometheus_client`` was imported)."""
    return values.ValueClass is not values.MutexValue


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: every process's values in multiprocess mode, else this
    process's default registry."""
    if not multiprocess_mode():
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated, path=os.environ[ENV])
    return aggregated


def exposition() -> tuple[bytes, str]:
    """The text exposition of :func:`registry` and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges of a worker process that exited (multiprocess mode)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid, os.environ[ENV])
