"""Our Sieve interpreter (RFC 5228) over the ``sievelib`` command tree.

Supported: ``if``/``elsif``/``else``, ``allof``/``anyof``/``not``, ``address``/``header``/
``exists``/``size``/``true``/``false``, ``keep``/``discard``/``stop``/``redirect``, and the
extensions in :data:`~mailward.sieve.grammar.SUPPORTED`: ``fileinto`` (``:create`` of
``mailbox``, ``:copy``), ``envelope``, ``imap4flags``, ``body``, ``variables``
(``set``, ``string``, ``${...}``, match variables), ``vacation``, ``relational``,
``subaddress`` and ``date`` (``currentdate``/``date``).

:func:`run` returns the :class:`Result`: where the message goes (folder and flags), the
redirects, the vacation reply to consider. It is bounded (:class:`Limits`: actions,
redirects, steps, variable sizes); a runtime error gives the implicit keep only, with the
reason in ``Result.error`` for the log.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from sievelib import commands as sc  # type: ignore[import-untyped]

from mailward.sieve.grammar import ScriptError, parse, strings, unquote
from mailward.sieve.matching import compare, relational
from mailward.sieve.message import SieveMessage

__all__ = ["Delivery", "Envelope", "Limits", "Result", "SieveRuntimeError", "VacationAction",
           "run"]

INBOX = "INBOX"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                        "\\Draft")}


@dataclass(frozen=True, slots=True)
class Limits:
    max_actions: int = 32
    max_redirects: int = 4
    max_steps: int = 5000
    max_variable_chars: int = 4096
    max_variables: int = 128


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str  # "" for the null sender
    recipient: str  # as the message was addressed (bob+tag@ included)


@dataclass(frozen=True, slots=True)
class Delivery:
    folder: str
    flags: frozenset[str]
    create: bool = False


@dataclass(frozen=True, slots=True)
class VacationAction:
    reason: str
    subject: str | None
    from_: str | None
    addresses: tuple[str, ...]
    seconds: int
    handle: str
    mime: bool


@dataclass
class Result:
    deliveries: list[Delivery] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    vacation: VacationAction | None = None
    discarded: bool = False
    error: str | None = None


class SieveRuntimeError(Exception):
    """The script failed while running: the message gets the implicit keep."""


class _Stop(Exception):
    pass


def _flag(name: str) -> str:
    return SYSTEM_FLAGS.get(name.lower(), name)


def _flag_list(values: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for name in value.split():
            flag = _flag(name)
            if flag.lower() not in seen:
                seen.add(flag.lower())
                out.append(flag)
    return out


def _number(token: str) -> int:
    text = str(token)
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * scale


def _address_part(address: str, part: str) -> str | None:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if part == ":localpart":
        return local
    if part == ":domain":
        return domain
    if part in (":user", ":detail"):
        user, plus, detail = local.partition("+")
        if part == ":user":
            return user
        return detail if plus else None  # no detail: the test fails for this address
    return address


def _date_part(when: datetime, part: str) -> str | None:
    parts = {
        "year": f"{when.year:04d}", "month": f"{when.month:02d}", "day": f"{when.day:02d}",
        "date": when.strftime("%Y-%m-%d"), "hour": f"{when.hour:02d}",
        "minute": f"{when.minute:02d}", "second": f"{when.second:02d}",
        "time": when.strftime("%H:%M:%S"), "iso8601": when.isoformat(),
        "std11": when.strftime("%a, %d %b %Y %H:%M:%S %z"),
        "zone": when.strftime("%z"), "weekday": str(when.isoweekday() % 7),
        "julian": str((when.date() - datetime(1858, 11, 17).date()).days),
    }
    return parts.get(part.lower())


class _Run:
    def __init__(self, message: SieveMessage, envelope: Envelope, limits: Limits,
                 now: datetime, variables_on: bool) -> None:
        self.message = message
        self.envelope = envelope
        self.limits = limits
        self.now = now
        self.variables_on = variables_on
        self.steps = 0
        self.actions = 0
        self.implicit_keep = True
        self.flags: list[str] = []  # imap4flags' internal variable
        self.flag_vars: dict[str, list[str]] = {}
        self.variables: dict[str, str] = {}
        self.match: list[str] = []
        self.result = Result()

    # -- strings -------------------------------------------------------------------------
    def expand(self, text: str) -> str:
        """``${name}`` and ``${N}`` replaced (RFC 5229 §3) when ``variables`` is required."""
        if not self.variables_on or "${" not in text:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            start = text.find("${", i)
            end = text.find("}", start + 2) if start >= 0 else -1
            if start < 0 or end < 0:
                out.append(text[i:])
                break
            name = text[start + 2:end]
            out.append(text[i:start])
            if name.isdigit():
                index = int(name)
                out.append(self.match[index] if index < len(self.match) else "")
                i = end + 1
            elif _VARIABLE.match(name):
                out.append(self.variables.get(name.lower(), ""))
                i = end + 1
            else:  # not a variable reference: kept as written
                out.append("${")
                i = start + 2
        return "".join(out)[: self.limits.max_variable_chars * 4]

    def arg(self, node: sc.Command, name: str) -> str:
        return self.expand(unquote(node.arguments[name]))

    def args(self, node: sc.Command, name: str) -> list[str]:
        return [self.expand(s) for s in strings(node.arguments[name])]

    def extra(self, node: sc.Command, name: str) -> Any:
        return node.extra_arguments.get(name)

    # -- running -------------------------------------------------------------------------
    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise SieveRuntimeError(f"more than {self.limits.max_steps} steps")

    def action(self) -> None:
        self.actions += 1
        if self.actions > self.limits.max_actions:
            raise SieveRuntimeError(f"more than {self.limits.max_actions} actions")

    def block(self, commands: list[sc.Command]) -> None:
        taken = False  # an if/elsif of the current chain ran
        for node in commands:
            self.step()
            name = node.name
            if name == "if":
                taken = self.test(node.arguments["test"])
                if taken:
                    self.block(node.children)
            elif name == "elsif":
                if not taken:
                    taken = self.test(node.arguments["test"])
                    if taken:
                        self.block(node.children)
            elif name == "else":
                if not taken:
                    self.block(node.children)
            else:
                self.command(node)

    def _deliver(self, folder: str, flags: list[str], create: bool) -> None:
        delivery = Delivery(folder, frozenset(flags), create)
        for i, old in enumerate(self.result.deliveries):
            if old.folder == folder:  # the same folder twice: one copy (the last flags)
                self.result.deliveries[i] = delivery
                return
        self.result.deliveries.append(delivery)

    def _flags_of(self, node: sc.Command) -> list[str]:
        given = self.extra(node, "flags")
        if given is not None:
            return _flag_list([self.expand(s) for s in strings(given)])
        return list(self.flags)

    def command(self, node: sc.Command) -> None:
        name = node.name
        if name == "require":
            return
        if name == "stop":
            raise _Stop
        if name == "keep":
            self.action()
            self.implicit_keep = False
            self._deliver(INBOX, self._flags_of(node), False)
        elif name == "discard":
            self.implicit_keep = False
            self.result.discarded = True
        elif name == "fileinto":
            self.action()
            folder = self.arg(node, "mailbox")
            if folder.upper() == INBOX:
                folder = INBOX
            if "copy" not in node.arguments:
                self.implicit_keep = False
            self._deliver(folder, self._flags_of(node), "create" in node.arguments)
        elif name == "redirect":
            self.action()
            address = self.arg(node, "address").strip()
            if "@" not in address or any(c in address for c in " <>,\r\n"):
                raise SieveRuntimeError(f"redirect to an invalid address {address!r}")
            if address.lower() not in (a.lower() for a in self.result.redirects):
                if len(self.result.redirects) >= self.limits.max_redirects:
                    raise SieveRuntimeError(
                        f"more than {self.limits.max_redirects} redirects")
                self.result.redirects.append(address)
            if "copy" not in node.arguments:
                self.implicit_keep = False
        elif name in ("setflag", "addflag", "removeflag"):
            self.flag_command(node)
        elif name == "set":
            self.set_variable(node)
        elif name == "vacation":
            self.vacation(node)
        else:
            raise SieveRuntimeError(f"unsupported command {name}")

    def flag_command(self, node: sc.Command) -> None:
        values = _flag_list(self.args(node, "list-of-flags"))
        if "variable-name" in node.arguments:
            var = self.arg(node, "variable-name").lower()
            current = self.flag_vars.setdefault(var, [])
        else:
            current = self.flags
        if node.name == "setflag":
            current[:] = values
        elif node.name == "addflag":
            current[:] = _flag_list(current + values)
        else:
            drop = {v.lower() for v in values}
            current[:] = [f for f in current if f.lower() not in drop]
        if "variable-name" in node.arguments:
            self.set_value(var, " ".join(current))

    def set_value(self, name: str, value: str) -> None:
        if name not in self.variables and len(self.variables) >= self.limits.max_variables:
            raise SieveRuntimeError(f"more than {self.limits.max_variables} variables")
        self.variables[name] = value[: self.limits.max_variable_chars]

    def set_variable(self, node: sc.Command) -> None:
        value = self.arg(node, "value")
        if "length" in node.arguments:
            value = str(len(value))
        case = node.arguments.get("case")
        if case == ":lower":
            value = value.lower()
        elif case == ":upper":
            value = value.upper()
        first = node.arguments.get("first-case")
        if first == ":lowerfirst":
            value = value[:1].lower() + value[1:]
        elif first == ":upperfirst":
            value = value[:1].upper() + value[1:]
        if "quotewildcard" in node.arguments:
            value = value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        self.set_value(self.arg(node, "name").lower(), value)

    def vacation(self, node: sc.Command) -> None:
        self.action()
        if self.result.vacation is not None:
            raise SieveRuntimeError("vacation twice")
        if "seconds" in node.arguments:
            seconds = int(self.extra(node, "seconds"))
        else:
            seconds = int(self.extra(node, "days") or 7) * 86400
        seconds = max(seconds, 1 if "seconds" in node.arguments else 86400)
        reason = self.arg(node, "reason")
        subject = self.expand(unquote(self.extra(node, "subject"))) \
            if "subject" in node.arguments else None
        sender = self.expand(unquote(self.extra(node, "from"))) \
            if "from" in node.arguments else None
        addresses = tuple(self.expand(s) for s in strings(self.extra(node, "addresses"))) \
            if "addresses" in node.arguments else ()
        handle = self.expand(unquote(self.extra(node, "handle"))) \
            if "handle" in node.arguments else ""
        if not handle:  # RFC 5230 §4.2: the same reason is the same reply
            handle = hashlib.sha256(f"{subject}\0{sender}\0{reason}".encode()).hexdigest()
        self.result.vacation = VacationAction(reason, subject, sender, addresses, seconds,
                                              handle[:64], "mime" in node.arguments)

    # -- tests ---------------------------------------------------------------------------
    def matches(self, node: sc.Command, values: list[str], keys: list[str]) -> bool:
        match = node.arguments.get("match-type", ":is").lower()
        comparator = unquote(self.extra(node, "comparator") or '"i;ascii-casemap"')
        if match == ":count":
            op = unquote(self.extra(node, "match-type"))
            return any(relational(op, "i;octet", str(len(values)), k) for k in keys)
        if match == ":value":
            op = unquote(self.extra(node, "match-type"))
            return any(relational(op, comparator, v, k) for v in values for k in keys)
        for value in values:
            for key in keys:
                self.step()
                found = compare(match, comparator, value, key)
                if found is not None:
                    if match == ":matches":
                        self.match = found
                    return True
        return False

    def test(self, node: sc.Command) -> bool:
        self.step()
        name = node.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(node.arguments["test"])
        if name == "allof":
            return all(self.test(t) for t in node.arguments["tests"])
        if name == "anyof":
            return any(self.test(t) for t in node.arguments["tests"])
        if name == "exists":
            return all(self.message.has(h) for h in self.args(node, "header-names"))
        if name == "size":
            limit = _number(node.arguments["limit"])
            over = node.arguments["comparator"].lower() == ":over"
            return self.message.size > limit if over else self.message.size < limit
        if name == "header":
            values = [v for h in self.args(node, "header-names")
                      for v in self.message.headers(h)]
            return self.matches(node, values, self.args(node, "key-list"))
        if name in ("address", "envelope"):
            return self.matches(node, self.address_values(node), self.args(node, "key-list"))
        if name == "string":
            values = [v for v in self.args(node, "source")
                      if v or node.arguments.get("match-type") != ":count"]
            return self.matches(node, values, self.args(node, "key-list"))
        if name == "body":
            transform = node.arguments.get("body-transform", ":text").lower()
            types = tuple(self.expand(s) for s in strings(self.extra(node, "body-transform"))) \
                if transform == ":content" else ()
            texts = self.message.text(transform, types)
            match = node.arguments.get("match-type", ":is")
            if match.lower() not in (":is", ":contains", ":matches"):
                raise SieveRuntimeError("body takes :is, :contains or :matches")
            return self.matches(node, texts, self.args(node, "key-list"))
        if name == "hasflag":
            if "variable-list" in node.arguments:
                current = [f for v in self.args(node, "variable-list")
                           for f in self.flag_vars.get(v.lower(), [])]
            else:
                current = self.flags
            return self.matches(node, current, self.args(node, "list-of-flags"))
        if name in ("currentdate", "date"):
            return self.date_test(node)
        raise SieveRuntimeError(f"unsupported test {name}")

    def address_values(self, node: sc.Command) -> list[str]:
        part = node.arguments.get("address-part", ":all").lower()
        if node.name == "envelope":
            addresses: list[str] = []
            for name in self.args(node, "header-list"):
                if name.lower() == "from":
                    addresses.append(self.envelope.sender)
                elif name.lower() == "to":
                    addresses.append(self.envelope.recipient)
        else:
            addresses = [a for h in self.args(node, "header-list")
                         for a in self.message.addresses(h)]
        values = [_address_part(a, part) for a in addresses]
        return [v for v in values if v is not None]

    def date_test(self, node: sc.Command) -> bool:
        when: datetime | None = self.now
        if node.name == "date":
            found = self.message.headers(self.arg(node, "header-name"))
            try:
                when = parsedate_to_datetime(found[0]) if found else None
            except (TypeError, ValueError, IndexError):
                when = None
        if when is None:
            return False
        if "zone" in node.arguments and node.arguments["zone"].lower() == ":zone":
            zone = unquote(self.extra(node, "zone"))
            try:
                sign = -1 if zone[0] == "-" else 1
                offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
                when = when.astimezone(timezone(timedelta(minutes=offset)))
            except (ValueError, IndexError):
                raise SieveRuntimeError(f"bad zone {zone!r}") from None
        elif node.name == "currentdate" or "zone" not in node.arguments:
            when = when.astimezone(UTC) if node.name == "currentdate" else when
        value = _date_part(when, self.arg(node, "date-part"))
        if value is None:
            raise SieveRuntimeError("unknown date-part")
        return self.matches(node, [value], self.args(node, "key-list"))


def run(script: str, data: bytes | SieveMessage, envelope: Envelope, *,
        limits: Limits | None = None, now: datetime | None = None) -> Result:
    """Run ``script`` (already validated when saved) on a message; never raises for the
    script's sake: a runtime error is the implicit keep, with ``Result.error`` set."""
    message = data if isinstance(data, SieveMessage) else SieveMessage(data)
    try:
        tree = list(parse(script))
    except ScriptError as exc:  # saved by an older version that accepted it
        return Result(deliveries=[Delivery(INBOX, frozenset())], error=str(exc))
    variables_on = any(n.name == "require" and "variables" in strings(
        n.arguments["capabilities"]) for n in tree)
    state = _Run(message, envelope, limits or Limits(), now or datetime.now(UTC),
                 variables_on)
    try:
        state.block(tree)
    except _Stop:
        pass
    except (SieveRuntimeError, RecursionError, ValueError, KeyError, TypeError) as exc:
        return Result(deliveries=[Delivery(INBOX, frozenset())], error=str(exc) or repr(exc))
    result = state.result
    if state.implicit_keep:
        state._deliver(INBOX, list(state.flags), False)
    return result
