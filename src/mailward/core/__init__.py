"""Shared basics of every service: who calls (actor), what can go wrong (errors), the audit
log, name normalisation and paging. Depends on ``db`` and ``config`` only."""
