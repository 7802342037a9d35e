"""Errors the directory services raise; the API and CLI map them to status codes."""

from __future__ import annotations


class DirectoryError(Exception):
    """Base class: ``str(error)`` is a one-line reason fit to show a user."""

    status = 400


class InvalidInput(DirectoryError):
    """The request itself is wrong (bad address, weak password, ...)."""

    status = 400


class NotFound(DirectoryError):
    """Missing, or outside the caller's account (indistinguishable on purpose)."""

    status = 404


class Forbidden(DirectoryError):
    """The caller may see the object but not do this to it."""

    status = 403


class Conflict(DirectoryError):
    """The change clashes with existing data (duplicate name, wrong state)."""

    status = 409


class TooManyAttempts(DirectoryError):
    """Too many wrong passwords lately; try again later."""

    status = 429
