"""The simple rules and out-of-office form, and the Sieve script ``mailward`` made from it.

A ``SimpleForm`` (rules: *if From/To/Subject/a header contains or is X, then file into a
folder, mark read, discard or redirect*; a vacation reply with subject, text, days, the
mailbox's other addresses and optional first and last dates) becomes a script that uses
only ``fileinto``, ``imap4flags`` (``addflag``), ``copy`` (``redirect :copy``),
``vacation`` and, for the dates, ``date`` + ``relational`` (``currentdate :value "ge"``).
The form itself rides in the script's first line, a comment ``# mailward-form: {json}``,
so ``read_script`` gives it back; a script whose text is no longer what the form makes
(edited with ManageSieve or the raw editor) reads back as ``edited``.

Order in the script: the vacation reply first (it answers every message that reaches the
script, before any rule files or discards it; RFC 3834's limits are the interpreter's),
then the rules in the form's order, each optionally ending with ``stop``.

Dates: with ``dates=True`` (the default) the start and end become ``currentdate`` tests,
so the reply starts and stops by itself. An interpreter without the ``date`` extension
gets ``dates=False``: the reply is in the script only while today (``today``) is inside
the dates, and whoever saves the form then must make it again when a date passes
(``vacation_changes_on`` tells when).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from mailward.core.errors import InvalidInput
from mailward.core.normalize import normalize_address
from mailward.sieve.scripts import SieveScripts

__all__ = [
    "ACTIONS",
    "FIELDS",
    "MARKER",
    "MATCHES",
    "SCRIPT_NAME",
    "EditorState",
    "ReadBack",
    "Rule",
    "SimpleForm",
    "Vacation",
    "check",
    "form_from_json",
    "load",
    "read_script",
    "save_form",
    "save_raw",
    "to_script",
    "vacation_changes_on",
]

SCRIPT_NAME = "mailward"
MARKER = "# mailward-form: "
FIELDS = ("from", "to", "subject", "header")
MATCHES = ("contains", "is")
ACTIONS = ("fileinto", "read", "discard", "redirect")
MAX_RULES = 100
MAX_VALUE = 1000
MAX_TEXT = 16 * 1024
MAX_DAYS = 365
_HEADER_NAME = re.compile(r"[!-9;-~]{1,100}")  # RFC 5322 field-name characters


@dataclass(frozen=True, slots=True)
class Rule:
    """If ``field`` (``header``: the header named ``header``) ``match``es ``value``, do
    ``action`` (``target``: the folder for ``fileinto``, the address for ``redirect``).
    ``copy``: a redirect also keeps the message here; ``stop``: no later rule runs."""

    field: str
    value: str
    action: str
    target: str = ""
    match: str = "contains"
    header: str = ""
    copy: bool = True
    stop: bool = False


@dataclass(frozen=True, slots=True)
class Vacation:
    """The out-of-office reply; ``start``/``end`` are inclusive days (None: open)."""

    enabled: bool = False
    subject: str = ""
    text: str = ""
    days: int = 7
    start: date | None = None
    end: date | None = None
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SimpleForm:
    rules: tuple[Rule, ...] = ()
    vacation: Vacation = field(default_factory=Vacation)


# -- checking ---------------------------------------------------------------------------------


def _plain(text: str, what: str, limit: int = MAX_VALUE, *, lines: bool = False) -> str:
    if len(text) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    allowed = "\r\n\t" if lines else "\t"
    if any(ord(c) < 32 and c not in allowed for c in text) or "\x7f" in text:
        raise InvalidInput(f"{what} contains control characters")
    return text


def check_rule(rule: Rule, number: int) -> Rule:
    """``rule`` tidied (trimmed, addresses normalised), or ``InvalidInput`` naming it."""
    where = f"rule {number}"
    if rule.field not in FIELDS:
        raise InvalidInput(f"{where}: choose From, To, Subject or a header")
    if rule.match not in MATCHES:
        raise InvalidInput(f"{where}: choose 'contains' or 'is'")
    if rule.action not in ACTIONS:
        raise InvalidInput(f"{where}: choose an action")
    header = rule.header.strip() if rule.field == "header" else ""
    if rule.field == "header" and not _HEADER_NAME.fullmatch(header):
        raise InvalidInput(f"{where}: name the header (letters, digits, '-')")
    value = _plain(rule.value.strip(), f"{where}: the text")
    if not value:
        raise InvalidInput(f"{where}: enter the text to look for")
    target = _plain(rule.target.strip(), f"{where}: the target")
    if rule.action == "fileinto" and not target:
        raise InvalidInput(f"{where}: name the folder")
    if rule.action == "redirect":
        try:
            target = normalize_address(target)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
    if rule.action in ("read", "discard"):
        target = ""
    return Rule(field=rule.field, value=value, action=rule.action, target=target,
                match=rule.match, header=header,
                copy=rule.copy if rule.action == "redirect" else True,
                stop=rule.stop or rule.action == "discard")


def check_vacation(vacation: Vacation) -> Vacation:
    if not 1 <= vacation.days <= MAX_DAYS:
        raise InvalidInput(f"vacation: answer each sender once in 1 to {MAX_DAYS} days")
    subject = _plain(vacation.subject.strip(), "vacation: the subject", 200)
    text = _plain(vacation.text.replace("\r\n", "\n"), "vacation: the text", MAX_TEXT,
                  lines=True)
    if vacation.enabled and not text.strip():
        raise InvalidInput("vacation: write the reply's text")
    if vacation.start and vacation.end and vacation.end < vacation.start:
        raise InvalidInput("vacation: the last day is before the first")
    addresses = tuple(dict.fromkeys(normalize_address(a) for a in vacation.addresses
                                    if a.strip()))
    return Vacation(enabled=vacation.enabled, subject=subject, text=text,
                    days=vacation.days, start=vacation.start, end=vacation.end,
                    addresses=addresses)


def check(form: SimpleForm) -> SimpleForm:
    """The form tidied, or ``InvalidInput`` naming the first wrong field."""
    if len(form.rules) > MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules")
    return SimpleForm(rules=tuple(check_rule(r, n) for n, r in enumerate(form.rules, 1)),
                      vacation=check_vacation(form.vacation))


# -- form -> script ---------------------------------------------------------------------------


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2: backslash and double quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _strings(items: list[str]) -> str:
    return quote(items[0]) if len(items) == 1 else "[" + ", ".join(map(quote, items)) + "]"


def _test(rule: Rule) -> str:
    match = f":{rule.match}"
    if rule.field == "from" and rule.match == "is":
        return f'address {match} :all "from" {quote(rule.value)}'
    if rule.field == "to" and rule.match == "is":
        return f'address {match} :all ["to", "cc"] {quote(rule.value)}'
    names = {"from": ["from"], "to": ["to", "cc"], "subject": ["subject"]}.get(
        rule.field, [rule.header.lower()])
    return f"header {match} {_strings(names)} {quote(rule.value)}"


def _action(rule: Rule) -> str:
    if rule.action == "fileinto":
        return f"fileinto {quote(rule.target)};"
    if rule.action == "read":
        return 'addflag "\\\\Seen";'
    if rule.action == "discard":
        return "discard;"
    return f"redirect {':copy ' if rule.copy else ''}{quote(rule.target)};"


def _in_dates(vacation: Vacation, today: date) -> bool:
    return ((vacation.start is None or vacation.start <= today)
            and (vacation.end is None or today <= vacation.end))


def _vacation(vacation: Vacation, *, dates: bool, today: date) -> tuple[list[str], set[str]]:
    """The vacation lines and the extensions they need ([] when no reply is due)."""
    if not vacation.enabled or (not dates and not _in_dates(vacation, today)):
        return [], set()
    parts = [f":days {vacation.days}"]
    if vacation.subject:
        parts.append(f":subject {quote(vacation.subject)}")
    if vacation.addresses:
        parts.append(f":addresses {_strings(list(vacation.addresses))}")
    command = f"vacation {' '.join(parts)} {quote(vacation.text)};"
    tests = []
    if dates and vacation.start:
        tests.append(f'currentdate :value "ge" "date" {quote(vacation.start.isoformat())}')
    if dates and vacation.end:
        tests.append(f'currentdate :value "le" "date" {quote(vacation.end.isoformat())}')
    if not tests:
        return [command], {"vacation"}
    test = tests[0] if len(tests) == 1 else f"allof({', '.join(tests)})"
    return [f"if {test} {{", f"    {command}", "}"], {"vacation", "date", "relational"}


def to_script(form: SimpleForm, *, dates: bool = True, today: date | None = None) -> str:
    """The Sieve script of ``form`` (checked first: ``InvalidInput``), marker line first."""
    form = check(form)
    today = today or date.today()
    body, needs = _vacation(form.vacation, dates=dates, today=today)
    for rule in form.rules:
        needs |= {"fileinto": {"fileinto"}, "read": {"imap4flags"}, "discard": set(),
                  "redirect": {"copy"} if rule.copy else set()}[rule.action]
        body += [f"if {_test(rule)} {{", f"    {_action(rule)}"]
        body += ["    stop;", "}"] if rule.stop else ["}"]
    marker = _to_json(form, None if dates else today)
    lines = [MARKER + json.dumps(marker, sort_keys=True, ensure_ascii=True)]
    if needs:
        lines.append(f"require {_strings(sorted(needs))};")
    return "\n".join([*lines, *body]) + "\n"


# -- script -> form ---------------------------------------------------------------------------


def _to_json(form: SimpleForm, made: date | None) -> dict[str, Any]:
    """The marker's JSON; ``made``: the day a script without date tests was made."""
    vacation = asdict(form.vacation)
    for key in ("start", "end"):
        vacation[key] = vacation[key].isoformat() if vacation[key] else None
    vacation["addresses"] = list(form.vacation.addresses)
    found: dict[str, Any] = {"v": 1, "rules": [asdict(r) for r in form.rules],
                             "vacation": vacation}
    if made is not None:
        found["made"] = made.isoformat()
    return found


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def form_from_json(data: Any) -> SimpleForm:
    """The form a marker's JSON describes (``InvalidInput`` if it is not one)."""
    try:
        rules = tuple(Rule(field=str(r["field"]), value=str(r["value"]),
                           action=str(r["action"]), target=str(r.get("target", "")),
                           match=str(r.get("match", "contains")),
                           header=str(r.get("header", "")), copy=bool(r.get("copy", True)),
                           stop=bool(r.get("stop", False)))
                      for r in data.get("rules", []))
        v = data.get("vacation") or {}
        vacation = Vacation(enabled=bool(v.get("enabled", False)),
                            subject=str(v.get("subject", "")), text=str(v.get("text", "")),
                            days=int(v.get("days", 7)), start=_day(v.get("start")),
                            end=_day(v.get("end")),
                            addresses=tuple(str(a) for a in v.get("addresses", [])))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise InvalidInput("the form in the script's marker is not readable") from None
    return check(SimpleForm(rules=rules, vacation=vacation))


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What a script says about the form: ``form`` (None: no marker, not ours) and
    ``edited`` (the text is no longer what the form makes: changed elsewhere)."""

    form: SimpleForm | None
    edited: bool
    dates: bool = True


def read_script(text: str | None) -> ReadBack:
    """The form stored in ``text`` (a script, or None: no script)."""
    if not text:
        return ReadBack(None, False)
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not first.startswith(MARKER):
        return ReadBack(None, True)
    try:
        data = json.loads(first[len(MARKER):])
        form = form_from_json(data)
        made = _day(data.get("made"))  # a script without date tests: as made that day
    except (ValueError, AttributeError, InvalidInput):
        return ReadBack(None, True)
    again = to_script(form, dates=made is None, today=made)
    return ReadBack(form, again != text.replace("\r\n", "\n"), made is None)


def vacation_changes_on(form: SimpleForm, today: date) -> date | None:
    """With ``dates=False``: the next day the script must be made again (the reply
    starts, or the day after it ends), or None."""
    vacation = form.vacation
    if not vacation.enabled:
        return None
    if vacation.start and today < vacation.start:
        return vacation.start
    if vacation.end and today <= vacation.end:
        return date.fromordinal(vacation.end.toordinal() + 1)
    return None


# -- the editors' storage ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditorState:
    """What the rule editors show for a mailbox: the form of its ``mailward`` script
    (empty if none, or unreadable), whether that script was ``edited`` elsewhere, the
    ``active`` script's name (None: no script runs) and ``raw``, the text the advanced
    editor starts from (the active script's, else ``mailward``'s)."""

    form: SimpleForm
    edited: bool
    active: str | None
    raw: str
    exists: bool

    @property
    def ours_active(self) -> bool:
        return self.active == SCRIPT_NAME


async def load(scripts: SieveScripts, mailbox: str) -> EditorState:
    infos = await scripts.list(mailbox)
    active = next((i.name for i in infos if i.active), None)
    exists = any(i.name == SCRIPT_NAME for i in infos)
    text = await scripts.get(mailbox, SCRIPT_NAME) if exists else None
    found = read_script(text)
    raw = (await scripts.active(mailbox) if active not in (None, SCRIPT_NAME) else text) or ""
    return EditorState(form=found.form or SimpleForm(), edited=found.edited, active=active,
                       raw=raw, exists=exists)


async def save_form(scripts: SieveScripts, mailbox: str, form: SimpleForm) -> str:
    """Write ``form`` as the ``mailward`` script and make it the active one; the script."""
    text = to_script(form)
    await scripts.put(mailbox, SCRIPT_NAME, text)
    await scripts.set_active(mailbox, SCRIPT_NAME)
    return text


async def save_raw(scripts: SieveScripts, mailbox: str, text: str) -> str:
    """Write ``text`` over the active script (``mailward`` when none is), validated by
    ``SieveScripts.put`` (``InvalidInput("line N: ...")``), and keep it active; its name."""
    infos = await scripts.list(mailbox)
    name = next((i.name for i in infos if i.active), SCRIPT_NAME)
    text = text.replace("\r\n", "\n")
    await scripts.put(mailbox, name, text)
    await scripts.set_active(mailbox, name)
    return name

