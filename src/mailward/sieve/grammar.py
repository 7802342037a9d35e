"""Sieve scripts parsed by ``sievelib`` and checked against what the interpreter supports.

``sievelib`` parses RFC 5228 and knows most extensions; we register the few tests and
arguments it lacks (``subaddress``'s ``:user``/``:detail``, the ``variables`` ``string``
test) and refuse a ``require`` naming anything outside :data:`SUPPORTED`, so a script that
saves is one the interpreter can run. A refusal says the line: ``"line 3: ..."``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

from sievelib import commands as sc  # type: ignore[import-untyped]
from sievelib.parser import Parser  # type: ignore[import-untyped]

__all__ = ["SUPPORTED", "ScriptError", "parse", "strings", "unquote"]

SUPPORTED: frozenset[str] = frozenset({
    "fileinto", "envelope", "imap4flags", "copy", "body", "variables", "vacation",
    "vacation-seconds", "relational", "subaddress", "date", "mailbox",
})
"""The extensions a script may ``require`` (the ManageSieve SIEVE capability)."""

_ADDRESS_PART: sc.CommandArg = {
    "name": "address-part",
    "values": [":localpart", ":domain", ":all"],
    "extension_values": {":user": "subaddress", ":detail": "subaddress"},
    "type": ["tag"],
    "required": False,
}


class AddressCommand(sc.AddressCommand):
    """``address`` with the ``subaddress`` parts (RFC 5233)."""

    args_definition: ClassVar[list[sc.CommandArg]] = [sc.comparator, _ADDRESS_PART, sc.match_type,
                       *sc.AddressCommand.args_definition[3:]]


class EnvelopeCommand(sc.EnvelopeCommand):
    """``envelope`` with the ``subaddress`` parts (RFC 5233)."""

    args_definition: ClassVar[list[sc.CommandArg]] = [sc.comparator, _ADDRESS_PART, sc.match_type,
                       *sc.EnvelopeCommand.args_definition[3:]]


class StringCommand(sc.TestCommand):
    """The ``variables`` extension's ``string`` test (RFC 5229 §5)."""

    extension = "variables"
    args_definition: ClassVar[list[sc.CommandArg]] = [
        sc.comparator,
        sc.match_type,
        {"name": "source", "type": ["string", "stringlist"], "required": True},
        {"name": "key-list", "type": ["string", "stringlist"], "required": True},
    ]


sc.add_commands([AddressCommand, EnvelopeCommand, StringCommand])

_UNSUPPORTED_COMMANDS = frozenset({"reject", "notify", "environment"})
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ScriptError(ValueError):
    """A script that cannot be saved; ``str(error)`` is ``"line N: reason"``."""


def unquote(token: Any) -> str:
    """A string token's value: a quoted string without its quotes and escapes, or a
    ``text:`` multi-line string without its first line, dot-stuffing and final dot."""
    text = str(token)
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
    if text.startswith("text:"):
        lines = text.replace("\r\n", "\n").split("\n")[1:]
        if lines and lines[-1].strip() == ".":
            lines = lines[:-1]
        body = "\n".join(line[1:] if line.startswith("..") else line for line in lines)
        return body + "\n" if lines else ""
    return text


def strings(token: Any) -> list[str]:
    """A string-list argument's values (a single string is a list of one)."""
    if isinstance(token, list):
        return [unquote(item) for item in token]
    return [unquote(token)]


def _line_of(text: str, needle: str) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _check(text: str, tree: list[sc.Command]) -> None:
    """Refuse what sievelib accepts but the interpreter does not run."""
    for top in tree:
        for node in top.walk():
            if node.name == "require":
                for ext in strings(node.arguments["capabilities"]):
                    if ext not in SUPPORTED:
                        raise ScriptError(f"line {_line_of(text, chr(34) + ext + chr(34))}: "
                                          f"unsupported extension {ext!r}")
            elif node.name in _UNSUPPORTED_COMMANDS:
                raise ScriptError(f"line {_line_of(text, node.name)}: "
                                  f"unsupported command {node.name!r}")
            elif node.name == "set":
                name = unquote(node.arguments["name"])
                if not _VARIABLE_NAME.match(name):
                    raise ScriptError(f"line {_line_of(text, node.arguments['name'])}: "
                                      f"invalid variable name {name!r}")
            elif node.name == "vacation" and "days" in node.arguments:
                days = node.extra_arguments.get("days", "0")
                if not str(days).isdigit():
                    raise ScriptError(f"line {_line_of(text, ':days')}: :days takes a "
                                      "plain number of days")


@lru_cache(maxsize=256)
def parse(text: str) -> tuple[sc.Command, ...]:
    """The script's command tree; ``ScriptError`` if it does not parse or needs an
    extension or command we do not support (cached by text: delivery re-parses nothing)."""
    parser = Parser()
    if not parser.parse(text.encode("utf-8")):
        raise ScriptError(str(parser.error))
    tree = list(parser.result)
    _check(text, tree)
    return tuple(tree)
