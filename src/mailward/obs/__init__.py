"""Observability: structured logs with a per-task context (:mod:`mailward.obs.logs`),
Prometheus metrics (:mod:`mailward.obs.metrics`, multiprocess set-up in
:mod:`mailward.obs.multiproc`), event-loop and pool sampling (:mod:`mailward.obs.loop`)
and readiness checks that need only the standard library (:mod:`mailward.obs.health`).

The bottom layer: imports no other ``mailward`` package. Importing this package imports
neither ``prometheus_client`` nor anything else heavy (see :mod:`mailward.obs.multiproc`).
"""
