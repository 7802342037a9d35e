"""Structured log lines: logfmt, JSON or text, with the context of the current task.

:data:`SESSION`, :data:`TRACE` and :data:`QUEUE` are context variables; :func:`bind` sets
them for a block (an SMTP session binds its session and trace id, the delivery worker the
trace and queue id of the message it handles), and every line logged inside carries them.
A record's ``fields`` attribute (``log.info("...", extra={"fields": {...}})``) adds its
own keys. :func:`configure_logging` installs one of the formatters on the root logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final

SESSION: ContextVar[str | None] = ContextVar("mailward_session", default=None)
TRACE: ContextVar[str | None] = ContextVar("mailward_trace", default=None)
QUEUE: ContextVar[str | None] = ContextVar("mailward_queue", default=None)
CONTEXT: Final = (("session", SESSION), ("trace", TRACE), ("queue", QUEUE))
FORMATS: Final = ("logfmt", "json", "text")
BASE_KEYS: Final = frozenset({"ts", "level", "logger", "msg", "pid", "exc"})


class _Unset:
    def __repr__(self) -> str:
        return "..."


UNSET: Final = _Unset()
Id = str | _Unset | None  # a context id to set (None clears it; UNSET leaves it alone)
Tokens = list[tuple[ContextVar[str | None], Token[str | None]]]


@contextlib.contextmanager
def bind(*, session: Id = UNSET, trace: Id = UNSET, queue: Id = UNSET) -> Iterator[None]:
    """Set the given context ids (``None`` clears one) for the block; restore on exit."""
    tokens = set_context(session=session, trace=trace, queue=queue)
    try:
        yield
    finally:
        reset_context(tokens)


def set_context(*, session: Id = UNSET, trace: Id = UNSET, queue: Id = UNSET) -> Tokens:
    """Set the given context ids until :func:`reset_context` gets the tokens returned."""
    tokens: Tokens = []
    for var, value in ((SESSION, session), (TRACE, trace), (QUEUE, queue)):
        if not isinstance(value, _Unset):
            tokens.append((var, var.set(value)))
    return tokens


def reset_context(tokens: Tokens) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


def context() -> dict[str, str]:
    """The context ids set in the current task (``session``, ``trace``, ``queue``)."""
    return {key: value for key, var in CONTEXT if (value := var.get()) is not None}


def timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def record_items(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """A record's keys in order: the base ones, the context, then its ``fields`` (a field
    named like a context key replaces it; base keys are never replaced; ``None`` values
    are left out)."""
    items: dict[str, Any] = {
        "ts": timestamp(record.created), "level": record.levelname.lower(),
        "logger": record.name, "msg": record.getMessage(), "pid": record.process,
    }
    items.update(context())
    fields = getattr(record, "fields", None)
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            if str(key) not in BASE_KEYS:
                items[str(key)] = value
    items = {key: value for key, value in items.items() if value is not None}
    if record.exc_info:
        items["exc"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        items["exc"] = record.exc_text
    if record.stack_info:
        items["stack"] = formatter.formatStack(record.stack_info)
    return items


def logfmt_value(value: Any) -> str:
    """One logfmt value: bare when it can be, else double-quoted with ``\\``, ``"`` and
    control characters escaped (a line stays one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        text = json.dumps(value if not isinstance(value, (set, frozenset)) else sorted(value),
                          default=str, separators=(",", ":"))
    else:
        text = str(value)
    if text and not any(c in ' ="\\' or c < " " or c == "\x7f" for c in text):
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def logfmt_key(key: str) -> str:
    """A key as logfmt wants it: no spaces, ``=`` or quotes (replaced by ``_``)."""
    cleaned = "".join("_" if c in ' ="\\' or c <= " " or c == "\x7f" else c for c in key)
    return cleaned or "_"


def logfmt(items: Mapping[str, Any]) -> str:
    return " ".join(f"{logfmt_key(key)}={logfmt_value(value)}" for key, value in items.items())


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=info logger=… msg="…" pid=… session=… trace=… queue=… key=value…``"""

    def format(self, record: logging.LogRecord) -> str:
        return logfmt(record_items(record, self))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the same keys as :class:`LogfmtFormatter`."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_items(record, self), default=str, ensure_ascii=False,
                          separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """For people: ``ts LEVEL [pid] logger: message``, then the context and fields in
    logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        items = record_items(record, self)
        exc = items.pop("exc", None)
        stack = items.pop("stack", None)
        head = (f"{items.pop('ts')} {record.levelname} [{items.pop('pid')}] "
                f"{items.pop('logger')}: {items.pop('msg')}")
        del items["level"]
        line = f"{head} {logfmt(items)}" if items else head
        for extra in (exc, stack):
            if extra:
                line += "\n" + str(extra)
        return line


FORMATTERS: Final[dict[str, type[logging.Formatter]]] = {
    "logfmt": LogfmtFormatter, "json": JsonFormatter, "text": TextFormatter}


class _Handler(logging.StreamHandler):
    """The handler :func:`configure_logging` installs (and replaces when called again)."""


def formatter_for(log_format: str) -> logging.Formatter:
    try:
        return FORMATTERS[log_format]()
    except KeyError:
        raise ValueError(f"unknown log format {log_format!r} (known: "
                         f"{', '.join(FORMATS)})") from None


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """Log ``level`` and up to stderr as ``log_format`` ("text" | "logfmt" | "json"): one
    handler on the root logger, replacing the one an earlier call installed (handlers
    others added stay)."""
    formatter = formatter_for(log_format)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Handler):
            root.removeHandler(handler)
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper())


def installed_handler() -> logging.Handler | None:
    """The handler :func:`configure_logging` installed, if any."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, _Handler)), None)
