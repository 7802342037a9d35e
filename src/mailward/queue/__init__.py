"""The mail queue: durable spool, delivery workers, DSN bounces, queue admin.

Import the parts from their modules (``mailward.queue.spool`` …); this package keeps no
state of its own.
"""
