"""Errors the services raise; the web layer maps them to HTTP status codes, the CLI to
messages (``mailward.web.errors.http_status``)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``str(error)`` is a one-line reason fit to show a user."""


class InvalidInput(ServiceError):
    """The request itself is wrong (bad address, weak password, ...)."""


class NotFound(ServiceError):
    """Missing, or outside the caller's account (indistinguishable on purpose)."""


class Forbidden(ServiceError):
    """The caller may see the object but not do this to it."""


class Conflict(ServiceError):
    """The change clashes with existing data (duplicate name, wrong state)."""


class TooManyAttempts(ServiceError):
    """Too many wrong passwords lately; try again later."""
