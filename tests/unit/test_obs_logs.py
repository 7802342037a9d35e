"""Structured log lines (mailward.obs.logs): logfmt and JSON parsed back, with the task's
context (session, trace, queue) and a record's ``fields`` in every line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from mailward.obs.logs import (
    JsonFormatter,
    LogfmtFormatter,
    TextFormatter,
    bind,
    configure_logging,
    context,
    installed_handler,
    logfmt_value,
)

PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
Logged = tuple[logging.Logger, io.StringIO, "logging.StreamHandler[io.StringIO]"]
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line: str) -> dict[str, str]:
    """A logfmt line back into its pairs; fails on anything that is not one."""
    assert "\n" not in line
    pairs, at = {}, 0
    for found in PAIR.finditer(line):
        assert line[at:found.start()].strip() == "", line[at:found.start()]
        key, value = found.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(u[0-9a-f]{4}|.)", lambda m: (
                chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5 else ESCAPES[m.group(1)]),
                value[1:-1])
        pairs[key] = value
        at = found.end()
    assert line[at:].strip() == ""
    return pairs


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("mailward.test.obs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_logfmt_carries_context_and_fields_quoted(logged: Logged) -> None:
    logger, stream, handler = logged
    handler.setFormatter(LogfmtFormatter())
    with bind(session="S1", trace="T1"), bind(queue="Q1"):
        logger.info("delivered to %s", "bob@acme.example", extra={"fields": {
            "event": "attempt", "reply": '250 2.0.0 "ok" queued as x', "tries": 2,
            "ok": True, "multi": "line one\nline two", "none": None, "msg": "ignored"}})
    logger.warning("outside")
    first, second = (parse_logfmt(line) for line in lines(stream))
    assert first["msg"] == "delivered to bob@acme.example"
    assert (first["session"], first["trace"], first["queue"]) == ("S1", "T1", "Q1")
    assert first["reply"] == '250 2.0.0 "ok" queued as x'
    assert first["multi"] == "line one\nline two"
    assert (first["tries"], first["ok"], first["event"]) == ("2", "true", "attempt")
    assert "none" not in first
    assert first["level"] == "info" and first["logger"] == "mailward.test.obs"
    assert datetime.fromisoformat(first["ts"]).utcoffset() == timedelta(0)
    assert first["ts"].endswith("Z")
    assert second["level"] == "warning" and second["msg"] == "outside"
    assert not {"session", "trace", "queue"} & second.keys()  # bind restored them


def test_logfmt_values_bare_when_possible() -> None:
    assert logfmt_value("plain") == "plain"
    assert logfmt_value("") == '""'
    assert logfmt_value("a b") == '"a b"'
    assert logfmt_value("k=v") == '"k=v"'
    assert logfmt_value('say "hi"') == '"say \\"hi\\""'
    assert logfmt_value("a\\b") == '"a\\\\b"'
    assert logfmt_value("bell\x07") == '"bell\\u0007"'
    assert logfmt_value(["a", "b"]) == '"[\\"a\\",\\"b\\"]"'


def test_json_one_object_per_line_with_exception(logged: Logged) -> None:
    logger, stream, handler = logged
    handler.setFormatter(JsonFormatter())
    with bind(trace="T2", queue="Q2"):
        try:
            raise ValueError("broken\nreally")
        except ValueError:
            logger.exception("failed", extra={"fields": {"to": ["a@x", "b@y"], "n": 3}})
    (line,) = lines(stream)
    record = json.loads(line)
    assert record["msg"] == "failed" and record["level"] == "error"
    assert (record["trace"], record["queue"]) == ("T2", "Q2")
    assert "session" not in record
    assert record["to"] == ["a@x", "b@y"] and record["n"] == 3
    assert "ValueError: broken" in record["exc"]


def test_field_named_like_context_replaces_it(logged: Logged) -> None:
    logger, stream, handler = logged
    handler.setFormatter(LogfmtFormatter())
    with bind(trace="FROM-CONTEXT"):
        logger.info("event", extra={"fields": {"trace": "FROM-FIELDS"}})
    (line,) = lines(stream)
    assert line.count("trace=") == 1
    assert parse_logfmt(line)["trace"] == "FROM-FIELDS"


def test_text_format_appends_context(logged: Logged) -> None:
    logger, stream, handler = logged
    handler.setFormatter(TextFormatter())
    with bind(session="S3"):
        logger.info("hello world", extra={"fields": {"peer": "192.0.2.1"}})
    (line,) = lines(stream)
    assert re.match(r"^\S+Z INFO \[\d+\] mailward\.test\.obs: hello world ", line)
    assert line.endswith("session=S3 peer=192.0.2.1")


async def test_context_is_per_task() -> None:
    seen: dict[str, dict[str, str]] = {}
    entered = asyncio.Event()

    async def one(name: str) -> None:
        with bind(session=name):
            entered.set() if name == "a" else await entered.wait()
            await asyncio.sleep(0)
            seen[name] = context()

    await asyncio.gather(one("a"), one("b"))
    assert seen == {"a": {"session": "a"}, "b": {"session": "b"}}
    assert context() == {}


def test_configure_logging_installs_one_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        configure_logging("json", "warning")
        configure_logging("json", "warning")  # replaces, does not add
        ours = [h for h in root.handlers if h not in before]
        assert ours == [installed_handler()]
        assert root.level == logging.WARNING
        with bind(queue="Q9"):
            logging.getLogger("obs_logs_test.root").warning("to stderr")
            logging.getLogger("obs_logs_test.root").info("below the level")
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line)["queue"] == "Q9"
        with pytest.raises(ValueError, match="unknown log format"):
            configure_logging("xml")
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
